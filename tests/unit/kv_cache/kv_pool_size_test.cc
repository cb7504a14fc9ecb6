#include "model/kv_cache/kv_pool_size.h"

#include <gtest/gtest.h>

namespace longbow {
namespace {

ModelConfig llama_8b_shapes() {
  ModelConfig config;
  config.num_hidden_layers = 32;
  config.num_key_value_heads = 8;
  config.head_dim = 128;
  return config;
}

TEST(KvPoolSize, PageBytesOfLlama8b) {
  // 2 (K, V) * 32 layers * 8 heads * 128 dims * 2 bytes = 128 KiB per token; 64 tokens per page.
  EXPECT_EQ(kv_page_bytes(llama_8b_shapes(), DType::kBF16, 64), size_t{64} * 128 * 1024);
  EXPECT_EQ(kv_page_bytes(llama_8b_shapes(), DType::kF32, 64), size_t{64} * 256 * 1024);
}

TEST(KvPoolSize, PageBytesCountTheDsaIndexCache) {
  // The Llama-3.1-8B DSA config: index_head_dim 128, so 128 fp8 bytes + a 4-byte scale per token
  // per layer (DESIGN §5: 132 B), on all 32 layers, next to the 128 KiB of K/V per token.
  ModelConfig dsa = llama_8b_shapes();
  dsa.dsa = DsaIndexerConfig{64, 128, 2048, 64};
  EXPECT_EQ(kv_page_bytes(dsa, DType::kBF16, 64), size_t{64} * (128 * 1024 + 32 * 132));
  // The index cache is FP8 whatever the K/V dtype.
  EXPECT_EQ(kv_page_bytes(dsa, DType::kF32, 64), size_t{64} * (256 * 1024 + 32 * 132));
}

TEST(KvPoolSize, PagesFromFreeMemory) {
  size_t page = kv_page_bytes(llama_8b_shapes(), DType::kBF16, 64);
  auto pages = kv_pages_for_memory(llama_8b_shapes(), DType::kBF16, 64, 100 * page + page / 2, 1.0);
  ASSERT_TRUE(pages.ok()) << pages.status().to_string();
  EXPECT_EQ(*pages, 100);
  auto half = kv_pages_for_memory(llama_8b_shapes(), DType::kBF16, 64, 100 * page, 0.5);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(*half, 50);
}

TEST(KvPoolSize, RejectsTooLittleMemoryAndBadFractions) {
  size_t page = kv_page_bytes(llama_8b_shapes(), DType::kBF16, 64);
  auto none = kv_pages_for_memory(llama_8b_shapes(), DType::kBF16, 64, page - 1, 1.0);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(kv_pages_for_memory(llama_8b_shapes(), DType::kBF16, 64, page * 4, 0.0).ok());
  EXPECT_FALSE(kv_pages_for_memory(llama_8b_shapes(), DType::kBF16, 64, page * 4, 1.5).ok());
}

}  // namespace
}  // namespace longbow
