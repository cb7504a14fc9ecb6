// run_dsa_attention (contract in dsa_attention.h).
#include "model/runtime/dsa_attention.h"

#include <string>

namespace longbow {
namespace {

// A [rows, cols] scratch tensor of `dtype`, reallocated when the shape changes.
Status ensure(Backend& backend, Tensor& t, DType dtype, int64_t rows, int64_t cols) {
  if (t.data != nullptr && t.dtype == dtype && t.rank == 2 && t.dim(0) == rows && t.dim(1) == cols) {
    return Status::Ok();
  }
  ASSIGN_OR_RETURN(t, backend.allocate(dtype, {rows, cols}));
  return Status::Ok();
}

}  // namespace

Status run_dsa_attention(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         DsaPrefillMode mode, const DsaAttentionStep& step, DsaScratch& scratch) {
  const int64_t tokens = step.x.dim(0);
  const DType dtype = backend.compute_dtype();
  if (step.inv_freq.rank != 1 || 2 * step.inv_freq.dim(0) != config.rope_dim) {
    return invalid_argument("dsa attention: inv_freq has " + step.inv_freq.shape_string() + ", expected [" +
                            std::to_string(config.rope_dim / 2) + "] for index_rope_dim " +
                            std::to_string(config.rope_dim));
  }
  // Index keys of every new token first: this step's scores already see them.
  RETURN_IF_ERROR(ensure(backend, scratch.k_raw, dtype, tokens, config.head_dim));
  RETURN_IF_ERROR(backend.matmul(step.x, weights.wk, Tensor{}, scratch.k_raw));
  DsaIndexKeysArgs keys{scratch.k_raw, weights.k_norm_weight, weights.k_norm_bias, step.positions,
                        step.slots,    step.inv_freq,         step.attention_scaling, step.index_cache};
  RETURN_IF_ERROR(backend.dsa_index_keys(keys));

  if (mode == DsaPrefillMode::kDense && step.max_query_len > 1) {
    PagedAttentionArgs dense;
    dense.q = step.q;
    dense.k_cache = step.k_cache;
    dense.v_cache = step.v_cache;
    dense.query_start = step.query_start;
    dense.context_lens = step.context_lens;
    dense.block_tables = step.block_tables;
    dense.out = step.out;
    dense.max_query_len = step.max_query_len;
    dense.max_context_len = step.max_context_len;
    dense.scale = step.scale;
    return backend.paged_attention(dense);
  }

  RETURN_IF_ERROR(ensure(backend, scratch.q_index, dtype, tokens, int64_t{config.n_heads} * config.head_dim));
  RETURN_IF_ERROR(ensure(backend, scratch.weights, dtype, tokens, config.n_heads));
  RETURN_IF_ERROR(backend.matmul(step.x, weights.wq, Tensor{}, scratch.q_index));
  RETURN_IF_ERROR(backend.matmul(step.x, weights.weights_proj, Tensor{}, scratch.weights));
  // Logits rows are padded to a multiple of 4 (16-byte rows for the GPU top-k's vector loads).
  const int64_t width = (int64_t{step.max_context_len} + 3) / 4 * 4;
  RETURN_IF_ERROR(ensure(backend, scratch.logits, DType::kF32, tokens, width));
  DsaIndexScoresArgs scores;
  scores.q = scratch.q_index.reshape({tokens, config.n_heads, config.head_dim});
  scores.weights = scratch.weights;
  scores.positions = step.positions;
  scores.inv_freq = step.inv_freq;
  scores.attention_scaling = step.attention_scaling;
  scores.index_cache = step.index_cache;
  scores.query_start = step.query_start;
  scores.context_lens = step.context_lens;
  scores.block_tables = step.block_tables;
  scores.logits = scratch.logits;
  scores.max_context_len = step.max_context_len;
  scores.skip_len = config.topk;
  RETURN_IF_ERROR(backend.dsa_index_scores(scores));
  RETURN_IF_ERROR(ensure(backend, scratch.indices, DType::kI32, tokens, config.topk));
  RETURN_IF_ERROR(backend.dsa_topk(DsaTopkArgs{scratch.logits, step.query_start, step.context_lens, scratch.indices}));
  return backend.dsa_sparse_attention(DsaSparseAttentionArgs{step.q, step.k_cache, step.v_cache, scratch.indices,
                                                             step.query_start, step.block_tables, step.out,
                                                             step.scale});
}

}  // namespace longbow
