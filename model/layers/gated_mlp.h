// The gated MLP: out = down(act(gate(x)) · up(x)), act SiLU (Llama, Qwen, Mistral), GELU-tanh (Gemma)
// or GELU (ModernBERT, whose fused Wi holds gate rows [0, I) and up rows [I, 2I)). No cache.
#pragma once

#include "model/layers/layer_context.h"

namespace longbow {

class GatedMlp {
 public:
  static StatusOr<GatedMlp> build(const MlpPlan& plan, const TensorMap& tensors);

  int64_t intermediate_size() const { return intermediate_; }
  // out [T, hidden] from x [T, hidden]; computes in scratch.gate and scratch.up.
  Status forward(Backend& backend, LayerScratch& scratch, const Tensor& x, Tensor& out) const;

 private:
  Activation activation_ = Activation::kSilu;
  Linear gate_, up_, down_;
  int64_t intermediate_ = 0;
};

}  // namespace longbow
