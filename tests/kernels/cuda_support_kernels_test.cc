// check_cuda_supported (model/backend/cuda/cuda_support.h) against the kernels themselves: for DSA
// shapes on both sides of every limit, the load-time check accepts a shape exactly when the CUDA
// backend's DSA ops run it. A kernel that learns (or drops) a shape without the check following
// fails here. Inputs are zeros: only whether each op runs is asked, not what it computes (the other
// DSA tests check values).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "model/backend/backend.h"
#include "model/backend/cuda/cuda_support.h"
#include "tests/unit/backend/backend_test_util.h"
#include "tests/unit/backend/dsa_test_config.h"

namespace longbow {
namespace {

using testing::make_zeroed;
using testing::supported_dsa_config;

class CudaSupportKernelsTest : public ::testing::Test {
 protected:
  static constexpr int kCtx = 100;  // two pages; one decode row at position kCtx - 1
  static constexpr int kPages = 2;

  void SetUp() override {
    StatusOr<std::unique_ptr<Backend>> cuda = create_backend("cuda");
    ASSERT_TRUE(cuda.ok()) << cuda.status().to_string();
    be_ = std::move(*cuda);
  }

  Tensor ints(std::initializer_list<int64_t> dims, const std::vector<int32_t>& values) {
    return testing::make_i32(*be_, dims, values);
  }

  // Index keys for the context, then index scores of the decode row: OK when the indexer kernels
  // (index_quant.cu, index_logits*.cu) run this shape.
  Status run_indexer(const DsaIndexerConfig& dsa) {
    std::vector<int32_t> positions(kCtx), slots(kCtx);
    for (int j = 0; j < kCtx; ++j) positions[j] = slots[j] = j;
    const int64_t rope_pairs = dsa.rope_dim / 2;
    Tensor inv_freq = testing::make_f32(*be_, {rope_pairs}, std::vector<float>(static_cast<size_t>(rope_pairs), 0.5f));
    Tensor cache = make_zeroed(*be_, DType::kFP8E4M3, {kPages, kPageSize * (dsa.head_dim + 4)});
    DsaIndexKeysArgs keys{make_zeroed(*be_, be_->compute_dtype(), {kCtx, dsa.head_dim}),
                          make_zeroed(*be_, be_->compute_dtype(), {dsa.head_dim}),
                          make_zeroed(*be_, be_->compute_dtype(), {dsa.head_dim}),
                          ints({kCtx}, positions),
                          ints({kCtx}, slots),
                          inv_freq,
                          1.0f,
                          cache};
    RETURN_IF_ERROR(be_->dsa_index_keys(keys));
    DsaIndexScoresArgs s;
    s.q = make_zeroed(*be_, be_->compute_dtype(), {1, dsa.n_heads, dsa.head_dim});
    s.weights = make_zeroed(*be_, be_->compute_dtype(), {1, dsa.n_heads});
    s.positions = ints({1}, {kCtx - 1});
    s.inv_freq = inv_freq;
    s.index_cache = cache;
    s.query_start = ints({2}, {0, 1});
    s.context_lens = ints({1}, {kCtx});
    s.block_tables = ints({1, kPages}, {0, 1});
    s.logits = make_zeroed(*be_, DType::kF32, {1, kCtx});
    s.max_context_len = kCtx;
    RETURN_IF_ERROR(be_->dsa_index_scores(s));
    return be_->synchronize();
  }

  Status run_topk(int k) {
    DsaTopkArgs t{make_zeroed(*be_, DType::kF32, {1, kCtx}), ints({2}, {0, 1}), ints({1}, {kCtx}),
                  make_zeroed(*be_, DType::kI32, {1, k})};
    RETURN_IF_ERROR(be_->dsa_topk(t));
    return be_->synchronize();
  }

  Status run_sparse_attention(int q_heads, int kv_heads, int head_dim) {
    std::vector<int32_t> picked(16);
    for (int i = 0; i < 16; ++i) picked[static_cast<size_t>(i)] = i * 6;
    DsaSparseAttentionArgs a{make_zeroed(*be_, be_->compute_dtype(), {1, q_heads, head_dim}),
                             make_zeroed(*be_, be_->compute_dtype(), {kPages, kPageSize, kv_heads, head_dim}),
                             make_zeroed(*be_, be_->compute_dtype(), {kPages, kPageSize, kv_heads, head_dim}),
                             ints({1, 16}, picked),
                             ints({2}, {0, 1}),
                             ints({1, kPages}, {0, 1}),
                             make_zeroed(*be_, be_->compute_dtype(), {1, q_heads, head_dim}),
                             1.0f / std::sqrt(static_cast<float>(head_dim))};
    RETURN_IF_ERROR(be_->dsa_sparse_attention(a));
    return be_->synchronize();
  }

  std::unique_ptr<Backend> be_;
};

void expect_agree(const Status& check, const Status& kernels, const std::string& what) {
  EXPECT_EQ(check.ok(), kernels.ok()) << what << ": check says '" << check.to_string() << "', kernels say '"
                                      << kernels.to_string() << "'";
}

TEST_F(CudaSupportKernelsTest, IndexHeadsAndHeadDim) {
  for (int head_dim : {32, 64, 128, 256}) {
    for (int heads : {8, 16, 24, 32, 48, 64, 128}) {
      ModelConfig c = supported_dsa_config();
      c.dsa = DsaIndexerConfig{heads, head_dim, 2048, 16};
      expect_agree(check_cuda_supported(c), run_indexer(*c.dsa),
                   std::to_string(heads) + " index heads of " + std::to_string(head_dim));
    }
  }
}

TEST_F(CudaSupportKernelsTest, IndexRopeDim) {
  for (int head_dim : {64, 128}) {
    for (int rope : {2, 4, 6, 8, 12, 16, 24, 64}) {
      if (rope > head_dim) continue;
      ModelConfig c = supported_dsa_config();
      c.dsa = DsaIndexerConfig{16, head_dim, 2048, rope};
      expect_agree(check_cuda_supported(c), run_indexer(*c.dsa),
                   "index_rope_dim " + std::to_string(rope) + " at index_head_dim " + std::to_string(head_dim));
    }
  }
}

TEST_F(CudaSupportKernelsTest, IndexTopk) {
  for (int k : {1, 2048, 4096, 4097, 8192}) {
    ModelConfig c = supported_dsa_config();
    c.dsa->topk = k;
    expect_agree(check_cuda_supported(c), run_topk(k), "index_topk " + std::to_string(k));
  }
}

TEST_F(CudaSupportKernelsTest, SparseAttentionGroups) {
  for (int head_dim : {64, 96, 128}) {
    for (int group = 1; group <= 10; ++group) {
      ModelConfig c = supported_dsa_config();
      c.num_key_value_heads = 2;
      c.num_attention_heads = 2 * group;
      c.head_dim = head_dim;
      c.rope.rotary_dim = head_dim;
      expect_agree(check_cuda_supported(c), run_sparse_attention(2 * group, 2, head_dim),
                   "groups of " + std::to_string(group) + " at head_dim " + std::to_string(head_dim));
    }
  }
}

}  // namespace
}  // namespace longbow
