// CpuBackend::lightning_attention (the contract is in backend.h): Lightning Attention-2 in double,
// written the way transformers' MiniMaxLightningAttention computes it, so that the two round alike:
// a multi-token row runs blockwise (block_size tokens at a time), a one-token row runs the
// recurrence. Decay factors are exp(−slope · n) for each exponent n, as transformers' precomputed
// query/key/diagonal decays are, not powers of one λ.
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_checks.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

namespace {

constexpr std::string_view kOp = "lightning_attention";

Status check_args(const LightningAttentionArgs& a) {
  const int64_t h = a.num_heads, d = a.head_dim;
  if (h <= 0 || d <= 0) return invalid_argument(fmt::format("{}: num_heads {} and head_dim {} must be > 0", kOp, h, d));
  if (a.block_size <= 0) return invalid_argument(fmt::format("{}: block_size {} must be > 0", kOp, a.block_size));
  RETURN_IF_ERROR(check_tensor(kOp, "qkv", a.qkv, DType::kF32, {kAnyDim, h * 3 * d}));
  const int64_t tokens = a.qkv.dim(0);
  RETURN_IF_ERROR(check_tensor(kOp, "slopes", a.slopes, DType::kF32, {h}));
  RETURN_IF_ERROR(check_tensor(kOp, "state", a.state, DType::kF32, {kAnyDim, h, d, d}));
  RETURN_IF_ERROR(check_tensor(kOp, "query_start", a.query_start, DType::kI32, {kAnyDim}));
  const int64_t seqs = a.query_start.dim(0) - 1;
  if (seqs < 0) return invalid_argument(fmt::format("{}: query_start is empty", kOp));
  RETURN_IF_ERROR(check_tensor(kOp, "context_lens", a.context_lens, DType::kI32, {seqs}));
  RETURN_IF_ERROR(check_tensor(kOp, "slots", a.slots, DType::kI32, {seqs}));
  RETURN_IF_ERROR(check_tensor(kOp, "out", a.out, DType::kF32, {tokens, h * d}));
  RETURN_IF_ERROR(cpu::check_disjoint(kOp, "out", a.out, "qkv", a.qkv));
  RETURN_IF_ERROR(cpu::check_disjoint(kOp, "out", a.out, "state", a.state));
  const int32_t* starts = a.query_start.as<int32_t>();
  const int32_t* lens = a.context_lens.as<int32_t>();
  const int32_t* slots = a.slots.as<int32_t>();
  if (starts[0] != 0 || starts[seqs] != tokens) {
    return invalid_argument(fmt::format("{}: query_start must run from 0 to the {} rows of qkv (got {} .. {})", kOp,
                                        tokens, starts[0], starts[seqs]));
  }
  std::set<int32_t> used;
  for (int64_t s = 0; s < seqs; ++s) {
    const int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    if (q_len < 0) return invalid_argument(fmt::format("{}: query_start decreases at index {}", kOp, s + 1));
    if (slots[s] == -1) {
      if (q_len != 1 || lens[s] != 0) {
        return invalid_argument(fmt::format("{}: sequence {} has slot -1 but {} queries and context {} (a padding "
                                            "row has one query and context 0)", kOp, s, q_len, lens[s]));
      }
      continue;
    }
    if (slots[s] < 0 || slots[s] >= a.state.dim(0)) {
      return invalid_argument(fmt::format("{}: slots[{}] = {} is outside the state pool [0, {})", kOp, s, slots[s],
                                          a.state.dim(0)));
    }
    if (!used.insert(slots[s]).second) {
      return invalid_argument(fmt::format("{}: slot {} is held by two sequences", kOp, slots[s]));
    }
    if (q_len < 1 || lens[s] < q_len) {
      return invalid_argument(fmt::format("{}: sequence {} has {} queries and context_lens {} (need 1 <= queries "
                                          "<= context)", kOp, s, q_len, lens[s]));
    }
    if (q_len > a.max_query_len) {
      return invalid_argument(fmt::format("{}: max_query_len {} is below sequence {}'s {} queries", kOp,
                                          a.max_query_len, s, q_len));
    }
  }
  return Status::Ok();
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// One head of one sequence: q, k, v [n][d] (SiLU applied), S [d][d] in and out, o [n][d].
class HeadRun {
 public:
  HeadRun(int64_t d, double slope) : d_(d), slope_(slope) {}

  void recurrent(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                 std::vector<double>& s, std::vector<double>& o) const {
    const double decay = std::exp(-slope_);
    for (int64_t i = 0; i < d_; ++i) {
      for (int64_t j = 0; j < d_; ++j) s[i * d_ + j] = decay * s[i * d_ + j] + k[i] * v[j];
    }
    for (int64_t j = 0; j < d_; ++j) {
      double acc = 0.0;
      for (int64_t i = 0; i < d_; ++i) acc += q[i] * s[i * d_ + j];
      o[j] = acc;
    }
  }

  // Rows [0, n) in blocks of `block`: o_p = Σ_{j<=p in block} e^{−s(p−j)} (q_p·k_j) v_j + e^{−s(p+1)} q_p·S,
  // then S = e^{−s·m} S + Σ_j e^{−s(m−1−j)} k_jᵀ v_j for the block's m rows.
  void blockwise(int64_t n, int64_t block, const std::vector<double>& q, const std::vector<double>& k,
                 const std::vector<double>& v, std::vector<double>& s, std::vector<double>& o) const {
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      const int64_t m = std::min(block, n - b0);
      for (int64_t p = 0; p < m; ++p) {
        const double* qp = &q[(b0 + p) * d_];
        double* op = &o[(b0 + p) * d_];
        const double q_decay = std::exp(-slope_ * static_cast<double>(p + 1));
        for (int64_t j = 0; j < d_; ++j) {
          double inter = 0.0;
          for (int64_t i = 0; i < d_; ++i) inter += qp[i] * s[i * d_ + j];
          op[j] = q_decay * inter;
        }
        for (int64_t u = 0; u <= p; ++u) {
          double score = 0.0;
          for (int64_t i = 0; i < d_; ++i) score += qp[i] * k[(b0 + u) * d_ + i];
          score *= std::exp(-slope_ * static_cast<double>(p - u));
          for (int64_t j = 0; j < d_; ++j) op[j] += score * v[(b0 + u) * d_ + j];
        }
      }
      const double block_decay = std::exp(-slope_ * static_cast<double>(m));
      for (double& x : s) x *= block_decay;
      for (int64_t u = 0; u < m; ++u) {
        const double k_decay = std::exp(-slope_ * static_cast<double>(m - 1 - u));
        for (int64_t i = 0; i < d_; ++i) {
          const double ki = k_decay * k[(b0 + u) * d_ + i];
          for (int64_t j = 0; j < d_; ++j) s[i * d_ + j] += ki * v[(b0 + u) * d_ + j];
        }
      }
    }
  }

 private:
  int64_t d_;
  double slope_;
};

}  // namespace

Status CpuBackend::lightning_attention(const LightningAttentionArgs& a) {
  RETURN_IF_ERROR(check_args(a));
  const int64_t h_count = a.num_heads, d = a.head_dim, width = h_count * 3 * d;
  const int64_t seqs = a.query_start.dim(0) - 1;
  const int32_t* starts = a.query_start.as<int32_t>();
  const int32_t* lens = a.context_lens.as<int32_t>();
  const int32_t* slots = a.slots.as<int32_t>();
  const float* qkv = a.qkv.as<float>();
  float* out = a.out.as<float>();
  float* state = a.state.as<float>();
  for (int64_t s = 0; s < seqs; ++s) {
    const int64_t row0 = starts[s], n = starts[s + 1] - starts[s];
    if (slots[s] == -1) {  // padding row
      std::fill(out + row0 * h_count * d, out + (row0 + n) * h_count * d, 0.0f);
      continue;
    }
    const bool fresh = lens[s] == n;
    for (int64_t h = 0; h < h_count; ++h) {
      std::vector<double> q(static_cast<size_t>(n * d)), k(q.size()), v(q.size()), o(q.size());
      for (int64_t t = 0; t < n; ++t) {
        const float* row = qkv + (row0 + t) * width + h * 3 * d;
        for (int64_t i = 0; i < d; ++i) {
          q[static_cast<size_t>(t * d + i)] = silu(row[i]);
          k[static_cast<size_t>(t * d + i)] = silu(row[d + i]);
          v[static_cast<size_t>(t * d + i)] = silu(row[2 * d + i]);
        }
      }
      float* slot_state = state + ((int64_t{slots[s]} * h_count + h) * d) * d;
      std::vector<double> st(static_cast<size_t>(d * d), 0.0);
      if (!fresh) std::copy(slot_state, slot_state + d * d, st.begin());
      const HeadRun run(d, a.slopes.as<float>()[h]);
      if (n == 1) {
        run.recurrent(q, k, v, st, o);
      } else {
        run.blockwise(n, a.block_size, q, k, v, st, o);
      }
      for (int64_t i = 0; i < d * d; ++i) slot_state[i] = static_cast<float>(st[static_cast<size_t>(i)]);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t i = 0; i < d; ++i) out[(row0 + t) * h_count * d + h * d + i] = static_cast<float>(o[t * d + i]);
      }
    }
  }
  return Status::Ok();
}

}  // namespace longbow
