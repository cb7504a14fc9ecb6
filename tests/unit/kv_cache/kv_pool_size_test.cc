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

// ---- the per-group memory plan (DESIGN §5) ------------------------------------------------------

CacheGroup paged_group(int window, int64_t bytes_per_page, std::vector<int> layers) {
  CacheGroup g;
  g.window = window;
  g.bytes_per_page = bytes_per_page;
  g.layers = std::move(layers);
  return g;
}

TEST(GroupPlan, DemandPerGroupKind) {
  GroupDemand demand{.max_model_len = 8192, .max_batched_tokens = 2048, .max_num_seqs = 4, .page_size = 64};
  EXPECT_EQ(group_demand_tokens(paged_group(0, 1, {0}), demand), 8192);
  // The window and a step's tokens need not start at a page boundary: window_live_pages_bound(512,
  // 2048, 64) = 42 whole pages, what the KV manager needs so that it never caps a sequence's length.
  EXPECT_EQ(group_demand_tokens(paged_group(512, 1, {0}), demand), 42 * 64);
  EXPECT_EQ(group_demand_tokens(paged_group(8000, 1, {0}), demand), 8192);  // capped by the model length
}

TEST(GroupPlan, SplitsInProportionToDemandAndCountsTheNullPage) {
  // Gemma-3-like: 5 local layers (window 512) : 1 global layer, same bytes per layer.
  std::vector<CacheGroup> groups = {paged_group(512, 5 * 1000, {0, 1, 2, 3, 4}), paged_group(0, 1000, {5})};
  GroupDemand demand{.max_model_len = 64 * 100, .max_batched_tokens = 64 * 8, .max_num_seqs = 4, .page_size = 64};
  // One full-length sequence: 18 window pages (8 window + 8 step, unaligned: window_live_pages_bound)
  // and 100 full pages.
  const int64_t per_sequence = 18 * 5000 + 100 * 1000;
  const size_t budget = 5000 + 1000 + 10 * per_sequence;  // null pages + exactly 10 sequences
  std::vector<int> sizes = plan_group_pages(groups, budget, demand);
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], 1 + 180);
  EXPECT_EQ(sizes[1], 1 + 1000);
  EXPECT_TRUE(check_group_plan(groups, sizes, demand).ok());
  // Never more than the budget.
  EXPECT_LE(static_cast<size_t>(sizes[0]) * 5000 + static_cast<size_t>(sizes[1]) * 1000, budget);
  std::string line = describe_group_plan(groups, sizes, demand);
  EXPECT_NE(line.find("group 0 (window 512, layers 0-4): 181 pages of 64 tokens"), std::string::npos) << line;
  EXPECT_NE(line.find("group 1 (full, layers 5): 1001 pages"), std::string::npos) << line;
}

TEST(GroupPlan, StateSlotsComeFirstAndATooSmallBudgetIsReported) {
  CacheGroup state;
  state.is_state = true;
  state.bytes_per_slot = 100;
  state.layers = {1};
  std::vector<CacheGroup> groups = {paged_group(0, 1000, {0, 2}), state};
  GroupDemand demand{.max_model_len = 640, .max_batched_tokens = 64, .max_num_seqs = 3, .page_size = 64};
  std::vector<int> sizes = plan_group_pages(groups, 300 + 1000 + 20 * 1000, demand);
  EXPECT_EQ(sizes, (std::vector<int>{21, 3}));
  EXPECT_TRUE(check_group_plan(groups, sizes, demand).ok());
  std::vector<int> tiny = plan_group_pages(groups, 300 + 1000 + 999, demand);
  EXPECT_EQ(tiny, (std::vector<int>{1, 3}));
  Status status = check_group_plan(groups, tiny, demand);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("group 0 (full, layers 0,2)"), std::string::npos) << status.message();
  EXPECT_EQ(check_group_plan(groups, {5}, demand).code(), StatusCode::kInvalidArgument);
}

TEST(GroupPlan, LayerRanges) {
  EXPECT_EQ(describe_layer_ranges({0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 12}), "0-4,6-10,12");
  EXPECT_EQ(describe_layer_ranges({5}), "5");
  EXPECT_EQ(describe_layer_ranges({}), "");
}

}  // namespace
}  // namespace longbow
