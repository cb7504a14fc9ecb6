#include "model/layers/gqa_attention.h"

namespace longbow {

StatusOr<GqaAttention> GqaAttention::build(const AttentionPlan& plan, const TensorMap& tensors,
                                           const RopeTensors& rope, const DsaLayerOptions& dsa,
                                           const Backend& backend) {
  GqaAttention a;
  a.num_heads_ = plan.num_heads;
  a.num_kv_heads_ = plan.num_kv_heads;
  a.head_dim_ = plan.head_dim;
  const auto rotary_dim = static_cast<int>(2 * rope.inv_freq.dim(0));
  if (plan.num_kv_heads < 1 || plan.num_heads % plan.num_kv_heads != 0) {
    return invalid_argument(fmt::format("attention: {} query heads are not a multiple of {} KV heads",
                                        plan.num_heads, plan.num_kv_heads));
  }
  if (rotary_dim < 2 || rotary_dim > plan.head_dim) {
    return invalid_argument(
        fmt::format("attention: rope rotary_dim {} must be in [2, head_dim {}]", rotary_dim, plan.head_dim));
  }
  RETURN_IF_ERROR(backend.supports(OpQuery{"paged_attention", plan.head_dim, plan.num_heads, plan.num_kv_heads,
                                           rotary_dim, plan.window, plan.softcap}));
  ASSIGN_OR_RETURN(a.q_, make_linear(tensors, plan.q));
  ASSIGN_OR_RETURN(a.k_, make_linear(tensors, plan.k));
  ASSIGN_OR_RETURN(a.v_, make_linear(tensors, plan.v));
  ASSIGN_OR_RETURN(a.o_, make_linear(tensors, plan.o));
  ASSIGN_OR_RETURN(a.q_norm_, Norm::build(plan.q_norm, tensors, backend));
  ASSIGN_OR_RETURN(a.k_norm_, Norm::build(plan.k_norm, tensors, backend));
  a.rope_ = rope;
  a.window_ = plan.window;
  a.scale_ = plan.scale;
  a.softcap_ = plan.softcap;
  if (!plan.indexer.empty()) {
    if (dsa.config == nullptr) return invalid_argument("attention: a DSA layer without the model's indexer config");
    if (plan.window > 0) return unimplemented("runtime: DSA indexer (index_topk) together with a sliding window");
    OpQuery query{"dsa", plan.head_dim, plan.num_heads, plan.num_kv_heads};
    query.dsa = dsa.config;
    RETURN_IF_ERROR(backend.supports(query));
    ASSIGN_OR_RETURN(a.indexer_, take_dsa_indexer(tensors, plan.indexer, "wq"));
    a.dsa_ = dsa;
  }
  return a;
}

PagedSpec GqaAttention::cache_spec(DType kv_dtype) const {
  int64_t bytes = int64_t{2} * kv_dim() * static_cast<int64_t>(dtype_size(kv_dtype));
  if (indexer_) bytes += dsa_.config->head_dim + 4;  // e4m3 key + its fp32 scale (DESIGN §5)
  return PagedSpec{bytes, window_};
}

StatusOr<size_t> GqaAttention::allocate_cache(Backend& backend, int64_t pages, int group) {
  group_ = group;
  const DType dt = backend.compute_dtype();
  ASSIGN_OR_RETURN(k_cache_, backend.allocate(dt, {pages, kPageSize, num_kv_heads_, head_dim_}));
  ASSIGN_OR_RETURN(v_cache_, backend.allocate(dt, {pages, kPageSize, num_kv_heads_, head_dim_}));
  size_t bytes = k_cache_.num_bytes() + v_cache_.num_bytes();
  if (indexer_) {
    ASSIGN_OR_RETURN(index_cache_,
                     backend.allocate(DType::kFP8E4M3, {pages, int64_t{kPageSize} * (dsa_.config->head_dim + 4)}));
    bytes += index_cache_.num_bytes();
  }
  return bytes;
}

Status GqaAttention::forward(Backend& b, const StepTensors& step, LayerScratch& scratch, const Tensor& x,
                             Tensor& out) {
  const int64_t t = step.num_tokens, hq = num_heads_, hkv = num_kv_heads_, d = head_dim_;
  Tensor q = LayerScratch::view(scratch.q, t, hq * d);
  Tensor k = LayerScratch::view(scratch.k, t, hkv * d);
  Tensor v = LayerScratch::view(scratch.v, t, hkv * d);
  Tensor attn = LayerScratch::view(scratch.attn, t, hq * d);
  RETURN_IF_ERROR(q_.forward(b, x, q));
  RETURN_IF_ERROR(k_.forward(b, x, k));
  RETURN_IF_ERROR(v_.forward(b, x, v));
  Tensor q_heads = q.reshape({t, hq, d});
  Tensor k_heads = k.reshape({t, hkv, d});
  Tensor v_heads = v.reshape({t, hkv, d});
  if (!q_norm_.is_identity()) {
    Tensor q_rows = q.reshape({t * hq, d});
    RETURN_IF_ERROR(q_norm_.forward(b, q_rows, q_rows));
  }
  if (!k_norm_.is_identity()) {
    Tensor k_rows = k.reshape({t * hkv, d});
    RETURN_IF_ERROR(k_norm_.forward(b, k_rows, k_rows));
  }
  RETURN_IF_ERROR(b.rope(q_heads, k_heads, step.positions, rope_.inv_freq, rope_.attention_scaling));
  const auto g = static_cast<size_t>(group_);
  RETURN_IF_ERROR(b.append_kv(k_heads, v_heads, step.slots[g], k_cache_, v_cache_));

  PagedAttentionArgs args;
  args.q = q_heads;
  args.k_cache = k_cache_;
  args.v_cache = v_cache_;
  args.query_start = step.query_start;
  args.context_lens = step.context_lens;
  args.block_tables = step.block_tables[g];
  args.out = attn.reshape({t, hq, d});
  args.max_query_len = step.max_query_len;
  args.max_context_len = step.max_context_len;
  args.scale = scale_;
  args.sliding_window = window_;
  args.softcap = softcap_;
  if (!indexer_) {
    RETURN_IF_ERROR(b.paged_attention(args));
  } else {
    DsaAttentionStep dsa_step;
    dsa_step.attention = args;
    dsa_step.x = x;
    dsa_step.index_cache = index_cache_;
    dsa_step.positions = step.positions;
    dsa_step.slots = step.slots[g];
    dsa_step.inv_freq = dsa_.rope.inv_freq;
    dsa_step.attention_scaling = dsa_.rope.attention_scaling;
    dsa_step.blocks = step.dsa_blocks;
    RETURN_IF_ERROR(run_dsa_attention(b, *dsa_.config, *indexer_, dsa_.prefill, dsa_step, scratch.dsa));
  }
  return o_.forward(b, attn, out);
}

}  // namespace longbow
