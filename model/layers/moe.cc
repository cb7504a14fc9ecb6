#include "model/layers/moe.h"

namespace longbow {

StatusOr<MoeFfn> MoeFfn::build(const MoePlan& plan, const TensorMap& tensors) {
  MoeFfn m;
  if (plan.top_k < 1 || plan.top_k > plan.num_experts) {
    return invalid_argument(fmt::format("moe: top-k {} of {} experts", plan.top_k, plan.num_experts));
  }
  m.num_experts_ = plan.num_experts;
  m.expert_begin_ = plan.expert_begin;
  m.top_k_ = plan.top_k;
  m.activation_ = plan.activation;
  m.scoring_ = plan.scoring;
  m.num_groups_ = plan.num_groups;
  m.topk_groups_ = plan.topk_groups;
  m.renormalize_ = plan.renormalize;
  m.scaling_ = plan.scaling;
  ASSIGN_OR_RETURN(m.router_, make_linear(tensors, plan.router));
  ASSIGN_OR_RETURN(m.gate_up_, take_tensor(tensors, plan.gate_up));
  ASSIGN_OR_RETURN(m.down_, take_tensor(tensors, plan.down));
  if (!plan.correction_bias.empty()) {
    ASSIGN_OR_RETURN(m.correction_bias_, take_tensor(tensors, plan.correction_bias));
    if (m.correction_bias_.dtype != DType::kF32) {
      return invalid_argument(fmt::format("moe: {} must be loaded in F32", plan.correction_bias));
    }
  }
  if (plan.shared) {
    ASSIGN_OR_RETURN(GatedMlp shared, GatedMlp::build(*plan.shared, tensors));
    m.shared_ = std::move(shared);
  }
  return m;
}

Status MoeFfn::forward(Backend& b, LayerScratch& scratch, const Tensor& x, Tensor& out) const {
  const int64_t t = x.dim(0);
  Tensor logits = LayerScratch::view(scratch.router_logits, t, num_experts_);
  Tensor ids = LayerScratch::view(scratch.route_ids, t, top_k_);
  Tensor weights = LayerScratch::view(scratch.route_weights, t, top_k_);
  RETURN_IF_ERROR(router_.forward(b, x, logits));
  MoeRouteArgs route;
  route.logits = logits;
  route.ids = ids;
  route.weights = weights;
  route.scoring = scoring_;
  route.correction_bias = correction_bias_;
  route.num_groups = num_groups_;
  route.topk_groups = topk_groups_;
  route.renormalize = renormalize_;
  route.scaling = scaling_;
  RETURN_IF_ERROR(b.moe_route(route));
  if (shared_) RETURN_IF_ERROR(shared_->forward(b, scratch, x, out));
  MoeExpertsArgs args;
  args.x = x;
  args.ids = ids;
  args.weights = weights;
  args.gate_up = gate_up_;
  args.down = down_;
  args.activation = activation_;
  args.out = out;
  args.accumulate = shared_.has_value();
  args.expert_begin = expert_begin_;
  args.num_experts = num_experts_;
  return b.moe_experts(args);
}

}  // namespace longbow
