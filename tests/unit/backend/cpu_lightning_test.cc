// CpuBackend's lightning attention (blockwise prefill, recurrent decode, state slots) against the
// quadratic definition o_t = Σ_{u<=t} λ^{t−u} (q_t·k_u) v_u, and its MoE ops (softmax and DeepSeek
// sigmoid group-limited routing, the experts) against token-by-token formulas written here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::make_f32;
using testing::make_i32;
using testing::max_abs_diff;
using testing::random_floats;
using testing::to_host;

constexpr int kHeads = 3, kDim = 5;

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// One sequence's qkv rows [n, H·3·D] and its quadratic-form output [n, H·D] for rows [0, n).
struct Sequence {
  std::vector<float> qkv;
  std::vector<float> slopes;
  int n = 0;

  double input(int t, int h, int part, int i) const {  // part 0 q, 1 k, 2 v; SiLU applied
    return silu(qkv[static_cast<size_t>(((t * kHeads + h) * 3 + part) * kDim + i)]);
  }
  std::vector<double> reference() const {
    std::vector<double> out(static_cast<size_t>(n * kHeads * kDim), 0.0);
    for (int h = 0; h < kHeads; ++h) {
      for (int t = 0; t < n; ++t) {
        for (int u = 0; u <= t; ++u) {
          double score = 0.0;
          for (int i = 0; i < kDim; ++i) score += input(t, h, 0, i) * input(u, h, 1, i);
          score *= std::exp(-double{slopes[static_cast<size_t>(h)]} * (t - u));
          for (int i = 0; i < kDim; ++i) out[static_cast<size_t>((t * kHeads + h) * kDim + i)] += score * input(u, h, 2, i);
        }
      }
    }
    return out;
  }
  // The state after the first n tokens: Σ_u λ^{n−1−u} k_uᵀ v_u, [H, D, D].
  std::vector<double> state() const {
    std::vector<double> s(static_cast<size_t>(kHeads * kDim * kDim), 0.0);
    for (int h = 0; h < kHeads; ++h) {
      for (int u = 0; u < n; ++u) {
        const double decay = std::exp(-double{slopes[static_cast<size_t>(h)]} * (n - 1 - u));
        for (int i = 0; i < kDim; ++i) {
          for (int j = 0; j < kDim; ++j) {
            s[static_cast<size_t>((h * kDim + i) * kDim + j)] += decay * input(u, h, 1, i) * input(u, h, 2, j);
          }
        }
      }
    }
    return s;
  }
};

Sequence make_sequence(int n, uint32_t seed) {
  Sequence s;
  s.n = n;
  s.qkv = random_floats(static_cast<size_t>(n * kHeads * 3 * kDim), seed, -2.0f, 2.0f);
  s.slopes = {0.9f, 0.2f, 0.004f};  // λ from 0.41 (a fast head) to 0.996
  return s;
}

class CpuLightningTest : public ::testing::Test {
 protected:
  // Runs one call over `parts` (sequence, first row, rows, slot) and returns out [T, H·D].
  struct Part {
    const Sequence* seq;
    int begin, count, slot;
  };
  StatusOr<std::vector<float>> run(const std::vector<Part>& parts, Tensor& state, int block_size) {
    std::vector<float> qkv;
    std::vector<int32_t> starts = {0}, lens, slots;
    int max_q = 0;
    for (const Part& p : parts) {
      const size_t width = kHeads * 3 * kDim;
      if (p.seq != nullptr) {
        qkv.insert(qkv.end(), p.seq->qkv.begin() + p.begin * width, p.seq->qkv.begin() + (p.begin + p.count) * width);
      } else {
        qkv.insert(qkv.end(), width, 0.5f);  // a padding row
      }
      starts.push_back(starts.back() + p.count);
      lens.push_back(p.seq != nullptr ? p.begin + p.count : 0);
      slots.push_back(p.slot);
      max_q = std::max(max_q, p.count);
    }
    const int64_t tokens = starts.back(), seqs = static_cast<int64_t>(parts.size());
    LightningAttentionArgs a;
    a.qkv = make_f32(backend_, {tokens, kHeads * 3 * kDim}, qkv);
    a.slopes = make_f32(backend_, {kHeads}, make_sequence(1, 0).slopes);
    a.state = state;
    a.query_start = make_i32(backend_, {seqs + 1}, starts);
    a.context_lens = make_i32(backend_, {seqs}, lens);
    a.slots = make_i32(backend_, {seqs}, slots);
    a.out = testing::make_poisoned(backend_, {tokens, kHeads * kDim});
    a.num_heads = kHeads;
    a.head_dim = kDim;
    a.block_size = block_size;
    a.max_query_len = max_q;
    RETURN_IF_ERROR(backend_.lightning_attention(a));
    return to_host(backend_, a.out);
  }
  // A state pool of `slots` slots, every value NaN: a fresh slot must never be read.
  Tensor poisoned_state(int slots) { return testing::make_poisoned(backend_, {slots, kHeads, kDim, kDim}); }
  static std::vector<double> rows(const std::vector<double>& all, int begin, int count) {
    return {all.begin() + begin * kHeads * kDim, all.begin() + (begin + count) * kHeads * kDim};
  }

  CpuBackend backend_;
};

TEST_F(CpuLightningTest, BlockwisePrefillMatchesTheQuadraticForm) {
  for (int n : {1, 2, 7, 8, 9, 16, 17, 33, 50}) {
    for (int block : {1, 4, 8, 256}) {
      const Sequence seq = make_sequence(n, static_cast<uint32_t>(100 + n));
      Tensor state = poisoned_state(2);
      StatusOr<std::vector<float>> out = run({{&seq, 0, n, 1}}, state, block);
      ASSERT_TRUE(out.ok()) << out.status().to_string();
      const std::vector<double> want = seq.reference();
      EXPECT_LT(max_abs_diff(*out, want), 1e-5) << "n=" << n << " block=" << block;
      std::vector<float> pool = to_host(backend_, state);
      std::vector<float> slot1(pool.begin() + kHeads * kDim * kDim, pool.end());
      EXPECT_LT(max_abs_diff(slot1, seq.state()), 1e-5) << "state after n=" << n << " block=" << block;
      EXPECT_TRUE(std::isnan(pool[0])) << "slot 0 was written";
    }
  }
}

TEST_F(CpuLightningTest, ChunksAndDecodeStepsCarryTheState) {
  const Sequence seq = make_sequence(40, 7);
  const std::vector<double> want = seq.reference();
  Tensor state = poisoned_state(3);
  int begin = 0;
  for (int count : {7, 16, 1, 1, 13, 1, 1}) {  // chunks crossing the 8-token blocks, then decode steps
    StatusOr<std::vector<float>> out = run({{&seq, begin, count, 2}}, state, 8);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    EXPECT_LT(max_abs_diff(*out, rows(want, begin, count)), 1e-5) << "chunk at " << begin;
    begin += count;
  }
}

// A prefill, a continuing chunk, a decode token and a padding row in one call, each its own slot.
TEST_F(CpuLightningTest, MixedBatchKeepsSequencesApart) {
  const Sequence a = make_sequence(20, 11), b = make_sequence(30, 12), c = make_sequence(9, 13);
  Tensor state = poisoned_state(4);
  ASSERT_TRUE(run({{&b, 0, 21, 3}, {&c, 0, 8, 0}}, state, 8).ok());  // earlier steps of b and c
  StatusOr<std::vector<float>> out = run({{&a, 0, 20, 1}, {&b, 21, 9, 3}, {nullptr, 0, 1, -1}, {&c, 8, 1, 0}}, state, 8);
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  const int width = kHeads * kDim;
  auto part = [&](int row, int count) {
    return std::vector<float>(out->begin() + row * width, out->begin() + (row + count) * width);
  };
  EXPECT_LT(max_abs_diff(part(0, 20), a.reference()), 1e-5);
  EXPECT_LT(max_abs_diff(part(20, 9), rows(b.reference(), 21, 9)), 1e-5);
  EXPECT_EQ(max_abs_diff(part(29, 1), std::vector<double>(width, 0.0)), 0.0) << "a padding row outputs 0";
  EXPECT_LT(max_abs_diff(part(30, 1), rows(c.reference(), 8, 1)), 1e-5);
  EXPECT_TRUE(std::isnan(to_host(backend_, state)[2 * kHeads * kDim * kDim])) << "slot 2 (no one's) was written";
}

TEST_F(CpuLightningTest, RejectsBadSlotsAndLengths) {
  const Sequence a = make_sequence(4, 21), b = make_sequence(4, 22);
  Tensor state = poisoned_state(2);
  EXPECT_EQ(run({{&a, 0, 4, 0}, {&b, 0, 4, 0}}, state, 8).status().code(), StatusCode::kInvalidArgument);  // shared
  EXPECT_EQ(run({{&a, 0, 4, 2}}, state, 8).status().code(), StatusCode::kInvalidArgument);  // outside the pool
  EXPECT_EQ(run({{&a, 0, 4, -1}}, state, 8).status().code(), StatusCode::kInvalidArgument);  // -1 with a context
  EXPECT_EQ(run({{&a, 0, 4, 0}}, state, 0).status().code(), StatusCode::kInvalidArgument);  // block size 0
}

TEST(CpuMoeTest, RouteTakesTheLargestSoftmaxProbabilitiesRenormalized) {
  CpuBackend backend;
  const int tokens = 4, experts = 6, k = 2;
  std::vector<float> logits = random_floats(tokens * experts, 31, -3.0f, 3.0f);
  for (int e = 0; e < experts; ++e) logits[static_cast<size_t>(3 * experts + e)] = 0.25f;  // a row of ties
  MoeRouteArgs a;
  a.logits = make_f32(backend, {tokens, experts}, logits);
  a.ids = make_i32(backend, {tokens, k}, std::vector<int32_t>(tokens * k, -7));
  a.weights = make_f32(backend, {tokens, k}, std::vector<float>(tokens * k, 0.0f));
  ASSERT_TRUE(backend.moe_route(a).ok());
  std::vector<int32_t> ids(tokens * k);
  ASSERT_TRUE(backend.download(a.ids, ids.data()).ok());
  const std::vector<float> weights = to_host(backend, a.weights);
  for (int t = 0; t < tokens; ++t) {
    const float* row = &logits[static_cast<size_t>(t * experts)];
    std::vector<int> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [row](int x, int y) { return row[x] > row[y]; });
    // softmax is monotonic: the top-k logits are the top-k probabilities, and the renormalized
    // weights are a softmax over the chosen logits alone.
    const double z = std::exp(double{row[order[0]]}) + std::exp(double{row[order[1]]});
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(ids[static_cast<size_t>(t * k + j)], order[static_cast<size_t>(j)]) << "token " << t;
      EXPECT_NEAR(weights[static_cast<size_t>(t * k + j)], std::exp(double{row[order[static_cast<size_t>(j)]]}) / z, 1e-6);
    }
  }
  EXPECT_EQ(ids[6], 0);  // ties go to the lower expert
  EXPECT_EQ(ids[7], 1);
}

// DeepSeek-V3 routing, written here from transformers' DeepseekV3MoE.route_tokens_to_experts: sigmoid
// scores, the correction bias for selection only, the best 2 of 4 groups by the sum of their two best
// scores, the other groups' experts masked to −∞ (transformers ≥ 5.15; so a negative choice score
// inside a kept group still beats them), top-k, renormalized with + 1e-20, scaled. The bias is wide
// enough that some kept experts' choice scores are negative.
TEST(CpuMoeTest, SigmoidGroupLimitedRoutingMatchesDeepSeek) {
  CpuBackend backend;
  const int tokens = 6, experts = 16, k = 3, groups = 4, kept = 2, size = experts / groups;
  const std::vector<float> logits = random_floats(tokens * experts, 51, -4.0f, 4.0f);
  std::vector<float> bias = random_floats(experts, 52, -1.2f, 0.6f);
  MoeRouteArgs a;
  a.logits = make_f32(backend, {tokens, experts}, logits);
  a.ids = make_i32(backend, {tokens, k}, std::vector<int32_t>(tokens * k, -1));
  a.weights = make_f32(backend, {tokens, k}, std::vector<float>(tokens * k, 0.0f));
  a.scoring = MoeScoring::kSigmoid;
  a.correction_bias = make_f32(backend, {experts}, bias);
  a.num_groups = groups;
  a.topk_groups = kept;
  a.scaling = 2.5f;
  ASSERT_TRUE(backend.moe_route(a).ok());
  std::vector<int32_t> ids(tokens * k);
  ASSERT_TRUE(backend.download(a.ids, ids.data()).ok());
  const std::vector<float> weights = to_host(backend, a.weights);
  for (int t = 0; t < tokens; ++t) {
    std::vector<double> s(experts), c(experts);
    for (int e = 0; e < experts; ++e) {
      s[e] = 1.0 / (1.0 + std::exp(-double{logits[t * experts + e]}));
      c[e] = s[e] + bias[e];
    }
    std::vector<std::pair<double, int>> group_scores;
    for (int g = 0; g < groups; ++g) {
      std::vector<double> m(c.begin() + g * size, c.begin() + (g + 1) * size);
      std::sort(m.rbegin(), m.rend());
      group_scores.push_back({m[0] + m[1], g});
    }
    std::stable_sort(group_scores.begin(), group_scores.end(), [](auto x, auto y) { return x.first > y.first; });
    std::vector<double> masked(experts, -std::numeric_limits<double>::infinity());
    for (int j = 0; j < kept; ++j) {
      const int g = group_scores[j].second;
      for (int e = g * size; e < (g + 1) * size; ++e) masked[e] = c[e];
    }
    std::vector<int> order(experts);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&masked](int x, int y) { return masked[x] > masked[y]; });
    double sum = 0.0;
    for (int j = 0; j < k; ++j) sum += s[order[j]];
    for (int j = 0; j < k; ++j) {
      EXPECT_EQ(ids[t * k + j], order[j]) << "token " << t << " choice " << j;
      EXPECT_NEAR(weights[t * k + j], s[order[j]] / (sum + 1e-20) * 2.5, 1e-6) << "token " << t;
    }
  }
  a.num_groups = 5;  // does not divide 16
  EXPECT_EQ(backend.moe_route(a).code(), StatusCode::kInvalidArgument);
  a.scoring = MoeScoring::kSoftmax;
  a.num_groups = 4;  // groups need sigmoid scoring
  EXPECT_EQ(backend.moe_route(a).code(), StatusCode::kInvalidArgument);
}

// Softmax routing without renormalization (Qwen2-MoE's norm_topk_prob = false): the weights are the
// chosen experts' softmax probabilities.
TEST(CpuMoeTest, SoftmaxRoutingWithoutRenormalization) {
  CpuBackend backend;
  const int experts = 5, k = 2;
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 0.3f};
  MoeRouteArgs a;
  a.logits = make_f32(backend, {1, experts}, logits);
  a.ids = make_i32(backend, {1, k}, {0, 0});
  a.weights = make_f32(backend, {1, k}, {0.0f, 0.0f});
  a.renormalize = false;
  ASSERT_TRUE(backend.moe_route(a).ok());
  double z = 0.0;
  for (float l : logits) z += std::exp(double{l});
  const std::vector<float> w = to_host(backend, a.weights);
  EXPECT_NEAR(w[0], std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(w[1], std::exp(1.5) / z, 1e-6);
}

TEST(CpuMoeTest, ExpertsSumTheWeightedGatedMlps) {
  CpuBackend backend;
  const int tokens = 3, hidden = 7, inter = 5, experts = 4, k = 2;
  const std::vector<float> x = random_floats(tokens * hidden, 41);
  const std::vector<float> gate_up = random_floats(experts * 2 * inter * hidden, 42);
  const std::vector<float> down = random_floats(experts * hidden * inter, 43);
  const std::vector<int32_t> ids = {3, 0, 1, 2, 2, 3};
  const std::vector<float> weights = {0.7f, 0.3f, 0.5f, 0.5f, 0.9f, 0.1f};
  MoeExpertsArgs a;
  a.x = make_f32(backend, {tokens, hidden}, x);
  a.ids = make_i32(backend, {tokens, k}, ids);
  a.weights = make_f32(backend, {tokens, k}, weights);
  a.gate_up = make_f32(backend, {experts, 2 * inter, hidden}, gate_up);
  a.down = make_f32(backend, {experts, hidden, inter}, down);
  a.out = testing::make_poisoned(backend, {tokens, hidden});
  ASSERT_TRUE(backend.moe_experts(a).ok());
  std::vector<double> want(tokens * hidden, 0.0);
  for (int t = 0; t < tokens; ++t) {
    for (int j = 0; j < k; ++j) {
      const int e = ids[static_cast<size_t>(t * k + j)];
      for (int o = 0; o < hidden; ++o) {
        double y = 0.0;
        for (int i = 0; i < inter; ++i) {
          double g = 0.0, u = 0.0;
          for (int c = 0; c < hidden; ++c) {
            g += gate_up[static_cast<size_t>((e * 2 * inter + i) * hidden + c)] * x[static_cast<size_t>(t * hidden + c)];
            u += gate_up[static_cast<size_t>((e * 2 * inter + inter + i) * hidden + c)] *
                 x[static_cast<size_t>(t * hidden + c)];
          }
          y += down[static_cast<size_t>((e * hidden + o) * inter + i)] * silu(g) * u;
        }
        want[static_cast<size_t>(t * hidden + o)] += weights[static_cast<size_t>(t * k + j)] * y;
      }
    }
  }
  EXPECT_LT(max_abs_diff(to_host(backend, a.out), want), 1e-5);
  a.ids = make_i32(backend, {tokens, k}, {3, 0, 1, 4, 2, 3});  // expert 4 of 4
  EXPECT_EQ(backend.moe_experts(a).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace longbow
