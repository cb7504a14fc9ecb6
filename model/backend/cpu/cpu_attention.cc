// CpuBackend's KV-cache ops: append_kv and paged_attention (the contract is in backend.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_checks.h"
#include "model/backend/cpu/cpu_dot.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

namespace {

constexpr DType kF32 = DType::kF32;
constexpr DType kI32 = DType::kI32;

std::string at(std::string_view name, int64_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

// Checks the index tensors of a paged_attention call against each other, the page pool and the
// launch hints. T = q rows, P = pages in the pool.
Status check_attention_indices(const PagedAttentionArgs& args, int64_t tokens, int64_t pages) {
  int64_t seqs = args.context_lens.dim(0);
  int64_t max_pages = args.block_tables.dim(1);
  const int32_t* starts = args.query_start.as<int32_t>();
  const int32_t* lens = args.context_lens.as<int32_t>();
  const int32_t* tables = args.block_tables.as<int32_t>();
  if (starts[0] != 0) {
    return invalid_argument("paged_attention: query_start[0] = " + std::to_string(starts[0]) + ", expected 0");
  }
  if (starts[seqs] != tokens) {
    return invalid_argument("paged_attention: " + at("query_start", seqs) + " = " + std::to_string(starts[seqs]) +
                            ", expected the number of query tokens " + std::to_string(tokens));
  }
  for (int64_t s = 0; s < seqs; ++s) {
    if (starts[s + 1] < starts[s]) {
      return invalid_argument("paged_attention: query_start decreases at index " + std::to_string(s + 1) + " (" +
                              std::to_string(starts[s]) + " then " + std::to_string(starts[s + 1]) + ")");
    }
  }
  for (int64_t s = 0; s < seqs; ++s) {
    int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    int64_t ctx = lens[s];
    std::string seq = " (sequence " + std::to_string(s) + ")";
    if (ctx == 0 && q_len == 1) continue;  // a graph batch's padding row: attends to nothing
    if (ctx < 1 || ctx < q_len) {
      return invalid_argument("paged_attention: " + at("context_lens", s) + " = " + std::to_string(ctx) +
                              " must be >= 1 and >= its " + std::to_string(q_len) + " queries" + seq);
    }
    if (q_len > args.max_query_len) {
      return invalid_argument("paged_attention: max_query_len " + std::to_string(args.max_query_len) +
                              " is below the query length " + std::to_string(q_len) + seq);
    }
    if (ctx > args.max_context_len) {
      return invalid_argument("paged_attention: max_context_len " + std::to_string(args.max_context_len) +
                              " is below " + at("context_lens", s) + " = " + std::to_string(ctx));
    }
    int64_t needed = (ctx + kPageSize - 1) / kPageSize;
    if (needed > max_pages) {
      return invalid_argument("paged_attention: context " + std::to_string(ctx) + " needs " +
                              std::to_string(needed) + " pages but block_tables has " +
                              std::to_string(max_pages) + " columns" + seq);
    }
    for (int64_t b = 0; b < needed; ++b) {
      // Entries behind the window are the null page (kNullPage), a page of the pool like any other.
      int32_t page = tables[s * max_pages + b];
      if (page < 0 || page >= pages) {
        return invalid_argument("paged_attention: block_tables[" + std::to_string(s) + "][" + std::to_string(b) +
                                "] = " + std::to_string(page) + " is outside the pool [0, " +
                                std::to_string(pages) + ")");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status CpuBackend::append_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                             Tensor& v_cache) {
  RETURN_IF_ERROR(check_tensor("append_kv", "k", k, kF32, {kAnyDim, kAnyDim, kAnyDim}));
  int64_t tokens = k.dim(0), kv_heads = k.dim(1), head_dim = k.dim(2);
  RETURN_IF_ERROR(check_tensor("append_kv", "v", v, kF32, {tokens, kv_heads, head_dim}));
  RETURN_IF_ERROR(check_tensor("append_kv", "slots", slots, kI32, {tokens}));
  RETURN_IF_ERROR(check_tensor("append_kv", "k_cache", k_cache, kF32, {kAnyDim, kPageSize, kv_heads, head_dim}));
  int64_t pages = k_cache.dim(0);
  RETURN_IF_ERROR(check_tensor("append_kv", "v_cache", v_cache, kF32, {pages, kPageSize, kv_heads, head_dim}));
  RETURN_IF_ERROR(cpu::check_disjoint("append_kv", "k_cache", k_cache, "v_cache", v_cache));
  const int32_t* slot = slots.as<int32_t>();
  int64_t num_slots = pages * kPageSize;
  for (int64_t t = 0; t < tokens; ++t) {
    if (slot[t] == -1) continue;  // a padding row: not stored
    if (slot[t] < 0 || slot[t] >= num_slots) {
      return invalid_argument("append_kv: " + at("slots", t) + " = " + std::to_string(slot[t]) +
                              " is outside the cache's [0, " + std::to_string(num_slots) + ")");
    }
  }
  auto row_bytes = static_cast<size_t>(kv_heads * head_dim) * sizeof(float);
  for (int64_t t = 0; t < tokens; ++t) {
    if (slot[t] == -1) continue;
    std::memcpy(k_cache.as<float>() + slot[t] * kv_heads * head_dim, k.as<float>() + t * kv_heads * head_dim,
                row_bytes);
    std::memcpy(v_cache.as<float>() + slot[t] * kv_heads * head_dim, v.as<float>() + t * kv_heads * head_dim,
                row_bytes);
  }
  return Status::Ok();
}

Status CpuBackend::paged_attention(const PagedAttentionArgs& args) {
  ASSIGN_OR_RETURN(cpu::PagedKvShape shape,
                   cpu::check_paged_kv("paged_attention", args.q, args.k_cache, args.v_cache, kPageSize));
  const int64_t tokens = shape.tokens, q_heads = shape.q_heads, head_dim = shape.head_dim;
  const int64_t pages = shape.pages, kv_heads = shape.kv_heads;
  RETURN_IF_ERROR(check_tensor("paged_attention", "context_lens", args.context_lens, kI32, {kAnyDim}));
  int64_t seqs = args.context_lens.dim(0);
  RETURN_IF_ERROR(check_tensor("paged_attention", "query_start", args.query_start, kI32, {seqs + 1}));
  RETURN_IF_ERROR(check_tensor("paged_attention", "block_tables", args.block_tables, kI32, {seqs, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("paged_attention", "out", args.out, kF32, {tokens, q_heads, head_dim}));
  RETURN_IF_ERROR(cpu::check_disjoint("paged_attention", "out", args.out, "q", args.q));
  RETURN_IF_ERROR(cpu::check_disjoint("paged_attention", "out", args.out, "k_cache", args.k_cache));
  RETURN_IF_ERROR(cpu::check_disjoint("paged_attention", "out", args.out, "v_cache", args.v_cache));
  if (!std::isfinite(args.scale)) return invalid_argument("paged_attention: scale is not finite");
  if (args.sliding_window < 0) {
    return invalid_argument("paged_attention: sliding_window " + std::to_string(args.sliding_window) +
                            " is negative");
  }
  if (args.softcap < 0.0f || !std::isfinite(args.softcap)) {
    return invalid_argument("paged_attention: softcap must be finite and >= 0");
  }
  RETURN_IF_ERROR(check_attention_indices(args, tokens, pages));

  const int32_t* starts = args.query_start.as<int32_t>();
  const int32_t* lens = args.context_lens.as<int32_t>();
  int64_t max_pages = args.block_tables.dim(1);
  int64_t group = q_heads / kv_heads;
  // Softmax statistics in double; the weighted sum of V in fp32 (weights are normalised first, so
  // every term is at most |v| and the sum stays well conditioned).
  std::vector<double> weights;
  std::vector<float> acc(static_cast<size_t>(head_dim));
  for (int64_t s = 0; s < seqs; ++s) {
    const int32_t* table = args.block_tables.as<int32_t>() + s * max_pages;
    auto cache_row = [&](const Tensor& cache, int64_t j, int64_t kv_head) {
      int64_t slot = int64_t{table[j / kPageSize]} * kPageSize + j % kPageSize;
      return cache.as<float>() + (slot * kv_heads + kv_head) * head_dim;
    };
    int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    int64_t ctx = lens[s];
    if (ctx == 0) {  // a padding row (checked: one query): output 0
      std::fill_n(args.out.as<float>() + starts[s] * q_heads * head_dim, q_heads * head_dim, 0.0f);
      continue;
    }
    for (int64_t i = 0; i < q_len; ++i) {
      int64_t pos = ctx - q_len + i;  // this query's position; it sees keys first..pos
      int64_t first = args.sliding_window > 0 ? std::max<int64_t>(0, pos - args.sliding_window + 1) : 0;
      weights.resize(static_cast<size_t>(pos - first + 1));
      for (int64_t h = 0; h < q_heads; ++h) {
        int64_t kv_head = h / group;
        const float* q = args.q.as<float>() + ((starts[s] + i) * q_heads + h) * head_dim;
        double max_score = -std::numeric_limits<double>::infinity();
        for (int64_t j = first; j <= pos; ++j) {
          double score = cpu::dot(q, cache_row(args.k_cache, j, kv_head), head_dim) * args.scale;
          if (args.softcap > 0.0f) score = args.softcap * std::tanh(score / args.softcap);
          weights[static_cast<size_t>(j - first)] = score;
          max_score = std::max(max_score, score);
        }
        double total = 0.0;
        for (double& w : weights) {
          w = std::exp(w - max_score);
          total += w;
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t j = first; j <= pos; ++j) {
          auto w = static_cast<float>(weights[static_cast<size_t>(j - first)] / total);
          cpu::axpy(w, cache_row(args.v_cache, j, kv_head), acc.data(), head_dim);
        }
        float* out = args.out.as<float>() + ((starts[s] + i) * q_heads + h) * head_dim;
        std::copy(acc.begin(), acc.end(), out);
      }
    }
  }
  return Status::Ok();
}

}  // namespace longbow
