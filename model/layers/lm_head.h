// The head after the final norm, on the rows that want logits: an optional transform (ModernBERT's
// prediction head: dense → activation → LayerNorm), the projection to the vocabulary (+ bias), and
// an optional final soft-cap (Gemma 2). No cache. On a tensor-parallel rank the projection holds the
// rank's vocabulary rows (plan_shard.h): its logits columns are soft-capped, then all-gathered.
#pragma once

#include "model/layers/layer_context.h"
#include "model/layers/norm.h"
#include "model/parallel/communicator.h"

namespace longbow {

class LmHead {
 public:
  // Allocates the transform's scratch for up to max_rows rows (and, with `comm`, the rank's logits
  // columns for as many rows).
  static StatusOr<LmHead> build(const HeadPlan& plan, const TensorMap& tensors, int64_t max_rows, Backend& backend,
                                Communicator* comm = nullptr);

  // logits [L, V] F32 from x [L, hidden] (final-normed rows); x may be overwritten.
  Status forward(Backend& backend, Tensor& x, Tensor& logits) const;
  size_t scratch_bytes() const { return dense_out_.num_bytes() + ones_.num_bytes() + rank_logits_.num_bytes(); }

 private:
  bool has_dense_ = false;
  Linear dense_;
  Activation dense_activation_ = Activation::kGelu;
  Norm dense_norm_;
  Linear lm_head_;
  float final_softcap_ = 0.0f;
  Tensor dense_out_;  // [max_rows, hidden]
  Tensor ones_;       // [max_rows, hidden] of 1: act(x) = gated_activation(act, x, ones), exact in fp32
  Communicator* comm_ = nullptr;
  Tensor rank_logits_;  // with comm_: [max_rows, the rank's vocabulary rows] F32
};

}  // namespace longbow
