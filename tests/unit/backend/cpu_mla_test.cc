// CpuBackend's multi-head latent attention ops (head_matmul, append_latent, latent_attention) run as
// an MLA layer runs them (the query absorbed into the latent space, the output taken back out) against
// plain per-head softmax attention computed here in double over the expanded keys and values:
//   k_j,h = [W_UK,h · c_j ; k_r,j],  v_j,h = W_UV,h · c_j,  q_h = [q_nope,h ; q_rope,h].
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::expect_invalid;
using testing::make_f32;
using testing::make_i32;
using testing::make_poisoned;
using testing::max_abs_diff;
using testing::random_floats;
using testing::to_host;

constexpr int kHeads = 3, kNope = 6, kRope = 4, kV = 5, kLatent = 7;
constexpr int kWidth = kLatent + kRope;
constexpr float kScale = 0.37f;

struct Seq {
  int q_len, context;
};

class CpuMlaTest : public ::testing::Test {
 protected:
  // Random latent rows for every cached token of `seqs` on scattered pages, random queries for each
  // sequence's last q_len positions, a random kv_b [H, nope + v, latent].
  void make_batch(const std::vector<Seq>& seqs, uint32_t seed) {
    seqs_ = seqs;
    std::mt19937 rng(seed);
    int pages = 2;
    for (const Seq& s : seqs) pages += (s.context + kPageSize - 1) / kPageSize;
    std::vector<int32_t> pool(static_cast<size_t>(pages));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    max_pages_ = 1;
    for (const Seq& s : seqs) max_pages_ = std::max(max_pages_, (s.context + kPageSize - 1) / kPageSize);
    tables_.assign(seqs.size() * static_cast<size_t>(max_pages_), -1);
    size_t next = 0;
    starts_ = {0};
    lens_.clear();
    for (size_t s = 0; s < seqs.size(); ++s) {
      for (int b = 0; b < (seqs[s].context + kPageSize - 1) / kPageSize; ++b) {
        tables_[s * static_cast<size_t>(max_pages_) + static_cast<size_t>(b)] = pool[next++];
      }
      starts_.push_back(starts_.back() + seqs[s].q_len);
      lens_.push_back(seqs[s].context);
    }
    rows_ = starts_.back();
    num_pages_ = pages;
    cache_rows_.assign(seqs.size(), {});
    for (size_t s = 0; s < seqs.size(); ++s) {
      cache_rows_[s] = random_floats(static_cast<size_t>(seqs[s].context * kWidth), seed + 10 + s);
    }
    q_nope_ = random_floats(static_cast<size_t>(rows_ * kHeads * kNope), seed + 1);
    q_rope_ = random_floats(static_cast<size_t>(rows_ * kHeads * kRope), seed + 2);
    kv_b_ = random_floats(static_cast<size_t>(kHeads * (kNope + kV) * kLatent), seed + 3);
  }

  // The cache pool with every sequence's rows written by append_latent (its cached prefix and this
  // step's tokens alike).
  Tensor fill_cache() {
    Tensor cache = make_poisoned(cpu_, {num_pages_, kPageSize, kWidth});
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int n = seqs_[s].context;
      std::vector<float> latent, rope;
      std::vector<int32_t> slots;
      for (int j = 0; j < n; ++j) {
        const float* row = cache_rows_[s].data() + static_cast<size_t>(j * kWidth);
        latent.insert(latent.end(), row, row + kLatent);
        rope.insert(rope.end(), row + kLatent, row + kWidth);
        slots.push_back(tables_[s * static_cast<size_t>(max_pages_) + static_cast<size_t>(j / kPageSize)] * kPageSize +
                        j % kPageSize);
      }
      AppendLatentArgs a;
      a.latent = make_f32(cpu_, {n, kLatent}, latent);
      a.rope_key = make_f32(cpu_, {n, kRope}, rope);
      a.slots = make_i32(cpu_, {n}, slots);
      a.cache = cache;
      EXPECT_TRUE(cpu_.append_latent(a).ok());
    }
    return cache;
  }

  // The absorbed MLA path: [rows, H, v].
  std::vector<float> run(const std::vector<int32_t>& indices = {}, int topk = 0) {
    Tensor cache = fill_cache();
    Tensor kv_b = make_f32(cpu_, {kHeads, kNope + kV, kLatent}, kv_b_);
    Tensor q_latent = make_poisoned(cpu_, {rows_, kHeads, kLatent});
    HeadMatmulArgs absorb;
    absorb.x = make_f32(cpu_, {rows_, kHeads, kNope}, q_nope_);
    absorb.w = kv_b;
    absorb.row_begin = 0;
    absorb.num_rows = kNope;
    absorb.transpose_w = true;
    absorb.out = q_latent;
    EXPECT_TRUE(cpu_.head_matmul(absorb).ok());
    LatentAttentionArgs a;
    a.q_latent = q_latent;
    a.q_rope = make_f32(cpu_, {rows_, kHeads, kRope}, q_rope_);
    a.cache = cache;
    a.query_start = make_i32(cpu_, {static_cast<int64_t>(starts_.size())}, starts_);
    a.context_lens = make_i32(cpu_, {static_cast<int64_t>(lens_.size())}, lens_);
    a.block_tables = make_i32(cpu_, {static_cast<int64_t>(seqs_.size()), max_pages_}, tables_);
    if (topk > 0) a.indices = make_i32(cpu_, {rows_, topk}, indices);
    a.out = make_poisoned(cpu_, {rows_, kHeads, kLatent});
    a.max_query_len = 1 << 20;
    a.max_context_len = 1 << 20;
    a.scale = kScale;
    const Status status = cpu_.latent_attention(a);
    EXPECT_TRUE(status.ok()) << status.message();
    HeadMatmulArgs expand;
    expand.x = a.out;
    expand.w = kv_b;
    expand.row_begin = kNope;
    expand.num_rows = kV;
    expand.out = make_poisoned(cpu_, {rows_, kHeads, kV});
    EXPECT_TRUE(cpu_.head_matmul(expand).ok());
    return to_host(cpu_, expand.out);
  }

  // Plain attention of row r of sequence s over `keys`, in double.
  void reference_row(size_t s, int r, const std::vector<int>& keys, std::vector<double>& out) const {
    auto w = [&](int h, int row, int col) {
      return double{kv_b_[static_cast<size_t>((h * (kNope + kV) + row) * kLatent + col)]};
    };
    for (int h = 0; h < kHeads; ++h) {
      std::vector<double> scores;
      for (int j : keys) {
        const float* c = cache_rows_[s].data() + static_cast<size_t>(j * kWidth);
        double score = 0.0;
        for (int i = 0; i < kNope; ++i) {
          double k = 0.0;
          for (int l = 0; l < kLatent; ++l) k += w(h, i, l) * c[l];
          score += q_nope_[static_cast<size_t>((r * kHeads + h) * kNope + i)] * k;
        }
        for (int i = 0; i < kRope; ++i) score += double{q_rope_[static_cast<size_t>((r * kHeads + h) * kRope + i)]} * c[kLatent + i];
        scores.push_back(score * kScale);
      }
      const double top = scores.empty() ? 0.0 : *std::max_element(scores.begin(), scores.end());
      double total = 0.0;
      for (double& x : scores) total += (x = std::exp(x - top));
      for (int i = 0; i < kV; ++i) {
        double acc = 0.0;
        for (size_t n = 0; n < keys.size(); ++n) {
          const float* c = cache_rows_[s].data() + static_cast<size_t>(keys[n] * kWidth);
          double v = 0.0;
          for (int l = 0; l < kLatent; ++l) v += w(h, kNope + i, l) * c[l];
          acc += scores[n] / total * v;
        }
        out[static_cast<size_t>((r * kHeads + h) * kV + i)] = acc;
      }
    }
  }

  CpuBackend cpu_;
  std::vector<Seq> seqs_;
  std::vector<int32_t> tables_, starts_, lens_;
  std::vector<std::vector<float>> cache_rows_;
  std::vector<float> q_nope_, q_rope_, kv_b_;
  int max_pages_ = 0, num_pages_ = 0, rows_ = 0;
};

TEST_F(CpuMlaTest, AbsorbedAttentionEqualsPerHeadAttentionOverExpandedKeys) {
  // A prefill chunk crossing pages behind a cached prefix, a decode row, a whole short prompt.
  make_batch({{70, 150}, {1, 65}, {9, 9}}, 7);
  const std::vector<float> got = run();
  std::vector<double> want(got.size());
  for (size_t s = 0; s < seqs_.size(); ++s) {
    for (int i = 0; i < seqs_[s].q_len; ++i) {
      const int pos = seqs_[s].context - seqs_[s].q_len + i;
      std::vector<int> keys(static_cast<size_t>(pos + 1));
      std::iota(keys.begin(), keys.end(), 0);
      reference_row(s, starts_[s] + i, keys, want);
    }
  }
  EXPECT_LT(max_abs_diff(got, want), 1e-5);
}

TEST_F(CpuMlaTest, SparseRowsAttendExactlyTheirSelection) {
  make_batch({{5, 100}, {1, 30}}, 11);
  const int topk = 8;
  std::vector<int32_t> indices;
  std::vector<double> want(static_cast<size_t>(rows_ * kHeads * kV));
  std::mt19937 rng(3);
  for (size_t s = 0; s < seqs_.size(); ++s) {
    for (int i = 0; i < seqs_[s].q_len; ++i) {
      const int pos = seqs_[s].context - seqs_[s].q_len + i;
      std::vector<int> all(static_cast<size_t>(pos + 1));
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      std::vector<int> keys(all.begin(), all.begin() + (i == 0 ? 3 : topk));  // row 0: padded with -1
      std::sort(keys.begin(), keys.end());
      for (int k = 0; k < topk; ++k) indices.push_back(k < static_cast<int>(keys.size()) ? keys[static_cast<size_t>(k)] : -1);
      reference_row(s, starts_[s] + i, keys, want);
    }
  }
  EXPECT_LT(max_abs_diff(run(indices, topk), want), 1e-5);
}

TEST_F(CpuMlaTest, PaddingRowOutputsZeroAndIsNotStored) {
  make_batch({{1, 1}}, 5);
  Tensor cache = fill_cache();
  const std::vector<float> before = to_host(cpu_, cache);
  AppendLatentArgs append;
  append.latent = make_f32(cpu_, {1, kLatent}, random_floats(kLatent, 1));
  append.rope_key = make_f32(cpu_, {1, kRope}, random_floats(kRope, 2));
  append.slots = make_i32(cpu_, {1}, {-1});
  append.cache = cache;
  ASSERT_TRUE(cpu_.append_latent(append).ok());
  const std::vector<float> after = to_host(cpu_, cache);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), after.begin(), [](float a, float b) {
    return (std::isnan(a) && std::isnan(b)) || a == b;
  }));
  LatentAttentionArgs a;
  a.q_latent = make_f32(cpu_, {2, kHeads, kLatent}, random_floats(2 * kHeads * kLatent, 3));
  a.q_rope = make_f32(cpu_, {2, kHeads, kRope}, random_floats(2 * kHeads * kRope, 4));
  a.cache = cache;
  a.query_start = make_i32(cpu_, {3}, {0, 1, 2});
  a.context_lens = make_i32(cpu_, {2}, {1, 0});  // sequence 1 is a padding row
  a.block_tables = make_i32(cpu_, {2, 1}, {tables_[0], -1});
  a.out = make_poisoned(cpu_, {2, kHeads, kLatent});
  a.max_query_len = 1;
  a.max_context_len = 1;
  a.scale = kScale;
  ASSERT_TRUE(cpu_.latent_attention(a).ok());
  const std::vector<float> out = to_host(cpu_, a.out);
  for (int i = 0; i < kHeads * kLatent; ++i) {
    // One key: the output is that token's latent row.
    EXPECT_FLOAT_EQ(out[static_cast<size_t>(i)], cache_rows_[0][static_cast<size_t>(i % kLatent)]);
    EXPECT_EQ(out[static_cast<size_t>(kHeads * kLatent + i)], 0.0f);
  }
}

TEST_F(CpuMlaTest, RejectsBadArguments) {
  make_batch({{2, 2}}, 9);
  Tensor cache = fill_cache();
  AppendLatentArgs append;
  append.latent = make_f32(cpu_, {1, kLatent}, random_floats(kLatent, 1));
  append.rope_key = make_f32(cpu_, {1, kRope}, random_floats(kRope, 2));
  append.slots = make_i32(cpu_, {1}, {num_pages_ * kPageSize});
  append.cache = cache;
  expect_invalid(cpu_.append_latent(append), {"append_latent", "slots[0]", "outside"});
  append.rope_key = make_f32(cpu_, {1, kRope + 1}, random_floats(kRope + 1, 2));
  append.slots = make_i32(cpu_, {1}, {0});
  expect_invalid(cpu_.append_latent(append), {"append_latent", "cache"});

  HeadMatmulArgs m;
  m.x = make_f32(cpu_, {2, kHeads, kLatent}, random_floats(2 * kHeads * kLatent, 5));
  m.w = make_f32(cpu_, {kHeads, kNope + kV, kLatent}, kv_b_);
  m.row_begin = kNope;
  m.num_rows = kV + 1;
  m.out = make_poisoned(cpu_, {2, kHeads, kV + 1});
  expect_invalid(cpu_.head_matmul(m), {"head_matmul", "outside"});

  LatentAttentionArgs a;
  a.q_latent = make_f32(cpu_, {2, kHeads, kLatent}, random_floats(2 * kHeads * kLatent, 3));
  a.q_rope = make_f32(cpu_, {2, kHeads, kRope}, random_floats(2 * kHeads * kRope, 4));
  a.cache = cache;
  a.query_start = make_i32(cpu_, {2}, {0, 2});
  a.context_lens = make_i32(cpu_, {1}, {2});
  a.block_tables = make_i32(cpu_, {1, 1}, {tables_[0]});
  a.indices = make_i32(cpu_, {2, 2}, {0, 1, 0, 1});  // row 0 (position 0) selects token 1: not causal
  a.out = make_poisoned(cpu_, {2, kHeads, kLatent});
  a.max_query_len = 2;
  a.max_context_len = 2;
  a.scale = kScale;
  expect_invalid(cpu_.latent_attention(a), {"latent_attention", "indices[0][1]"});
  a.indices = Tensor{};
  a.max_context_len = 1;
  expect_invalid(cpu_.latent_attention(a), {"latent_attention", "max_context_len"});
}

}  // namespace
}  // namespace longbow
