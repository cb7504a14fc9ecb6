#include "model/layers/lightning_attention.h"

namespace longbow {

StatusOr<LightningAttention> LightningAttention::build(const LightningPlan& plan, const TensorMap& tensors,
                                                       Backend& backend) {
  LightningAttention a;
  a.num_heads_ = plan.num_heads;
  a.head_dim_ = plan.head_dim;
  a.block_size_ = plan.block_size;
  if (plan.slopes.size() != static_cast<size_t>(plan.num_heads)) {
    return invalid_argument(fmt::format("lightning attention: {} slopes for {} heads", plan.slopes.size(),
                                        plan.num_heads));
  }
  OpQuery query{"lightning_attention", plan.head_dim, plan.num_heads};
  RETURN_IF_ERROR(backend.supports(query));
  ASSIGN_OR_RETURN(a.qkv_, make_linear(tensors, plan.qkv));
  ASSIGN_OR_RETURN(a.gate_, make_linear(tensors, plan.output_gate));
  ASSIGN_OR_RETURN(a.out_, make_linear(tensors, plan.out));
  ASSIGN_OR_RETURN(a.norm_, Norm::build(plan.norm, tensors, backend));
  ASSIGN_OR_RETURN(a.slopes_, backend.allocate(DType::kF32, {plan.num_heads}));
  RETURN_IF_ERROR(backend.upload(plan.slopes.data(), a.slopes_));
  return a;
}

StateSpec LightningAttention::cache_spec() const {
  return StateSpec{int64_t{num_heads_} * head_dim_ * head_dim_ * static_cast<int64_t>(sizeof(float))};
}

StatusOr<size_t> LightningAttention::allocate_cache(Backend& backend, int64_t slots) {
  ASSIGN_OR_RETURN(state_, backend.allocate(DType::kF32, {slots, num_heads_, head_dim_, head_dim_}));
  return state_.num_bytes();
}

Status LightningAttention::forward(Backend& b, const StepTensors& step, LayerScratch& scratch, const Tensor& x,
                                   Tensor& out) {
  const int64_t t = x.dim(0);
  Tensor qkv = LayerScratch::view(scratch.q, t, qkv_dim());
  Tensor attn = LayerScratch::view(scratch.attn, t, attn_dim());
  Tensor gate = LayerScratch::view(scratch.gate, t, attn_dim());
  RETURN_IF_ERROR(qkv_.forward(b, x, qkv));
  LightningAttentionArgs args;
  args.qkv = qkv;
  args.slopes = slopes_;
  args.state = state_;
  args.query_start = step.query_start;
  args.context_lens = step.context_lens;
  args.slots = step.state_slots;
  args.out = attn;
  args.num_heads = num_heads_;
  args.head_dim = head_dim_;
  args.block_size = block_size_;
  args.max_query_len = step.max_query_len;
  RETURN_IF_ERROR(b.lightning_attention(args));
  RETURN_IF_ERROR(norm_.forward(b, attn, attn));
  RETURN_IF_ERROR(gate_.forward(b, x, gate));
  RETURN_IF_ERROR(b.gated_activation(Activation::kSigmoid, gate, attn, attn));
  return out_.forward(b, attn, out);
}

}  // namespace longbow
