// One decoder layer of a ModelPlan: norms around a token mixer (GQA attention, full or windowed, DSA
// or not) and a gated MLP, with the residual adds fused into the norms that follow them:
//
//   x = attn_norm(h + pending)      (h += pending first, where the previous layer left its MLP output)
//   a = attention(x) → attn_post_norm (Gemma);  y = mlp_norm(h += a);  m = mlp(y) → mlp_post_norm (Gemma)
//
// and m is left in `delta` as the next layer's pending add (or the final norm's).
#pragma once

#include "model/layers/gated_mlp.h"
#include "model/layers/gqa_attention.h"
#include "model/layers/norm.h"

namespace longbow {

// The residual stream of a step: hidden [T, H], the pending delta [T, H] (an attention or MLP output
// not yet added) and the current norm's output normed [T, H].
struct ResidualStream {
  Tensor hidden, delta, normed;
  bool pending = false;  // delta holds an output to add before the next norm
};

class DecoderLayer {
 public:
  static StatusOr<DecoderLayer> build(const LayerPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                      const DsaLayerOptions& dsa, const Backend& backend);

  GqaAttention& attention() { return attention_; }
  const GqaAttention& attention() const { return attention_; }
  const GatedMlp& mlp() const { return mlp_; }

  Status forward(Backend& backend, const StepTensors& step, LayerScratch& scratch, ResidualStream& r);

 private:
  Norm attn_norm_, attn_post_norm_, mlp_norm_, mlp_post_norm_;
  GqaAttention attention_;
  GatedMlp mlp_;
};

}  // namespace longbow
