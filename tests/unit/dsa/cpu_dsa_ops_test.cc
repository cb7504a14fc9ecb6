// The DSA ops of the Backend interface on the CPU backend: a decode step (index keys for the whole
// context, index scores, top-k, sparse attention), equality with dense paged attention when
// index_topk >= context, real selection when it is smaller, and argument validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_dsa.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::make_poisoned;
using testing::make_tensor;
using testing::make_zeroed;
using testing::random_floats;

class DsaOpsTest : public ::testing::Test {
 protected:
  static constexpr int kHq = 8, kHkv = 2, kD = 32, kIh = 4, kId = 32, kRope = 16, kPages = 5;
  std::unique_ptr<Backend> be = create_cpu_backend();


  // One sequence of `ctx` tokens (pages 3, 0, 4, ...), decode row at position ctx - 1; returns the
  // sparse attention output with index_topk `topk` and the dense paged attention output.
  void run(int ctx, int topk, std::vector<float>* sparse, std::vector<float>* dense, std::vector<int32_t>* picked) {
    std::vector<int32_t> table = {3, 0, 4, 1, 2};
    std::vector<int32_t> positions(ctx), slots(ctx);
    for (int j = 0; j < ctx; ++j) {
      positions[j] = j;
      slots[j] = table[j / 64] * 64 + j % 64;
    }
    std::vector<float> inv(kRope / 2);
    for (int i = 0; i < kRope / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / kRope);
    Tensor inv_freq = make_tensor(*be, DType::kF32, {kRope / 2}, inv);
    Tensor index_cache = make_zeroed(*be, DType::kFP8E4M3, {kPages, 64 * (kId + 4)});
    DsaIndexKeysArgs k;
    k.k_raw = make_tensor(*be, DType::kF32, {ctx, kId}, random_floats(ctx * kId, 1, -2, 2));
    k.norm_weight = make_tensor(*be, DType::kF32, {kId}, random_floats(kId, 2, 0.5f, 1.5f));
    k.norm_bias = make_tensor(*be, DType::kF32, {kId}, random_floats(kId, 3, -0.1f, 0.1f));
    k.positions = make_tensor(*be, DType::kI32, {ctx}, positions);
    k.slots = make_tensor(*be, DType::kI32, {ctx}, slots);
    k.inv_freq = inv_freq;
    k.index_cache = index_cache;
    ASSERT_TRUE(be->dsa_index_keys(k).ok());

    Tensor starts = make_tensor(*be, DType::kI32, {2}, std::vector<int32_t>{0, 1});
    Tensor lens = make_tensor(*be, DType::kI32, {1}, std::vector<int32_t>{ctx});
    Tensor tables = make_tensor(*be, DType::kI32, {1, kPages}, table);
    DsaIndexScoresArgs s;
    s.q = make_tensor(*be, DType::kF32, {1, kIh, kId}, random_floats(kIh * kId, 4, -2, 2));
    s.weights = make_tensor(*be, DType::kF32, {1, kIh}, random_floats(kIh, 5));
    s.positions = make_tensor(*be, DType::kI32, {1}, std::vector<int32_t>{ctx - 1});
    s.inv_freq = inv_freq;
    s.index_cache = index_cache;
    s.query_start = starts;
    s.context_lens = lens;
    s.block_tables = tables;
    s.logits = make_poisoned(*be, {1, ctx});
    s.max_context_len = ctx;
    ASSERT_TRUE(be->dsa_index_scores(s).ok());

    DsaTopkArgs t;
    t.logits = s.logits;
    t.query_start = starts;
    t.context_lens = lens;
    t.indices = make_tensor(*be, DType::kI32, {1, topk}, std::vector<int32_t>(static_cast<size_t>(topk), -7));
    ASSERT_TRUE(be->dsa_topk(t).ok());
    picked->resize(topk);
    ASSERT_TRUE(be->download(t.indices, picked->data()).ok());

    std::vector<float> kv = random_floats(kPages * 64 * kHkv * kD, 6);
    std::vector<float> vv = random_floats(kPages * 64 * kHkv * kD, 7);
    DsaSparseAttentionArgs a;
    a.q = make_tensor(*be, DType::kF32, {1, kHq, kD}, random_floats(kHq * kD, 8, -2, 2));
    a.k_cache = make_tensor(*be, DType::kF32, {kPages, 64, kHkv, kD}, kv);
    a.v_cache = make_tensor(*be, DType::kF32, {kPages, 64, kHkv, kD}, vv);
    a.indices = t.indices;
    a.query_start = starts;
    a.block_tables = tables;
    a.out = make_poisoned(*be, {1, kHq, kD});
    a.scale = 1.0f / std::sqrt(static_cast<float>(kD));
    ASSERT_TRUE(be->dsa_sparse_attention(a).ok());
    sparse->resize(kHq * kD);
    ASSERT_TRUE(be->download(a.out, sparse->data()).ok());

    PagedAttentionArgs p;
    p.q = a.q;
    p.k_cache = a.k_cache;
    p.v_cache = a.v_cache;
    p.query_start = starts;
    p.context_lens = lens;
    p.block_tables = tables;
    p.out = make_poisoned(*be, {1, kHq, kD});
    p.max_query_len = 1;
    p.max_context_len = ctx;
    p.scale = a.scale;
    ASSERT_TRUE(be->paged_attention(p).ok());
    dense->resize(kHq * kD);
    ASSERT_TRUE(be->download(p.out, dense->data()).ok());
  }
};

TEST_F(DsaOpsTest, TopkAtLeastContextEqualsDenseAttention) {
  for (int ctx : {1, 63, 64, 200}) {
    std::vector<float> sparse, dense;
    std::vector<int32_t> picked;
    run(ctx, 256, &sparse, &dense, &picked);
    for (int i = 0; i < 256; ++i) ASSERT_EQ(picked[i], i < ctx ? i : -1);
    for (size_t i = 0; i < dense.size(); ++i) ASSERT_NEAR(sparse[i], dense[i], 1e-5) << "ctx " << ctx;
  }
}

TEST_F(DsaOpsTest, SmallTopkSelectsAndDiffersFromDense) {
  std::vector<float> sparse, dense;
  std::vector<int32_t> picked;
  run(300, 64, &sparse, &dense, &picked);
  EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
  EXPECT_EQ(std::count(picked.begin(), picked.end(), -1), 0);
  EXPECT_NE(picked.back(), 63);  // not simply the first 64 tokens (a selection that scores nothing)
  double diff = 0.0;
  for (size_t i = 0; i < dense.size(); ++i) diff = std::max(diff, static_cast<double>(std::fabs(sparse[i] - dense[i])));
  EXPECT_GT(diff, 1e-3);
}

TEST_F(DsaOpsTest, RejectsBadArguments) {
  DsaIndexKeysArgs k;
  k.k_raw = make_zeroed(*be, DType::kF32, {2, kId});
  k.norm_weight = make_zeroed(*be, DType::kF32, {kId});
  k.norm_bias = make_zeroed(*be, DType::kF32, {kId});
  k.positions = make_tensor(*be, DType::kI32, {2}, std::vector<int32_t>{0, 1});
  k.slots = make_tensor(*be, DType::kI32, {2}, std::vector<int32_t>{0, kPages * 64});
  k.inv_freq = make_zeroed(*be, DType::kF32, {kRope / 2});
  k.index_cache = make_zeroed(*be, DType::kFP8E4M3, {kPages, 64 * (kId + 4)});
  Status st = be->dsa_index_keys(k);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("slots[1]"), std::string::npos) << st.message();
  k.index_cache = make_zeroed(*be, DType::kFP8E4M3, {kPages, 64 * kId});
  EXPECT_EQ(be->dsa_index_keys(k).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace longbow
