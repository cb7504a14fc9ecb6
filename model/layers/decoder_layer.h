// One decoder layer of a ModelPlan: norms around a token mixer (GQA attention, full or windowed, DSA
// or not; lightning attention; or MLA, DSA or not) and an FFN (a gated MLP or a MoE), with the residual adds fused
// into the norms that follow them:
//
//   x = attn_norm(h + pending)      (h += pending first, where the previous layer left its FFN output)
//   a = mixer(x) → attn_post_norm (Gemma);  y = mlp_norm(h += a);  m = ffn(y) → mlp_post_norm (Gemma)
//
// and m is left in `delta` as the next layer's pending add (or the final norm's). On a tensor-parallel
// rank a and m are the rank's partial sums where the plan says so (LayerPlan::mixer_partial,
// ffn_partial), all-reduced before anything else reads them. With scaled
// residuals (MiniMax: h = α·x + β·a, then h = α'·y + β'·m) x and a are scaled in place first, x
// becomes the residual, and the stream carries α'·y with β'·m pending.
#pragma once

#include <variant>

#include "model/layers/gated_mlp.h"
#include "model/layers/gqa_attention.h"
#include "model/layers/lightning_attention.h"
#include "model/layers/mla_attention.h"
#include "model/layers/moe.h"
#include "model/layers/norm.h"
#include "model/parallel/communicator.h"

namespace longbow {

// The residual stream of a step: hidden [T, H], the pending delta [T, H] (an attention or MLP output
// not yet added) and the current norm's output normed [T, H].
struct ResidualStream {
  Tensor hidden, delta, normed;
  bool pending = false;  // delta holds an output to add before the next norm
};

// What a layer computes in the step's scratch, per token (the workspace takes the widest layer's).
struct ScratchWidths {
  int64_t q = 0, kv = 0, intermediate = 0;
  int64_t experts = 0, top_k = 0;  // MoE routing
};

class DecoderLayer {
 public:
  // `comm`: this rank's communicator on a tensor-parallel rank (plan_shard.h), else null.
  static StatusOr<DecoderLayer> build(const LayerPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                      const DsaLayerOptions& dsa, Backend& backend, Communicator* comm = nullptr);

  // The GQA attention, or nullptr for a lightning or MLA layer.
  GqaAttention* attention() { return std::get_if<GqaAttention>(&mixer_); }
  const GqaAttention* attention() const { return std::get_if<GqaAttention>(&mixer_); }
  const LightningAttention* lightning() const { return std::get_if<LightningAttention>(&mixer_); }
  const MlaAttention* mla() const { return std::get_if<MlaAttention>(&mixer_); }
  bool is_dsa() const { return (attention() != nullptr && attention()->is_dsa()) || (mla() != nullptr && mla()->is_dsa()); }
  // A DSA layer's FP8 index cache (an empty tensor otherwise).
  const Tensor& index_cache() const;
  // The MoE FFN, or nullptr for a gated MLP.
  const MoeFfn* moe() const { return std::get_if<MoeFfn>(&ffn_); }

  CacheSpec cache_spec(DType kv_dtype) const;
  // Allocates this layer's cache: `size` pages of its paged group `group` (the step's slots and block
  // tables it reads), or `size` state slots. Returns the bytes allocated.
  StatusOr<size_t> allocate_cache(Backend& backend, int64_t size, int group);
  ScratchWidths scratch_widths() const;

  Status forward(Backend& backend, const StepTensors& step, LayerScratch& scratch, ResidualStream& r);

 private:
  Status scale(Backend& backend, Tensor& x, float factor) const;

  Norm attn_norm_, attn_post_norm_, mlp_norm_, mlp_post_norm_;
  std::variant<GqaAttention, LightningAttention, MlaAttention> mixer_;
  std::variant<GatedMlp, MoeFfn> ffn_;
  std::optional<ScaledResidual> attn_residual_, mlp_residual_;
  Communicator* mixer_comm_ = nullptr;  // set where the plan marks the output partial (tensor parallelism)
  Communicator* ffn_comm_ = nullptr;
};

}  // namespace longbow
