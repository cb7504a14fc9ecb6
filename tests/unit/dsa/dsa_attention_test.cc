// run_dsa_attention on the CPU backend: a step mixing a 150-token prefill chunk and a decode token.
// With index_topk >= context it equals dense paged attention; with a small index_topk every row
// attends to exactly min(position + 1, topk) causal tokens and the result differs from dense; the
// dense prefill mode equals paged attention; index keys are written for every new token.
#include "model/layers/dsa_indexer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/layers/dsa_row_blocks.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::make_tensor;
using testing::random_floats;
using testing::to_host;

class DsaAttentionTest : public ::testing::Test {
 protected:
  static constexpr int kHidden = 48, kHq = 4, kHkv = 2, kD = 16, kIh = 4, kId = 32, kPages = 8;
  static constexpr int32_t kUnwritten = -7;
  std::unique_ptr<Backend> be = create_cpu_backend();


  // Sequence 0: 150 new tokens from position 0 (pages 2, 5, 0); sequence 1: 1 new token at
  // position 99 (pages 7, 1). Returns DSA and dense outputs [151, Hq, D]. max_rows > 0 scores the
  // rows in blocks of at most that many (dsa_row_blocks.h) with a logits scratch just big enough.
  void run(int topk, DsaPrefillMode mode, std::vector<float>* dsa, std::vector<float>* dense,
           std::vector<int32_t>* indices, std::vector<uint8_t>* index_cache, int max_rows = 0) {
    const int t0 = 150, ctx1 = 100, tokens = t0 + 1;
    std::vector<int32_t> tables = {2, 5, 0, 7, 1, 0};
    std::vector<int32_t> positions, slots;
    for (int j = 0; j < t0; ++j) {
      positions.push_back(j);
      slots.push_back(tables[j / 64] * 64 + j % 64);
    }
    positions.push_back(ctx1 - 1);
    slots.push_back(tables[3 + (ctx1 - 1) / 64] * 64 + (ctx1 - 1) % 64);
    DsaIndexerConfig cfg;
    cfg.n_heads = kIh;
    cfg.head_dim = kId;
    cfg.topk = topk;
    cfg.rope_dim = 16;
    DsaIndexerWeights w;
    w.wq = make_tensor(*be, DType::kF32, {kIh * kId, kHidden}, random_floats(kIh * kId * kHidden, 1, -0.3f, 0.3f));
    w.wk = make_tensor(*be, DType::kF32, {kId, kHidden}, random_floats(kId * kHidden, 2, -0.3f, 0.3f));
    w.weights_proj = make_tensor(*be, DType::kF32, {kIh, kHidden}, random_floats(kIh * kHidden, 3, -0.3f, 0.3f));
    w.k_norm_weight = make_tensor(*be, DType::kF32, {kId}, random_floats(kId, 4, 0.5f, 1.5f));
    w.k_norm_bias = make_tensor(*be, DType::kF32, {kId}, random_floats(kId, 5, -0.1f, 0.1f));
    std::vector<float> inv(8);
    for (int i = 0; i < 8; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / 16.0f);
    DsaAttentionStep s;
    s.x = make_tensor(*be, DType::kF32, {tokens, kHidden}, random_floats(tokens * kHidden, 6));
    s.attention.q = make_tensor(*be, DType::kF32, {tokens, kHq, kD}, random_floats(tokens * kHq * kD, 7, -2, 2));
    s.attention.k_cache = make_tensor(*be, DType::kF32, {kPages, 64, kHkv, kD}, random_floats(kPages * 64 * kHkv * kD, 8));
    s.attention.v_cache = make_tensor(*be, DType::kF32, {kPages, 64, kHkv, kD}, random_floats(kPages * 64 * kHkv * kD, 9));
    s.index_cache = make_tensor(*be, DType::kFP8E4M3, {kPages, 64 * (kId + 4)},
                         std::vector<uint8_t>(kPages * 64 * (kId + 4), 0x7F));  // NaN codes: must be overwritten
    // Sequence 1's cached context (positions 0..98) has index keys from an earlier step: write them.
    {
      std::vector<int32_t> p1, s1;
      for (int j = 0; j < ctx1 - 1; ++j) {
        p1.push_back(j);
        s1.push_back(tables[3 + j / 64] * 64 + j % 64);
      }
      DsaIndexKeysArgs k{make_tensor(*be, DType::kF32, {ctx1 - 1, kId}, random_floats((ctx1 - 1) * kId, 10, -2, 2)),
                         w.k_norm_weight, w.k_norm_bias, make_tensor(*be, DType::kI32, {ctx1 - 1}, p1),
                         make_tensor(*be, DType::kI32, {ctx1 - 1}, s1), make_tensor(*be, DType::kF32, {8}, inv), 1.0f,
                         s.index_cache};
      ASSERT_TRUE(be->dsa_index_keys(k).ok());
    }
    s.positions = make_tensor(*be, DType::kI32, {tokens}, positions);
    s.slots = make_tensor(*be, DType::kI32, {tokens}, slots);
    s.attention.query_start = make_tensor(*be, DType::kI32, {3}, std::vector<int32_t>{0, t0, tokens});
    s.attention.context_lens = make_tensor(*be, DType::kI32, {2}, std::vector<int32_t>{t0, ctx1});
    s.attention.block_tables = make_tensor(*be, DType::kI32, {2, 3}, tables);
    s.inv_freq = make_tensor(*be, DType::kF32, {8}, inv);
    s.attention.max_query_len = t0;
    s.attention.max_context_len = t0;
    s.attention.scale = 1.0f / std::sqrt(static_cast<float>(kD));
    s.attention.out = *be->allocate(DType::kF32, {tokens, kHq, kD});
    const size_t budget = max_rows > 0 ? static_cast<size_t>(max_rows) * dsa_logits_width(t0) * 4 : size_t{1} << 20;
    StatusOr<DsaScratch> allocated = allocate_dsa_scratch(*be, cfg, tokens, t0, budget);
    ASSERT_TRUE(allocated.ok()) << allocated.status().to_string();
    DsaScratch scratch = std::move(allocated).value();
    ASSERT_EQ(scratch.logits.numel(), max_rows > 0 ? max_rows * dsa_logits_width(t0) : tokens * dsa_logits_width(t0));
    // Poisoned scratch: every score and index the step uses must be written by it (indices left at
    // kUnwritten show a step that selected nothing).
    std::vector<float> nan_logits(static_cast<size_t>(scratch.logits.numel()), NAN);
    ASSERT_TRUE(be->upload(nan_logits.data(), scratch.logits).ok());
    std::vector<int32_t> unwritten(static_cast<size_t>(scratch.indices.numel()), kUnwritten);
    ASSERT_TRUE(be->upload(unwritten.data(), scratch.indices).ok());
    std::vector<DsaRowBlockTensors> blocks;
    if (max_rows > 0) {
      std::vector<int32_t> qs = {0, t0, tokens}, cl = {t0, ctx1};
      for (const DsaRowBlock& b : plan_dsa_row_blocks(qs, cl, max_rows)) {
        DsaRowBlockTensors bt;
        bt.row_begin = b.row_begin;
        bt.row_end = b.row_end;
        bt.seq_begin = b.seq_begin;
        bt.seq_end = b.seq_end;
        bt.query_start = make_tensor(*be, DType::kI32, {static_cast<int64_t>(b.query_start.size())}, b.query_start);
        bt.context_lens = make_tensor(*be, DType::kI32, {static_cast<int64_t>(b.context_lens.size())}, b.context_lens);
        bt.max_context_len = b.max_context_len;
        blocks.push_back(bt);
      }
      ASSERT_GT(blocks.size(), 2u);
      s.blocks = blocks;
    }
    Status st = run_dsa_attention(*be, cfg, w, mode, s, scratch);
    ASSERT_TRUE(st.ok()) << st.to_string();
    *dsa = to_host(*be, s.attention.out);
    if (scratch.indices.data != nullptr) {
      indices->resize(static_cast<size_t>(scratch.indices.numel()));
      ASSERT_TRUE(be->download(scratch.indices, indices->data()).ok());
    }
    index_cache->resize(s.index_cache.num_bytes());
    ASSERT_TRUE(be->download(s.index_cache, index_cache->data()).ok());
    PagedAttentionArgs p = s.attention;  // the same attention, densely, into its own output
    p.out = *be->allocate(DType::kF32, {tokens, kHq, kD});
    ASSERT_TRUE(be->paged_attention(p).ok());
    *dense = to_host(*be, p.out);
  }
};

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

TEST_F(DsaAttentionTest, TopkAtLeastContextEqualsDense) {
  std::vector<float> dsa, dense;
  std::vector<int32_t> idx;
  std::vector<uint8_t> cache;
  run(256, DsaPrefillMode::kSparse, &dsa, &dense, &idx, &cache);
  // Every context (150 and 100 tokens) fits in the 256 selected: the step is dense attention, so
  // no score or top-k ran (the indices keep their poison) and the output is paged attention's.
  EXPECT_TRUE(std::all_of(idx.begin(), idx.end(), [](int32_t i) { return i == kUnwritten; }));
  EXPECT_EQ(max_diff(dsa, dense), 0.0);
  // Every token's index key was written: no NaN code (0x7F / 0xFF) is left in the used value slots.
  const std::vector<int32_t> tables = {2, 5, 0, 7, 1};
  auto written = [&](int page, int off) {
    const uint8_t* v = cache.data() + static_cast<size_t>(page) * 64 * (kId + 4) + off * kId;
    return std::none_of(v, v + kId, [](uint8_t b) { return (b & 0x7F) == 0x7F; });
  };
  for (int j = 0; j < 150; ++j) EXPECT_TRUE(written(tables[j / 64], j % 64)) << "prefill token " << j;
  for (int j = 0; j < 100; ++j) EXPECT_TRUE(written(tables[3 + j / 64], j % 64)) << "sequence 1 token " << j;
}

// The skip's boundary: index_topk equal to the longest context (150) still selects everything;
// one less must score and select (row 149 drops one token), so it differs from dense.
TEST_F(DsaAttentionTest, TopkEqualToTheLongestContextIsDenseAndOneLessSelects) {
  std::vector<float> dsa, dense;
  std::vector<int32_t> idx;
  std::vector<uint8_t> cache;
  run(150, DsaPrefillMode::kSparse, &dsa, &dense, &idx, &cache);
  EXPECT_EQ(max_diff(dsa, dense), 0.0);
  run(149, DsaPrefillMode::kSparse, &dsa, &dense, &idx, &cache);
  EXPECT_TRUE(std::none_of(idx.begin(), idx.end(), [](int32_t i) { return i == kUnwritten; }));
  EXPECT_GT(max_diff(dsa, dense), 0.0);
}

TEST_F(DsaAttentionTest, SmallTopkSelectsCausallyPerRow) {
  const int topk = 16;
  std::vector<float> dsa, dense;
  std::vector<int32_t> idx;
  std::vector<uint8_t> cache;
  run(topk, DsaPrefillMode::kSparse, &dsa, &dense, &idx, &cache);
  ASSERT_EQ(idx.size(), 151u * topk);
  for (int r = 0; r < 151; ++r) {
    int pos = r < 150 ? r : 99;
    int valid = 0;
    for (int i = 0; i < topk; ++i) {
      int32_t j = idx[r * topk + i];
      if (j < 0) continue;
      ++valid;
      EXPECT_LE(j, pos) << "row " << r << " selects a future token";
    }
    EXPECT_EQ(valid, std::min(pos + 1, topk)) << "row " << r;
  }
  // Rows past position 15 attend to 16 of their tokens, so they differ from dense; rows 0..15 do not.
  double early = 0, late = 0;
  for (size_t i = 0; i < dsa.size(); ++i) {
    double d = std::fabs(dsa[i] - dense[i]);
    if (i < 16u * kHq * kD) early = std::max(early, d); else late = std::max(late, d);
  }
  EXPECT_LT(early, 1e-5);
  EXPECT_GT(late, 1e-3);
}

TEST_F(DsaAttentionTest, RowBlocksSelectAndAttendAsOneBlock) {
  std::vector<float> one, dense, blocked;
  std::vector<int32_t> idx_one, idx_blocked;
  std::vector<uint8_t> cache_one, cache_blocked;
  run(16, DsaPrefillMode::kSparse, &one, &dense, &idx_one, &cache_one);
  // 37-row blocks: the 150-row prefill splits into 5 blocks, the last one shared with sequence 1.
  run(16, DsaPrefillMode::kSparse, &blocked, &dense, &idx_blocked, &cache_blocked, 37);
  EXPECT_EQ(idx_blocked, idx_one);
  EXPECT_EQ(max_diff(blocked, one), 0.0);
  EXPECT_EQ(cache_blocked, cache_one);
}

TEST_F(DsaAttentionTest, DenseModeIsPagedAttention) {
  std::vector<float> dsa, dense;
  std::vector<int32_t> idx;
  std::vector<uint8_t> cache;
  run(16, DsaPrefillMode::kDense, &dsa, &dense, &idx, &cache);
  EXPECT_EQ(max_diff(dsa, dense), 0.0);
}

TEST(DsaPrefillMode, ParsesTheFlagValues) {
  EXPECT_EQ(*parse_dsa_prefill_mode("sparse"), DsaPrefillMode::kSparse);
  EXPECT_EQ(*parse_dsa_prefill_mode("dense"), DsaPrefillMode::kDense);
  StatusOr<DsaPrefillMode> bad = parse_dsa_prefill_mode("Sparse");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'Sparse'"), std::string::npos);
  EXPECT_STREQ(dsa_prefill_mode_name(DsaPrefillMode::kDense), "dense");
}

}  // namespace
}  // namespace longbow
