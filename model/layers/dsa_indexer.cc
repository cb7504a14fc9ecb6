// The DSA indexer and its scratch (contracts in dsa_indexer.h).
#include "model/layers/dsa_indexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

#include "model/layers/dsa_row_blocks.h"

namespace longbow {

StatusOr<DsaIndexerWeights> take_dsa_indexer(const std::map<std::string, Tensor>& tensors, const std::string& prefix,
                                             const std::string& wq_name) {
  auto take = [&](const std::string& suffix) -> StatusOr<Tensor> {
    auto it = tensors.find(prefix + suffix);
    if (it == tensors.end()) return not_found(fmt::format("dsa indexer: tensor {}{} was not loaded", prefix, suffix));
    return it->second;
  };
  DsaIndexerWeights w;
  ASSIGN_OR_RETURN(w.wq, take(wq_name + ".weight"));
  ASSIGN_OR_RETURN(w.wk, take("wk.weight"));
  ASSIGN_OR_RETURN(w.weights_proj, take("weights_proj.weight"));
  ASSIGN_OR_RETURN(w.k_norm_weight, take("k_norm.weight"));
  ASSIGN_OR_RETURN(w.k_norm_bias, take("k_norm.bias"));
  return w;
}

StatusOr<DsaPrefillMode> parse_dsa_prefill_mode(const std::string& name) {
  if (name == "sparse") return DsaPrefillMode::kSparse;
  if (name == "dense") return DsaPrefillMode::kDense;
  return invalid_argument("dsa prefill mode: expected sparse or dense, got '" + name + "'");
}

const char* dsa_prefill_mode_name(DsaPrefillMode mode) {
  return mode == DsaPrefillMode::kSparse ? "sparse" : "dense";
}

StatusOr<DsaScratch> allocate_dsa_scratch(Backend& backend, const DsaIndexerConfig& config, int max_tokens,
                                          int max_context_len, size_t logits_budget_bytes) {
  const DType dtype = backend.compute_dtype();
  const int64_t t = max_tokens;
  const int64_t row = dsa_logits_width(max_context_len);
  const int64_t capacity =
      std::max(row, std::min(t * row, static_cast<int64_t>(logits_budget_bytes / sizeof(float)) / row * row));
  DsaScratch s;
  auto take = [&](Tensor* tensor, DType type, std::initializer_list<int64_t> dims) -> Status {
    StatusOr<Tensor> allocated = backend.allocate(type, dims);
    if (!allocated.ok()) return allocated.status().with_context("allocating the DSA scratch");
    *tensor = std::move(allocated).value();
    s.num_bytes += tensor->num_bytes();
    return Status::Ok();
  };
  RETURN_IF_ERROR(take(&s.k_raw, dtype, {t, config.head_dim}));
  RETURN_IF_ERROR(take(&s.q_index, dtype, {t, int64_t{config.n_heads} * config.head_dim}));
  RETURN_IF_ERROR(take(&s.weights, dtype, {t, config.n_heads}));
  RETURN_IF_ERROR(take(&s.logits, DType::kF32, {capacity}));
  RETURN_IF_ERROR(take(&s.indices, DType::kI32, {t, config.topk}));
  return s;
}

std::span<const DsaRowBlockTensors> dsa_row_blocks(const DsaAttentionStep& step, DsaRowBlockTensors& whole) {
  const PagedAttentionArgs& attn = step.attention;
  whole.row_end = static_cast<int>(step.x.dim(0));
  whole.seq_end = static_cast<int>(attn.context_lens.dim(0));
  whole.query_start = attn.query_start;
  whole.context_lens = attn.context_lens;
  whole.max_context_len = attn.max_context_len;
  return step.blocks.empty() ? std::span(&whole, 1) : step.blocks;
}

Status select_dsa_tokens(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         const DsaAttentionStep& step, bool select, DsaScratch& scratch) {
  const int64_t tokens = step.x.dim(0);
  if (step.inv_freq.rank != 1 || 2 * step.inv_freq.dim(0) != config.rope_dim) {
    return invalid_argument("dsa indexer: inv_freq has " + step.inv_freq.shape_string() + ", expected [" +
                            std::to_string(config.rope_dim / 2) + "] for index_rope_dim " +
                            std::to_string(config.rope_dim));
  }
  if (scratch.k_raw.data == nullptr || tokens > scratch.k_raw.dim(0) || scratch.indices.dim(1) != config.topk) {
    return invalid_argument("dsa indexer: the scratch holds " + std::to_string(scratch.k_raw.dim(0)) +
                            " rows, the step has " + std::to_string(tokens));
  }
  // Index keys of every new token first: this step's scores already see them.
  Tensor k_raw = scratch.k_raw.rows(0, tokens);
  RETURN_IF_ERROR(backend.matmul(step.x, weights.wk, Tensor{}, k_raw));
  DsaIndexKeysArgs keys{k_raw,      weights.k_norm_weight, weights.k_norm_bias,    step.positions,
                        step.slots, step.inv_freq,         step.attention_scaling, step.index_cache};
  RETURN_IF_ERROR(backend.dsa_index_keys(keys));
  if (!select) return Status::Ok();

  Tensor q_index = scratch.q_index.rows(0, tokens);
  Tensor head_weights = scratch.weights.rows(0, tokens);
  RETURN_IF_ERROR(backend.matmul(step.q_input.data != nullptr ? step.q_input : step.x, weights.wq, Tensor{}, q_index));
  RETURN_IF_ERROR(backend.matmul(step.x, weights.weights_proj, Tensor{}, head_weights));
  Tensor q_heads = q_index.reshape({tokens, config.n_heads, config.head_dim});

  DsaRowBlockTensors whole;
  for (const DsaRowBlockTensors& block : dsa_row_blocks(step, whole)) {
    const int64_t rows = block.row_end - block.row_begin;
    const int64_t seqs = block.seq_end - block.seq_begin;
    const int64_t width = dsa_logits_width(block.max_context_len);
    if (rows < 1 || block.row_end > tokens || rows * width > scratch.logits.numel()) {
      return invalid_argument("dsa indexer: a block of rows [" + std::to_string(block.row_begin) + ", " +
                              std::to_string(block.row_end) + ") at context " +
                              std::to_string(block.max_context_len) + " does not fit the scratch");
    }
    Tensor logits = scratch.logits.rows(0, rows * width).reshape({rows, width});
    Tensor indices = scratch.indices.rows(block.row_begin, rows);
    DsaIndexScoresArgs scores;
    scores.q = q_heads.rows(block.row_begin, rows);
    scores.weights = head_weights.rows(block.row_begin, rows);
    scores.positions = step.positions.rows(block.row_begin, rows);
    scores.inv_freq = step.inv_freq;
    scores.attention_scaling = step.attention_scaling;
    scores.index_cache = step.index_cache;
    scores.query_start = block.query_start;
    scores.context_lens = block.context_lens;
    scores.block_tables = step.attention.block_tables.rows(block.seq_begin, seqs);
    scores.logits = logits;
    scores.max_context_len = block.max_context_len;
    scores.skip_len = config.topk;
    RETURN_IF_ERROR(backend.dsa_index_scores(scores));
    RETURN_IF_ERROR(backend.dsa_topk(DsaTopkArgs{logits, block.query_start, block.context_lens, indices}));
  }
  return Status::Ok();
}

Status attend_dsa_selection(Backend& backend, const DsaAttentionStep& step, const DsaScratch& scratch) {
  const PagedAttentionArgs& attn = step.attention;
  DsaRowBlockTensors whole;
  for (const DsaRowBlockTensors& block : dsa_row_blocks(step, whole)) {
    const int64_t rows = block.row_end - block.row_begin;
    const int64_t seqs = block.seq_end - block.seq_begin;
    RETURN_IF_ERROR(backend.dsa_sparse_attention(DsaSparseAttentionArgs{
        attn.q.rows(block.row_begin, rows), attn.k_cache, attn.v_cache, scratch.indices.rows(block.row_begin, rows),
        block.query_start, attn.block_tables.rows(block.seq_begin, seqs), attn.out.rows(block.row_begin, rows),
        attn.scale}));
  }
  return Status::Ok();
}

bool dsa_attends_densely(int topk, DsaPrefillMode mode, int max_query_len, int max_context_len) {
  const bool selects_everything = max_context_len <= topk;
  return selects_everything || (mode == DsaPrefillMode::kDense && max_query_len > 1);
}

Status run_dsa_attention(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         DsaPrefillMode mode, const DsaAttentionStep& step, DsaScratch& scratch) {
  const bool dense =
      dsa_attends_densely(config.topk, mode, step.attention.max_query_len, step.attention.max_context_len);
  RETURN_IF_ERROR(select_dsa_tokens(backend, config, weights, step, !dense, scratch));
  if (dense) return backend.paged_attention(step.attention);
  return attend_dsa_selection(backend, step, scratch);
}

}  // namespace longbow
