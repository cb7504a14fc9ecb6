#include "model/layers/mla_attention.h"

#include <algorithm>

namespace longbow {

StatusOr<MlaAttention> MlaAttention::build(const MlaPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                           const DsaLayerOptions& dsa, const Backend& backend) {
  MlaAttention a;
  a.heads_ = plan.num_heads;
  a.nope_ = plan.nope_dim;
  a.rope_dim_ = plan.rope_dim;
  a.v_ = plan.v_dim;
  a.latent_ = plan.kv_lora_rank;
  a.q_lora_ = plan.q_lora_rank;
  if (2 * rope.inv_freq.dim(0) != plan.rope_dim) {
    return invalid_argument(fmt::format("mla: the RoPE table rotates {} dims, the heads have {} rope dims",
                                        2 * rope.inv_freq.dim(0), plan.rope_dim));
  }
  OpQuery query{"latent_attention", plan.kv_lora_rank + plan.rope_dim, plan.num_heads, 1, plan.rope_dim};
  RETURN_IF_ERROR(backend.supports(query));
  if (plan.q_lora_rank > 0) {
    ASSIGN_OR_RETURN(a.q_a_, make_linear(tensors, plan.q_a));
    ASSIGN_OR_RETURN(a.q_a_norm_, Norm::build(plan.q_a_norm, tensors, backend));
  }
  ASSIGN_OR_RETURN(a.q_rope_, make_linear(tensors, plan.q_rope));
  ASSIGN_OR_RETURN(a.q_nope_, make_linear(tensors, plan.q_nope));
  ASSIGN_OR_RETURN(a.kv_latent_, make_linear(tensors, plan.kv_latent));
  ASSIGN_OR_RETURN(a.kv_rope_, make_linear(tensors, plan.kv_rope));
  ASSIGN_OR_RETURN(a.kv_norm_, Norm::build(plan.kv_norm, tensors, backend));
  ASSIGN_OR_RETURN(Tensor kv_b, take_tensor(tensors, plan.kv_b));
  a.kv_b_ = kv_b.reshape({plan.num_heads, plan.nope_dim + plan.v_dim, plan.kv_lora_rank});
  ASSIGN_OR_RETURN(a.o_, make_linear(tensors, plan.o));
  a.rope_ = rope;
  a.scale_ = plan.scale;
  if (!plan.indexer.empty()) {
    if (dsa.config == nullptr) return invalid_argument("mla: a DSA layer without the model's indexer config");
    OpQuery dsa_query{"dsa", plan.kv_lora_rank + plan.rope_dim, plan.num_heads, 1};
    dsa_query.dsa = dsa.config;
    RETURN_IF_ERROR(backend.supports(dsa_query));
    ASSIGN_OR_RETURN(a.indexer_, take_dsa_indexer(tensors, plan.indexer, plan.q_lora_rank > 0 ? "wq_b" : "wq"));
    a.dsa_ = dsa;
  }
  return a;
}

PagedSpec MlaAttention::cache_spec(DType kv_dtype) const {
  int64_t bytes = int64_t{latent_ + rope_dim_} * static_cast<int64_t>(dtype_size(kv_dtype));
  if (indexer_) bytes += dsa_.config->head_dim + 4;  // e4m3 key + its fp32 scale (DESIGN §5)
  return PagedSpec{bytes, 0};
}

StatusOr<size_t> MlaAttention::allocate_cache(Backend& backend, int64_t pages, int group) {
  group_ = group;
  ASSIGN_OR_RETURN(cache_, backend.allocate(backend.compute_dtype(), {pages, kPageSize, latent_ + rope_dim_}));
  size_t bytes = cache_.num_bytes();
  if (indexer_) {
    ASSIGN_OR_RETURN(index_cache_,
                     backend.allocate(DType::kFP8E4M3, {pages, int64_t{kPageSize} * (dsa_.config->head_dim + 4)}));
    bytes += index_cache_.num_bytes();
  }
  return bytes;
}

int64_t MlaAttention::q_width() const { return int64_t{heads_} * std::max({latent_, v_, nope_}); }
int64_t MlaAttention::kv_width() const { return std::max(latent_, rope_dim_); }
int64_t MlaAttention::gate_width() const { return std::max<int64_t>(q_lora_, int64_t{heads_} * rope_dim_); }

Status MlaAttention::forward(Backend& b, const StepTensors& step, LayerScratch& scratch, const Tensor& x,
                             Tensor& out) {
  const int64_t t = step.num_tokens, h = heads_;
  // The shared latent row: c (normed) and k_r.
  Tensor c = LayerScratch::view(scratch.k, t, latent_);
  Tensor k_r = LayerScratch::view(scratch.v, t, rope_dim_);
  RETURN_IF_ERROR(kv_latent_.forward(b, x, c));
  RETURN_IF_ERROR(kv_norm_.forward(b, c, c));
  RETURN_IF_ERROR(kv_rope_.forward(b, x, k_r));
  // The queries: rope part and nope part from the q latent (or x).
  Tensor q_in = x;
  if (q_lora_ > 0) {
    q_in = LayerScratch::view(scratch.gate, t, q_lora_);
    RETURN_IF_ERROR(q_a_.forward(b, x, q_in));
    RETURN_IF_ERROR(q_a_norm_.forward(b, q_in, q_in));
  }
  Tensor q_rope = LayerScratch::view(scratch.up, t, h * rope_dim_);
  Tensor q_nope = LayerScratch::view(scratch.attn, t, h * nope_);
  RETURN_IF_ERROR(q_rope_.forward(b, q_in, q_rope));
  RETURN_IF_ERROR(q_nope_.forward(b, q_in, q_nope));
  Tensor q_rope_heads = q_rope.reshape({t, h, rope_dim_});
  Tensor k_r_heads = k_r.reshape({t, 1, rope_dim_});
  RETURN_IF_ERROR(b.rope(q_rope_heads, k_r_heads, step.positions, rope_.inv_freq, rope_.attention_scaling));
  const auto g = static_cast<size_t>(group_);
  RETURN_IF_ERROR(b.append_latent(AppendLatentArgs{c, k_r, step.slots[g], cache_}));

  // Absorb: q_l,h = W_UK,hᵀ q_nope,h.
  Tensor q_latent = LayerScratch::view(scratch.q, t, h * latent_).reshape({t, h, latent_});
  HeadMatmulArgs absorb;
  absorb.x = q_nope.reshape({t, h, nope_});
  absorb.w = kv_b_;
  absorb.row_begin = 0;
  absorb.num_rows = nope_;
  absorb.transpose_w = true;
  absorb.out = q_latent;
  RETURN_IF_ERROR(b.head_matmul(absorb));

  LatentAttentionArgs attn;
  attn.q_latent = q_latent;
  attn.q_rope = q_rope_heads;
  attn.cache = cache_;
  attn.query_start = step.query_start;
  attn.context_lens = step.context_lens;
  attn.block_tables = step.block_tables[g];
  attn.out = LayerScratch::view(scratch.attn, t, h * latent_).reshape({t, h, latent_});
  attn.max_query_len = step.max_query_len;
  attn.max_context_len = step.max_context_len;
  attn.scale = scale_;
  if (!indexer_) {
    RETURN_IF_ERROR(b.latent_attention(attn));
  } else {
    // The indexer's index arrays are the attention's; its K/V fields stay unused.
    DsaAttentionStep dsa_step;
    dsa_step.attention.query_start = step.query_start;
    dsa_step.attention.context_lens = step.context_lens;
    dsa_step.attention.block_tables = step.block_tables[g];
    dsa_step.attention.max_query_len = step.max_query_len;
    dsa_step.attention.max_context_len = step.max_context_len;
    dsa_step.x = x;
    dsa_step.q_input = q_in;
    dsa_step.index_cache = index_cache_;
    dsa_step.positions = step.positions;
    dsa_step.slots = step.slots[g];
    dsa_step.inv_freq = dsa_.rope.inv_freq;
    dsa_step.attention_scaling = dsa_.rope.attention_scaling;
    dsa_step.blocks = step.dsa_blocks;
    const bool dense =
        dsa_attends_densely(dsa_.config->topk, dsa_.prefill, step.max_query_len, step.max_context_len);
    RETURN_IF_ERROR(select_dsa_tokens(b, *dsa_.config, *indexer_, dsa_step, !dense, scratch.dsa));
    if (dense) {
      RETURN_IF_ERROR(b.latent_attention(attn));
    } else {
      DsaRowBlockTensors whole;
      for (const DsaRowBlockTensors& block : dsa_row_blocks(dsa_step, whole)) {
        const int64_t rows = block.row_end - block.row_begin, seqs = block.seq_end - block.seq_begin;
        LatentAttentionArgs part = attn;
        part.q_latent = attn.q_latent.rows(block.row_begin, rows);
        part.q_rope = attn.q_rope.rows(block.row_begin, rows);
        part.query_start = block.query_start;
        part.context_lens = block.context_lens;
        part.block_tables = attn.block_tables.rows(block.seq_begin, seqs);
        part.indices = scratch.dsa.indices.rows(block.row_begin, rows);
        part.out = attn.out.rows(block.row_begin, rows);
        part.max_context_len = block.max_context_len;
        RETURN_IF_ERROR(b.latent_attention(part));
      }
    }
  }

  // Expand: o_h = W_UV,h o_l,h, then o_proj.
  Tensor o_heads = LayerScratch::view(scratch.q, t, h * v_);
  HeadMatmulArgs expand;
  expand.x = attn.out;
  expand.w = kv_b_;
  expand.row_begin = nope_;
  expand.num_rows = v_;
  expand.out = o_heads.reshape({t, h, v_});
  RETURN_IF_ERROR(b.head_matmul(expand));
  return o_.forward(b, o_heads, out);
}

}  // namespace longbow
