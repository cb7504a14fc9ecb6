// CpuBackend's DSA ops (contracts in backend.h) over the reference functions of cpu_dsa.h. Each op
// validates dtypes, shapes and index ranges before writing anything.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_checks.h"
#include "model/backend/cpu/cpu_dsa.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

namespace {

constexpr DType kF32 = DType::kF32;
constexpr DType kI32 = DType::kI32;
constexpr DType kFp8 = DType::kFP8E4M3;

std::string num(int64_t v) { return std::to_string(v); }

// The index cache [P, 64·(Di + 4)]: returns its page count, checks Di is a power of two.
Status check_index_cache(std::string_view op, const Tensor& cache, int64_t head_dim) {
  if (head_dim < 2 || (head_dim & (head_dim - 1)) != 0) {
    return invalid_argument(std::string(op) + ": index head_dim " + num(head_dim) + " is not a power of two");
  }
  return check_tensor(op, "index_cache", cache, kFp8, {kAnyDim, kPageSize * (head_dim + 4)});
}

Status check_rope(std::string_view op, const Tensor& inv_freq, int64_t head_dim) {
  RETURN_IF_ERROR(check_tensor(op, "inv_freq", inv_freq, kF32, {kAnyDim}));
  if (2 * inv_freq.dim(0) > head_dim) {
    return invalid_argument(std::string(op) + ": inv_freq has " + num(inv_freq.dim(0)) + " pairs, more than " +
                            num(head_dim) + " / 2");
  }
  return Status::Ok();
}

}  // namespace

Status CpuBackend::dsa_index_keys(const DsaIndexKeysArgs& a) {
  RETURN_IF_ERROR(check_tensor("dsa_index_keys", "k_raw", a.k_raw, kF32, {kAnyDim, kAnyDim}));
  int64_t tokens = a.k_raw.dim(0), d = a.k_raw.dim(1);
  RETURN_IF_ERROR(check_tensor("dsa_index_keys", "norm_weight", a.norm_weight, kF32, {d}));
  RETURN_IF_ERROR(check_tensor("dsa_index_keys", "norm_bias", a.norm_bias, kF32, {d}));
  RETURN_IF_ERROR(check_tensor("dsa_index_keys", "positions", a.positions, kI32, {tokens}));
  RETURN_IF_ERROR(check_tensor("dsa_index_keys", "slots", a.slots, kI32, {tokens}));
  RETURN_IF_ERROR(check_rope("dsa_index_keys", a.inv_freq, d));
  RETURN_IF_ERROR(check_index_cache("dsa_index_keys", a.index_cache, d));
  int64_t num_slots = a.index_cache.dim(0) * kPageSize;
  for (int64_t t = 0; t < tokens; ++t) {
    int32_t slot = a.slots.as<int32_t>()[t];
    if (slot < -1 || slot >= num_slots || a.positions.as<int32_t>()[t] < 0) {
      return invalid_argument("dsa_index_keys: slots[" + num(t) + "] = " + num(slot) +
                              " or its position is out of range");
    }
  }
  cpu::DsaIndexKeyArgs k;
  k.k_raw = a.k_raw.as<float>();
  k.gamma = a.norm_weight.as<float>();
  k.beta = a.norm_bias.as<float>();
  k.positions = a.positions.as<int32_t>();
  k.slots = a.slots.as<int32_t>();
  k.inv_freq = a.inv_freq.as<float>();
  k.attention_scaling = a.attention_scaling;
  k.tokens = tokens;
  k.head_dim = static_cast<int>(d);
  k.rope_dim = static_cast<int>(2 * a.inv_freq.dim(0));
  k.fp8_cache = a.index_cache.as<uint8_t>();
  cpu::dsa_write_index_keys(k);
  return Status::Ok();
}

Status CpuBackend::dsa_index_scores(const DsaIndexScoresArgs& a) {
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "q", a.q, kF32, {kAnyDim, kAnyDim, kAnyDim}));
  int64_t rows = a.q.dim(0), heads = a.q.dim(1), d = a.q.dim(2);
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "weights", a.weights, kF32, {rows, heads}));
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "positions", a.positions, kI32, {rows}));
  RETURN_IF_ERROR(check_rope("dsa_index_scores", a.inv_freq, d));
  RETURN_IF_ERROR(check_index_cache("dsa_index_scores", a.index_cache, d));
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "context_lens", a.context_lens, kI32, {kAnyDim}));
  int64_t seqs = a.context_lens.dim(0);
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "query_start", a.query_start, kI32, {seqs + 1}));
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "block_tables", a.block_tables, kI32, {seqs, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("dsa_index_scores", "logits", a.logits, kF32, {rows, kAnyDim}));
  RETURN_IF_ERROR(
      cpu::check_rows("dsa_index_scores", a.query_start, a.context_lens, a.block_tables, rows, a.index_cache.dim(0)));
  for (int64_t len : cpu::row_lengths(a.query_start, a.context_lens)) {
    if (len > a.logits.dim(1)) {
      return invalid_argument("dsa_index_scores: a row of length " + num(len) + " does not fit logits " +
                              a.logits.shape_string());
    }
  }
  std::vector<float> q(a.q.as<float>(), a.q.as<float>() + a.q.numel());
  cpu::dsa_rope(q.data(), rows, static_cast<int>(heads), static_cast<int>(d), static_cast<int>(2 * a.inv_freq.dim(0)),
                a.positions.as<int32_t>(), a.inv_freq.as<float>(), a.attention_scaling);
  std::vector<uint8_t> q8(q.size());
  std::vector<float> w(static_cast<size_t>(rows * heads));
  cpu::dsa_prepare_query(q.data(), a.weights.as<float>(), rows, static_cast<int>(heads), static_cast<int>(d), q8.data(),
                         w.data());
  cpu::DsaIndexLogitsArgs l;
  l.q_fp8 = q8.data();
  l.w_eff = w.data();
  l.fp8_cache = a.index_cache.as<uint8_t>();
  l.query_start = a.query_start.as<int32_t>();
  l.context_lens = a.context_lens.as<int32_t>();
  l.block_tables = a.block_tables.as<int32_t>();
  l.seqs = static_cast<int>(seqs);
  l.max_pages = static_cast<int>(a.block_tables.dim(1));
  l.heads = static_cast<int>(heads);
  l.head_dim = static_cast<int>(d);
  l.logits = a.logits.as<float>();
  l.logits_stride = a.logits.dim(1);
  cpu::dsa_index_logits(l);
  return Status::Ok();
}

Status CpuBackend::dsa_topk(const DsaTopkArgs& a) {
  RETURN_IF_ERROR(check_tensor("dsa_topk", "logits", a.logits, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = a.logits.dim(0);
  RETURN_IF_ERROR(check_tensor("dsa_topk", "context_lens", a.context_lens, kI32, {kAnyDim}));
  RETURN_IF_ERROR(check_tensor("dsa_topk", "query_start", a.query_start, kI32, {a.context_lens.dim(0) + 1}));
  RETURN_IF_ERROR(check_tensor("dsa_topk", "indices", a.indices, kI32, {rows, kAnyDim}));
  int64_t k = a.indices.dim(1);
  if (k < 1) return invalid_argument("dsa_topk: indices " + a.indices.shape_string() + " selects nothing");
  RETURN_IF_ERROR(cpu::check_lengths("dsa_topk", a.query_start, a.context_lens, rows));
  std::vector<int64_t> lens = cpu::row_lengths(a.query_start, a.context_lens);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t len = lens[static_cast<size_t>(r)];
    if (len > k && len > a.logits.dim(1)) {
      return invalid_argument("dsa_topk: row " + num(r) + " of length " + num(len) + " does not fit logits " +
                              a.logits.shape_string());
    }
  }
  for (int64_t r = 0; r < rows; ++r) {
    cpu::dsa_topk(a.logits.as<float>() + r * a.logits.dim(1), lens[static_cast<size_t>(r)], static_cast<int>(k),
                  a.indices.as<int32_t>() + r * k);
  }
  return Status::Ok();
}

Status CpuBackend::dsa_sparse_attention(const DsaSparseAttentionArgs& a) {
  ASSIGN_OR_RETURN(cpu::PagedKvShape shape,
                   cpu::check_paged_kv("dsa_sparse_attention", a.q, a.k_cache, a.v_cache, kPageSize));
  const int64_t rows = shape.tokens, q_heads = shape.q_heads, d = shape.head_dim;
  const int64_t pages = shape.pages, kv_heads = shape.kv_heads;
  RETURN_IF_ERROR(check_tensor("dsa_sparse_attention", "indices", a.indices, kI32, {rows, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("dsa_sparse_attention", "block_tables", a.block_tables, kI32, {kAnyDim, kAnyDim}));
  int64_t seqs = a.block_tables.dim(0);
  RETURN_IF_ERROR(check_tensor("dsa_sparse_attention", "query_start", a.query_start, kI32, {seqs + 1}));
  RETURN_IF_ERROR(check_tensor("dsa_sparse_attention", "out", a.out, kF32, {rows, q_heads, d}));
  RETURN_IF_ERROR(cpu::check_disjoint("dsa_sparse_attention", "out", a.out, "q", a.q));
  if (!std::isfinite(a.scale)) return invalid_argument("dsa_sparse_attention: scale is not finite");
  const int32_t* starts = a.query_start.as<int32_t>();
  if (starts[0] != 0 || starts[seqs] != rows) {
    return invalid_argument("dsa_sparse_attention: query_start must run from 0 to the row count " + num(rows));
  }
  int64_t topk = a.indices.dim(1), max_pages = a.block_tables.dim(1);
  for (int64_t s = 0; s < seqs; ++s) {
    for (int64_t r = starts[s]; r < starts[s + 1]; ++r) {
      for (int64_t i = 0; i < topk; ++i) {
        int32_t j = a.indices.as<int32_t>()[r * topk + i];
        if (j < -1 || j >= max_pages * kPageSize) {
          return invalid_argument("dsa_sparse_attention: indices[" + num(r) + "][" + num(i) + "] = " + num(j) +
                                  " is outside the block table");
        }
        if (j < 0) continue;
        int32_t page = a.block_tables.as<int32_t>()[s * max_pages + j / kPageSize];
        if (page < 0 || page >= pages) {
          return invalid_argument("dsa_sparse_attention: token " + num(j) + " of sequence " + num(s) +
                                  " maps to page " + num(page) + " outside the pool");
        }
      }
    }
  }
  cpu::DsaSparseAttentionArgs c;
  c.q = a.q.as<float>();
  c.k_cache = a.k_cache.as<float>();
  c.v_cache = a.v_cache.as<float>();
  c.indices = a.indices.as<int32_t>();
  c.query_start = starts;
  c.block_tables = a.block_tables.as<int32_t>();
  c.seqs = static_cast<int>(seqs);
  c.max_pages = static_cast<int>(max_pages);
  c.topk = static_cast<int>(topk);
  c.q_heads = static_cast<int>(q_heads);
  c.kv_heads = static_cast<int>(kv_heads);
  c.head_dim = static_cast<int>(d);
  c.scale = a.scale;
  c.out = a.out.as<float>();
  cpu::dsa_sparse_attention(c);
  return Status::Ok();
}

}  // namespace longbow
