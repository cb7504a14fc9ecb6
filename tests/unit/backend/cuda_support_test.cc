// check_cuda_supported (model/backend/cuda/cuda_support.h): the load-time check of what the CUDA
// kernels can run. Each rejected value must come back as an error that names the field, the value
// and the supported set; the shapes next to each rejected one (same field, a supported value) pass,
// so a check that rejects too much fails here too.
#include "model/backend/cuda/cuda_support.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "tests/unit/backend/dsa_test_config.h"

namespace longbow {
namespace {

using testing::supported_dsa_config;

void expect_rejected(const ModelConfig& config, StatusCode code, std::initializer_list<const char*> fragments) {
  Status s = check_cuda_supported(config);
  EXPECT_EQ(s.code(), code) << s.to_string();
  for (const char* fragment : fragments) {
    EXPECT_NE(s.message().find(fragment), std::string::npos) << "'" << s.message() << "' lacks '" << fragment << "'";
  }
}

TEST(CudaSupport, AcceptsTheDesignModels) {
  Status s = check_cuda_supported(supported_dsa_config());
  EXPECT_TRUE(s.ok()) << s.to_string();
  ModelConfig dense = supported_dsa_config();
  dense.dsa.reset();
  EXPECT_TRUE(check_cuda_supported(dense).ok());
}

TEST(CudaSupport, DenseHeadDimAndGroups) {
  ModelConfig c = supported_dsa_config();
  c.dsa.reset();
  // Every multiple of 8 from 8 to 256 runs (64, 128 and 256 natively, the rest zero-padded to the next).
  for (int d : {8, 16, 24, 32, 40, 48, 72, 80, 96, 112, 136, 160, 192, 200, 248, 256}) {
    c.head_dim = d;
    c.rope.rotary_dim = d;
    Status s = check_cuda_supported(c);
    EXPECT_TRUE(s.ok()) << d << ": " << s.to_string();
  }
  for (int d : {0, 4, 12, 36, 100, 130, 264, 512}) {
    c.head_dim = d;
    c.rope.rotary_dim = d - d % 2;
    expect_rejected(c, StatusCode::kUnimplemented,
                    {("head_dim " + std::to_string(d)).c_str(), "multiples of 8 from 8 to 256"});
  }
  c.head_dim = 64;
  c.rope.rotary_dim = 64;
  EXPECT_TRUE(check_cuda_supported(c).ok());
  c.num_attention_heads = 12;
  c.num_key_value_heads = 8;
  expect_rejected(c, StatusCode::kInvalidArgument, {"num_attention_heads 12", "num_key_value_heads 8"});
  c.num_attention_heads = 24;  // groups of 3: paged decode rounds up to 4
  EXPECT_TRUE(check_cuda_supported(c).ok());
  c.num_attention_heads = 17 * 8;
  expect_rejected(c, StatusCode::kUnimplemented, {"17", "16"});
  c.num_attention_heads = 8;
  c.rope.rotary_dim = 33;
  expect_rejected(c, StatusCode::kUnimplemented, {"rotary_dim 33"});
}

TEST(CudaSupport, IndexHeadDim) {
  for (int d : {32, 96, 256}) {
    ModelConfig c = supported_dsa_config();
    c.dsa->head_dim = d;
    c.dsa->rope_dim = 16;
    expect_rejected(c, StatusCode::kUnimplemented, {("index_head_dim " + std::to_string(d)).c_str(), "64, 128"});
  }
  ModelConfig c = supported_dsa_config();
  c.dsa->head_dim = 64;
  EXPECT_TRUE(check_cuda_supported(c).ok());
}

// The logits kernels take 16, 32 or 64 heads at index_head_dim 128 but only 16 or 64 at 64.
TEST(CudaSupport, IndexHeadsDependOnIndexHeadDim) {
  for (int heads = 1; heads <= 128; ++heads) {
    for (int d : {64, 128}) {
      ModelConfig c = supported_dsa_config();
      c.dsa->n_heads = heads;
      c.dsa->head_dim = d;
      const bool want = heads == 16 || heads == 64 || (heads == 32 && d == 128);
      Status s = check_cuda_supported(c);
      EXPECT_EQ(s.ok(), want) << heads << " heads of " << d << ": " << s.to_string();
      if (!want) {
        EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
        EXPECT_NE(s.message().find("index_n_heads " + std::to_string(heads)), std::string::npos) << s.message();
        EXPECT_NE(s.message().find(d == 128 ? "16, 32, 64" : "16, 64"), std::string::npos) << s.message();
      }
    }
  }
}

// One warp rotates a vector, so the rotated dims come in steps of 2 · index_head_dim / 32.
TEST(CudaSupport, IndexRopeDim) {
  ModelConfig c = supported_dsa_config();
  for (int rope : {0, 8, 64, 120, 128}) {
    c.dsa->rope_dim = rope;
    EXPECT_TRUE(check_cuda_supported(c).ok()) << rope;
  }
  c.dsa->rope_dim = 4;
  expect_rejected(c, StatusCode::kUnimplemented, {"index_rope_dim 4", "multiples of 8"});
  c.dsa->head_dim = 64;
  c.dsa->n_heads = 16;
  c.dsa->rope_dim = 4;
  EXPECT_TRUE(check_cuda_supported(c).ok());
  c.dsa->rope_dim = 6;
  expect_rejected(c, StatusCode::kUnimplemented, {"index_rope_dim 6", "multiples of 4"});
}

TEST(CudaSupport, IndexTopk) {
  ModelConfig c = supported_dsa_config();
  for (int k : {1, 2047, 4096}) {
    c.dsa->topk = k;
    EXPECT_TRUE(check_cuda_supported(c).ok()) << k;
  }
  c.dsa->topk = 4097;
  expect_rejected(c, StatusCode::kUnimplemented, {"index_topk 4097", "1 to 4096"});
}

// Dense attention takes any multiple of 8 up to 256, but the DSA sparse-attention kernels only 64 and 128.
TEST(CudaSupport, DsaHeadDim) {
  ModelConfig c = supported_dsa_config();
  for (int d : {64, 128}) {
    c.head_dim = d;
    c.rope.rotary_dim = d;
    EXPECT_TRUE(check_cuda_supported(c).ok()) << d;
  }
  for (int d : {32, 96, 256}) {
    c.head_dim = d;
    c.rope.rotary_dim = d;
    expect_rejected(c, StatusCode::kUnimplemented,
                    {("head_dim " + std::to_string(d)).c_str(), "DSA", "supported: 64, 128"});
  }
}

// Sparse attention needs exact groups of 1, 2, 4 or 8, where dense decode would round 3 up to 4.
TEST(CudaSupport, DsaQueryGroups) {
  ModelConfig c = supported_dsa_config();
  for (int group : {1, 2, 4, 8}) {
    c.num_attention_heads = group * c.num_key_value_heads;
    EXPECT_TRUE(check_cuda_supported(c).ok()) << group;
  }
  for (int group : {3, 6, 16}) {
    c.num_attention_heads = group * c.num_key_value_heads;
    expect_rejected(c, StatusCode::kUnimplemented,
                    {("= " + std::to_string(group)).c_str(), "DSA", "supported: 1, 2, 4, 8"});
  }
}

}  // namespace
}  // namespace longbow
