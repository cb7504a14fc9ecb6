// The mixture-of-experts FFN (MiniMax, Mixtral, DeepSeek; DESIGN §3): router logits = router(x)
// (F32), each token's top-k experts and weights (Backend::moe_route: softmax renormalized, or
// DeepSeek's sigmoid scores with a selection bias, group-limited, scaled), then the routed experts'
// gated MLPs summed by weight (Backend::moe_experts), added to DeepSeek's shared experts' output (a
// gated MLP every token runs, computed first into `out`). No cache.
#pragma once

#include <optional>

#include "model/layers/gated_mlp.h"
#include "model/layers/layer_context.h"

namespace longbow {

class MoeFfn {
 public:
  static StatusOr<MoeFfn> build(const MoePlan& plan, const TensorMap& tensors);

  int num_experts() const { return num_experts_; }
  int top_k() const { return top_k_; }
  int64_t hidden() const { return down_.dim(1); }
  int64_t intermediate() const { return down_.dim(2); }
  // The shared experts' intermediate width (scratch gate/up), 0 without them.
  int64_t shared_intermediate() const { return shared_ ? shared_->intermediate_size() : 0; }
  // out [T, hidden] from x [T, hidden]; routes in scratch.router_logits, route_ids, route_weights; the
  // shared experts in scratch.gate, scratch.up.
  Status forward(Backend& backend, LayerScratch& scratch, const Tensor& x, Tensor& out) const;

 private:
  Linear router_;
  Tensor gate_up_, down_;  // [E, 2I, H], [E, H, I]
  int num_experts_ = 0, top_k_ = 0;
  int expert_begin_ = 0;  // expert parallelism: the first of this rank's experts
  Activation activation_ = Activation::kSilu;
  MoeScoring scoring_ = MoeScoring::kSoftmax;
  Tensor correction_bias_;  // [E] F32, or empty
  int num_groups_ = 1, topk_groups_ = 1;
  bool renormalize_ = true;
  float scaling_ = 1.0f;
  std::optional<GatedMlp> shared_;
};

}  // namespace longbow
