// CpuBackend's multi-head latent attention ops: head_matmul, append_latent, latent_attention (the
// contracts are in backend.h). Scores and softmax statistics in double, as paged_attention.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
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

}  // namespace

Status CpuBackend::head_matmul(const HeadMatmulArgs& a) {
  RETURN_IF_ERROR(check_tensor("head_matmul", "w", a.w, kF32, {kAnyDim, kAnyDim, kAnyDim}));
  const int64_t heads = a.w.dim(0), rows = a.w.dim(1), cols = a.w.dim(2), n = a.num_rows;
  if (a.row_begin < 0 || n < 1 || a.row_begin + n > rows) {
    return invalid_argument(fmt::format("head_matmul: rows [{}, {}) are outside w's {} rows per head", a.row_begin,
                                        a.row_begin + n, rows));
  }
  const int64_t in = a.transpose_w ? n : cols, out_dim = a.transpose_w ? cols : n;
  RETURN_IF_ERROR(check_tensor("head_matmul", "x", a.x, kF32, {kAnyDim, heads, in}));
  const int64_t tokens = a.x.dim(0);
  RETURN_IF_ERROR(check_tensor("head_matmul", "out", a.out, kF32, {tokens, heads, out_dim}));
  RETURN_IF_ERROR(cpu::check_disjoint("head_matmul", "out", a.out, "x", a.x));
  RETURN_IF_ERROR(cpu::check_disjoint("head_matmul", "out", a.out, "w", a.w));
  std::vector<double> acc(static_cast<size_t>(out_dim));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t h = 0; h < heads; ++h) {
      const float* x = a.x.as<float>() + (t * heads + h) * in;
      const float* w = a.w.as<float>() + (h * rows + a.row_begin) * cols;  // W_h [n, cols]
      float* out = a.out.as<float>() + (t * heads + h) * out_dim;
      if (!a.transpose_w) {
        for (int64_t r = 0; r < n; ++r) out[r] = static_cast<float>(cpu::dot(w + r * cols, x, cols));
        continue;
      }
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t r = 0; r < n; ++r) {
        for (int64_t c = 0; c < cols; ++c) acc[static_cast<size_t>(c)] += double{x[r]} * w[r * cols + c];
      }
      for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>(acc[static_cast<size_t>(c)]);
    }
  }
  return Status::Ok();
}

Status CpuBackend::append_latent(const AppendLatentArgs& a) {
  RETURN_IF_ERROR(check_tensor("append_latent", "latent", a.latent, kF32, {kAnyDim, kAnyDim}));
  const int64_t tokens = a.latent.dim(0), dl = a.latent.dim(1);
  RETURN_IF_ERROR(check_tensor("append_latent", "rope_key", a.rope_key, kF32, {tokens, kAnyDim}));
  const int64_t dr = a.rope_key.dim(1);
  RETURN_IF_ERROR(check_tensor("append_latent", "slots", a.slots, kI32, {tokens}));
  RETURN_IF_ERROR(check_tensor("append_latent", "cache", a.cache, kF32, {kAnyDim, kPageSize, dl + dr}));
  const int64_t num_slots = a.cache.dim(0) * kPageSize;
  const int32_t* slot = a.slots.as<int32_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    if (slot[t] != -1 && (slot[t] < 0 || slot[t] >= num_slots)) {
      return invalid_argument(
          fmt::format("append_latent: slots[{}] = {} is outside the cache's [0, {})", t, slot[t], num_slots));
    }
  }
  for (int64_t t = 0; t < tokens; ++t) {
    if (slot[t] == -1) continue;  // a padding row: not stored
    float* row = a.cache.as<float>() + slot[t] * (dl + dr);
    std::memcpy(row, a.latent.as<float>() + t * dl, static_cast<size_t>(dl) * sizeof(float));
    std::memcpy(row + dl, a.rope_key.as<float>() + t * dr, static_cast<size_t>(dr) * sizeof(float));
  }
  return Status::Ok();
}

Status CpuBackend::latent_attention(const LatentAttentionArgs& a) {
  constexpr std::string_view op = "latent_attention";
  RETURN_IF_ERROR(check_tensor(op, "q_latent", a.q_latent, kF32, {kAnyDim, kAnyDim, kAnyDim}));
  const int64_t rows = a.q_latent.dim(0), heads = a.q_latent.dim(1), dl = a.q_latent.dim(2);
  RETURN_IF_ERROR(check_tensor(op, "q_rope", a.q_rope, kF32, {rows, heads, kAnyDim}));
  const int64_t dr = a.q_rope.dim(2), width = dl + dr;
  RETURN_IF_ERROR(check_tensor(op, "cache", a.cache, kF32, {kAnyDim, kPageSize, width}));
  RETURN_IF_ERROR(check_tensor(op, "context_lens", a.context_lens, kI32, {kAnyDim}));
  const int64_t seqs = a.context_lens.dim(0);
  RETURN_IF_ERROR(check_tensor(op, "query_start", a.query_start, kI32, {seqs + 1}));
  RETURN_IF_ERROR(check_tensor(op, "block_tables", a.block_tables, kI32, {seqs, kAnyDim}));
  RETURN_IF_ERROR(check_tensor(op, "out", a.out, kF32, {rows, heads, dl}));
  const bool sparse = a.indices.data != nullptr;
  if (sparse) RETURN_IF_ERROR(check_tensor(op, "indices", a.indices, kI32, {rows, kAnyDim}));
  for (const auto& [name, t] : {std::pair<const char*, const Tensor*>{"q_latent", &a.q_latent},
                                {"q_rope", &a.q_rope}, {"cache", &a.cache}}) {
    RETURN_IF_ERROR(cpu::check_disjoint(op, "out", a.out, name, *t));
  }
  if (!std::isfinite(a.scale)) return invalid_argument("latent_attention: scale is not finite");
  RETURN_IF_ERROR(cpu::check_rows(op, a.query_start, a.context_lens, a.block_tables, rows, a.cache.dim(0)));
  const int32_t* starts = a.query_start.as<int32_t>();
  const int32_t* lens = a.context_lens.as<int32_t>();
  const int64_t max_pages = a.block_tables.dim(1), topk = sparse ? a.indices.dim(1) : 0;
  for (int64_t s = 0; s < seqs; ++s) {
    const int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    if (lens[s] == 0) continue;
    if (q_len > a.max_query_len || lens[s] > a.max_context_len) {
      return invalid_argument(fmt::format("latent_attention: sequence {} ({} queries, context {}) exceeds the "
                                          "launch hints max_query_len {}, max_context_len {}",
                                          s, q_len, lens[s], a.max_query_len, a.max_context_len));
    }
    for (int64_t r = starts[s]; sparse && r < starts[s + 1]; ++r) {
      const int64_t pos = lens[s] - q_len + (r - starts[s]);
      for (int64_t i = 0; i < topk; ++i) {
        const int32_t j = a.indices.as<int32_t>()[r * topk + i];
        if (j < -1 || j > pos) {
          return invalid_argument(fmt::format("latent_attention: indices[{}][{}] = {} is outside the row's "
                                              "causal prefix [0, {}]", r, i, j, pos));
        }
      }
    }
  }

  std::vector<int64_t> keys;
  std::vector<double> weights;
  std::vector<float> acc(static_cast<size_t>(dl));
  for (int64_t s = 0; s < seqs; ++s) {
    const int32_t* table = a.block_tables.as<int32_t>() + s * max_pages;
    auto cache_row = [&](int64_t j) {
      return a.cache.as<float>() + (int64_t{table[j / kPageSize]} * kPageSize + j % kPageSize) * width;
    };
    const int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    for (int64_t r = starts[s]; r < starts[s + 1]; ++r) {
      const int64_t pos = lens[s] - q_len + (r - starts[s]);  // -1 for a padding row: no keys
      keys.clear();
      if (sparse) {
        for (int64_t i = 0; i < topk; ++i) {
          if (a.indices.as<int32_t>()[r * topk + i] >= 0) keys.push_back(a.indices.as<int32_t>()[r * topk + i]);
        }
      } else {
        for (int64_t j = 0; j <= pos; ++j) keys.push_back(j);
      }
      weights.resize(keys.size());
      for (int64_t h = 0; h < heads; ++h) {
        float* out = a.out.as<float>() + (r * heads + h) * dl;
        if (keys.empty()) {
          std::fill_n(out, dl, 0.0f);
          continue;
        }
        const float* ql = a.q_latent.as<float>() + (r * heads + h) * dl;
        const float* qr = a.q_rope.as<float>() + (r * heads + h) * dr;
        double max_score = -std::numeric_limits<double>::infinity();
        for (size_t i = 0; i < keys.size(); ++i) {
          const float* row = cache_row(keys[i]);
          weights[i] = (cpu::dot(ql, row, dl) + cpu::dot(qr, row + dl, dr)) * a.scale;
          max_score = std::max(max_score, weights[i]);
        }
        double total = 0.0;
        for (double& w : weights) {
          w = std::exp(w - max_score);
          total += w;
        }
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (size_t i = 0; i < keys.size(); ++i) {
          cpu::axpy(static_cast<float>(weights[i] / total), cache_row(keys[i]), acc.data(), dl);
        }
        std::copy(acc.begin(), acc.end(), out);
      }
    }
  }
  return Status::Ok();
}

}  // namespace longbow
