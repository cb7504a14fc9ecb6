// CudaBackend's DSA ops over kernels/dsa (contracts in backend.h, kernels in kernels/dsa/params.h).
// bf16 activations, weights and K/V; the index cache holds raw FP8 pages; scores are fp32.
#include "model/backend/cuda/cuda_dsa.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/dsa/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow::cuda_dsa {
namespace {

static_assert(kernels::kDsaPageSize == kPageSize, "kernels and model disagree on the index page size");

using op_checks::fits_int;

Status check(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
             std::initializer_list<int64_t> dims) {
  return op_checks::tensor_is(op, name, t, dtype, dims);
}

float hadamard_scale(int64_t head_dim) { return 1.0f / std::sqrt(static_cast<float>(head_dim)); }

// index_scores' scratch: the FP8 queries [rows, heads, d], then (16-byte aligned) w_eff [rows, heads].
size_t query_fp8_bytes(int64_t rows, int64_t heads, int64_t d) { return static_cast<size_t>(rows * heads * d); }
size_t index_scores_bytes(int64_t rows, int64_t heads, int64_t d) {
  return query_fp8_bytes(rows, heads, d) + static_cast<size_t>(rows * heads) * 4 + 16;
}

// topk's logits bound: the row width (every row's length fits it).
int topk_bound(int64_t logits_width) {
  return static_cast<int>(std::min<int64_t>(logits_width, std::numeric_limits<int>::max()));
}

size_t sparse_bytes(int rows, int q_heads, int kv_heads, int head_dim, int topk, int num_sms) {
  const int splits = kernels::dsa_sparse_choose_splits(rows, kv_heads, topk, num_sms);
  return splits > 1 ? kernels::dsa_sparse_workspace_bytes(rows, q_heads, head_dim, splits) : 0;
}

// sparse_attention's choice between the per-row gather kernel (decode: one row per sequence) and
// the masked flash kernel (prefill: a 128-row tile reads each K/V page once for all its rows). A
// gather row reads topk K/V rows; a flash tile reads the whole causal context once per query head,
// so the flash path pays off once a sequence brings many rows. Threshold untuned: 64 rows per
// sequence on average (at the 8B shape and a 16K context a 128-row tile streams about 0.27 GB of
// K/V through L2 for its 32 heads; 64 gathered rows read 0.54 GB).
bool use_prefill_path(int rows, int seqs) { return rows >= 64 * seqs; }

}  // namespace

Status index_keys(const Context& ctx, const DsaIndexKeysArgs& a) {
  constexpr std::string_view op = "dsa_index_keys";
  RETURN_IF_ERROR(check(op, "k_raw", a.k_raw, DType::kBF16, {-1, -1}));
  const int64_t tokens = a.k_raw.dim(0), d = a.k_raw.dim(1);
  RETURN_IF_ERROR(check(op, "norm_weight", a.norm_weight, DType::kBF16, {d}));
  RETURN_IF_ERROR(check(op, "norm_bias", a.norm_bias, DType::kBF16, {d}));
  RETURN_IF_ERROR(check(op, "positions", a.positions, DType::kI32, {tokens}));
  RETURN_IF_ERROR(check(op, "slots", a.slots, DType::kI32, {tokens}));
  RETURN_IF_ERROR(check(op, "inv_freq", a.inv_freq, DType::kF32, {-1}));
  RETURN_IF_ERROR(check(op, "index_cache", a.index_cache, DType::kFP8E4M3, {-1, kPageSize * (d + 4)}));
  RETURN_IF_ERROR(fits_int(op, "k_raw", tokens));
  kernels::DsaIndexKeyParams p;
  p.k_raw = a.k_raw.data;
  p.gamma = a.norm_weight.data;
  p.beta = a.norm_bias.data;
  p.positions = a.positions.as<int>();
  p.slots = a.slots.as<int>();
  p.inv_freq = a.inv_freq.as<float>();
  p.attention_scaling = a.attention_scaling;
  p.hadamard_scale = hadamard_scale(d);
  p.cache = static_cast<uint8_t*>(a.index_cache.data);
  p.tokens = static_cast<int>(tokens);
  p.head_dim = static_cast<int>(d);
  p.rope_dim = static_cast<int>(2 * a.inv_freq.dim(0));
  return cuda_status(kernels::launch_dsa_index_keys(p, ctx.stream), op);
}

Status index_scores(const Context& ctx, const DsaIndexScoresArgs& a) {
  constexpr std::string_view op = "dsa_index_scores";
  RETURN_IF_ERROR(check(op, "q", a.q, DType::kBF16, {-1, -1, -1}));
  const int64_t rows = a.q.dim(0), heads = a.q.dim(1), d = a.q.dim(2);
  RETURN_IF_ERROR(check(op, "weights", a.weights, DType::kBF16, {rows, heads}));
  RETURN_IF_ERROR(check(op, "positions", a.positions, DType::kI32, {rows}));
  RETURN_IF_ERROR(check(op, "inv_freq", a.inv_freq, DType::kF32, {-1}));
  RETURN_IF_ERROR(check(op, "index_cache", a.index_cache, DType::kFP8E4M3, {-1, kPageSize * (d + 4)}));
  RETURN_IF_ERROR(check(op, "context_lens", a.context_lens, DType::kI32, {-1}));
  const int64_t seqs = a.context_lens.dim(0);
  RETURN_IF_ERROR(check(op, "query_start", a.query_start, DType::kI32, {seqs + 1}));
  RETURN_IF_ERROR(check(op, "block_tables", a.block_tables, DType::kI32, {seqs, -1}));
  RETURN_IF_ERROR(check(op, "logits", a.logits, DType::kF32, {rows, -1}));
  if (a.logits.dim(1) < a.max_context_len) {
    return invalid_argument(std::string(op) + ": logits " + a.logits.shape_string() + " is narrower than " +
                            "max_context_len " + std::to_string(a.max_context_len));
  }
  RETURN_IF_ERROR(fits_int(op, "q", rows * heads));
  if (rows == 0) return Status::Ok();
  const size_t q8_bytes = query_fp8_bytes(rows, heads, d);
  ASSIGN_OR_RETURN(void* scratch, ctx.workspace(index_scores_bytes(rows, heads, d)));
  auto* q8 = static_cast<uint8_t*>(scratch);
  auto* w_eff = reinterpret_cast<float*>(q8 + (q8_bytes + 15) / 16 * 16);

  kernels::DsaIndexQueryParams qp;
  qp.q = a.q.data;
  qp.w_raw = a.weights.data;
  qp.positions = a.positions.as<int>();
  qp.inv_freq = a.inv_freq.as<float>();
  qp.attention_scaling = a.attention_scaling;
  qp.hadamard_scale = hadamard_scale(d);
  qp.weight_scale =
      1.0f / std::sqrt(static_cast<float>(heads)) * (1.0f / std::sqrt(static_cast<float>(d)));
  qp.q_fp8 = q8;
  qp.w_eff = w_eff;
  qp.rows = static_cast<int>(rows);
  qp.heads = static_cast<int>(heads);
  qp.head_dim = static_cast<int>(d);
  qp.rope_dim = static_cast<int>(2 * a.inv_freq.dim(0));
  RETURN_IF_ERROR(cuda_status(kernels::launch_dsa_index_query(qp, ctx.stream), op));

  kernels::DsaIndexLogitsParams lp;
  lp.q_fp8 = q8;
  lp.w_eff = w_eff;
  lp.cache = static_cast<const uint8_t*>(a.index_cache.data);
  lp.query_start = a.query_start.as<int>();
  lp.context_lens = a.context_lens.as<int>();
  lp.block_tables = a.block_tables.as<int>();
  lp.logits = a.logits.as<float>();
  lp.logits_stride = a.logits.dim(1);
  lp.seqs = static_cast<int>(seqs);
  lp.rows = static_cast<int>(rows);
  lp.max_pages = static_cast<int>(a.block_tables.dim(1));
  lp.max_context_len = a.max_context_len;
  lp.heads = static_cast<int>(heads);
  lp.head_dim = static_cast<int>(d);
  lp.skip_len = a.skip_len;
  lp.num_sms = ctx.num_sms;
  return cuda_status(kernels::launch_dsa_index_logits(lp, ctx.stream), op);
}

Status topk(const Context& ctx, const DsaTopkArgs& a) {
  constexpr std::string_view op = "dsa_topk";
  RETURN_IF_ERROR(check(op, "logits", a.logits, DType::kF32, {-1, -1}));
  const int64_t rows = a.logits.dim(0);
  RETURN_IF_ERROR(check(op, "context_lens", a.context_lens, DType::kI32, {-1}));
  RETURN_IF_ERROR(check(op, "query_start", a.query_start, DType::kI32, {a.context_lens.dim(0) + 1}));
  RETURN_IF_ERROR(check(op, "indices", a.indices, DType::kI32, {rows, -1}));
  RETURN_IF_ERROR(fits_int(op, "logits", rows));
  kernels::DsaTopkParams p;
  p.logits = a.logits.as<float>();
  p.query_start = a.query_start.as<int>();
  p.context_lens = a.context_lens.as<int>();
  p.indices = a.indices.as<int>();
  p.logits_stride = a.logits.dim(1);
  p.seqs = static_cast<int>(a.context_lens.dim(0));
  p.rows = static_cast<int>(rows);
  p.k = static_cast<int>(a.indices.dim(1));
  // The logits width bounds every row's length; rows beyond their real length exit early.
  p.max_context_len = topk_bound(p.logits_stride);
  p.num_sms = ctx.num_sms;
  const size_t bytes = kernels::dsa_topk_workspace_bytes(p.rows, p.max_context_len, p.num_sms);
  if (bytes > 0) {
    ASSIGN_OR_RETURN(p.workspace, ctx.workspace(bytes));
  }
  return cuda_status(kernels::launch_dsa_topk(p, ctx.stream), op);
}

Status sparse_attention(const Context& ctx, const DsaSparseAttentionArgs& a) {
  constexpr std::string_view op = "dsa_sparse_attention";
  RETURN_IF_ERROR(check(op, "q", a.q, DType::kBF16, {-1, -1, -1}));
  const int64_t rows = a.q.dim(0), q_heads = a.q.dim(1), d = a.q.dim(2);
  RETURN_IF_ERROR(check(op, "k_cache", a.k_cache, DType::kBF16, {-1, kPageSize, -1, d}));
  const int64_t kv_heads = a.k_cache.dim(2);
  RETURN_IF_ERROR(check(op, "v_cache", a.v_cache, DType::kBF16, {a.k_cache.dim(0), kPageSize, kv_heads, d}));
  RETURN_IF_ERROR(check(op, "indices", a.indices, DType::kI32, {rows, -1}));
  RETURN_IF_ERROR(check(op, "block_tables", a.block_tables, DType::kI32, {-1, -1}));
  const int64_t seqs = a.block_tables.dim(0);
  RETURN_IF_ERROR(check(op, "query_start", a.query_start, DType::kI32, {seqs + 1}));
  RETURN_IF_ERROR(check(op, "out", a.out, DType::kBF16, {rows, q_heads, d}));
  if (kv_heads == 0 || q_heads % kv_heads != 0 || q_heads / kv_heads > 8) {
    return invalid_argument(std::string(op) + ": " + std::to_string(q_heads) + " query heads over " +
                            std::to_string(kv_heads) + " kv heads (groups of at most 8 supported)");
  }
  RETURN_IF_ERROR(fits_int(op, "q", rows));
  if (rows == 0) return Status::Ok();
  kernels::DsaSparseAttentionParams p;
  p.q = a.q.data;
  p.k_cache = a.k_cache.data;
  p.v_cache = a.v_cache.data;
  p.indices = a.indices.as<int>();
  p.query_start = a.query_start.as<int>();
  p.block_tables = a.block_tables.as<int>();
  p.out = a.out.data;
  p.scale = a.scale;
  p.seqs = static_cast<int>(seqs);
  p.rows = static_cast<int>(rows);
  p.max_pages = static_cast<int>(a.block_tables.dim(1));
  p.topk = static_cast<int>(a.indices.dim(1));
  p.q_heads = static_cast<int>(q_heads);
  p.kv_heads = static_cast<int>(kv_heads);
  p.head_dim = static_cast<int>(d);
  if (use_prefill_path(p.rows, p.seqs)) {
    ASSIGN_OR_RETURN(p.workspace, ctx.workspace(kernels::dsa_sparse_prefill_workspace_bytes(p.rows, p.max_pages)));
    return cuda_status(kernels::launch_dsa_sparse_prefill_attention(p, p.rows, ctx.stream), op);
  }
  p.num_splits = kernels::dsa_sparse_choose_splits(p.rows, p.kv_heads, p.topk, ctx.num_sms);
  if (p.num_splits > 1) {
    ASSIGN_OR_RETURN(p.workspace,
                     ctx.workspace(sparse_bytes(p.rows, p.q_heads, p.kv_heads, p.head_dim, p.topk, ctx.num_sms)));
  }
  return cuda_status(kernels::launch_dsa_sparse_attention(p, ctx.stream), op);
}

// The shapes reserved are decode graphs' (one row per sequence): the gather path's scratch.
size_t workspace_bytes(const Context& ctx, const DsaWorkspaceShape& s) {
  if (s.rows <= 0) return 0;
  const size_t scores = index_scores_bytes(s.rows, s.index_heads, s.index_head_dim);
  const size_t topk = kernels::dsa_topk_workspace_bytes(s.rows, topk_bound(s.logits_width), ctx.num_sms);
  const size_t sparse = sparse_bytes(s.rows, s.q_heads, s.kv_heads, s.head_dim, s.topk, ctx.num_sms);
  return std::max({scores, topk, sparse});
}

}  // namespace longbow::cuda_dsa
