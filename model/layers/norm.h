// Norm layers: RMSNorm (Gemma's 1 + w folded into the weight at load) and LayerNorm, alone or fused
// with the residual add before them (NormPlan in model/arch/model_plan.h).
#pragma once

#include "model/layers/layer_context.h"

namespace longbow {

class Norm {
 public:
  static StatusOr<Norm> build(const NormPlan& plan, const TensorMap& tensors, const Backend& backend);

  bool is_identity() const { return kind_ == NormKind::kNone; }
  // out = norm(x); out may alias x. INVALID_ARGUMENT for the identity (the caller reads x itself).
  Status forward(Backend& backend, const Tensor& x, Tensor& out) const;
  // residual += delta, then out = norm(residual).
  Status add_forward(Backend& backend, Tensor& residual, const Tensor& delta, Tensor& out) const;

 private:
  NormKind kind_ = NormKind::kNone;
  Tensor weight_, bias_;
  float eps_ = 0.0f;
};

}  // namespace longbow
