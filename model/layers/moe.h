// The mixture-of-experts FFN with softmax top-k routing (MiniMax, Mixtral; DESIGN §3): router
// logits = router(x) (F32), the top-k experts per token renormalized (Backend::moe_route), then the
// routed experts' gated MLPs summed by weight (Backend::moe_experts). No cache.
#pragma once

#include "model/layers/layer_context.h"

namespace longbow {

class MoeFfn {
 public:
  static StatusOr<MoeFfn> build(const MoePlan& plan, const TensorMap& tensors);

  int num_experts() const { return num_experts_; }
  int top_k() const { return top_k_; }
  int64_t hidden() const { return down_.dim(1); }
  int64_t intermediate() const { return down_.dim(2); }
  // out [T, hidden] from x [T, hidden]; routes in scratch.router_logits, route_ids, route_weights.
  Status forward(Backend& backend, LayerScratch& scratch, const Tensor& x, Tensor& out) const;

 private:
  Linear router_;
  Tensor gate_up_, down_;  // [E, 2I, H], [E, H, I]
  int num_experts_ = 0, top_k_ = 0;
  Activation activation_ = Activation::kSilu;
};

}  // namespace longbow
