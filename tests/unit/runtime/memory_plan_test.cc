// The memory planner's arithmetic (model/runtime/memory_plan.h) on odd numbers and edge fractions.
#include "model/runtime/memory_plan.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace longbow {
namespace {

constexpr size_t kGiB = size_t{1} << 30;

KvPoolRequest request(size_t total, size_t free, double utilization, size_t page_bytes) {
  KvPoolRequest r;
  r.backend_name = "test";
  r.total_bytes = total;
  r.free_bytes = free;
  r.utilization = utilization;
  r.weights_bytes = 3 * kGiB;
  r.workspace_bytes = 123457;
  r.page_bytes = page_bytes;
  r.page_size = 64;
  return r;
}

bool contains(const Status& s, const std::string& text) { return s.message().find(text) != std::string::npos; }

TEST(MemoryPlan, UtilizationMustBeAFractionInZeroOne) {
  EXPECT_TRUE(check_memory_utilization(1.0).ok());
  EXPECT_TRUE(check_memory_utilization(1e-9).ok());
  EXPECT_EQ(check_memory_utilization(0.0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(check_memory_utilization(-0.5).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(check_memory_utilization(1.0000001).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(check_memory_utilization(std::nan("")).code(), StatusCode::kInvalidArgument);
}

TEST(MemoryPlan, PoolIsFreeMemoryLessTheUnusableShareInWholePages) {
  // total 1000003 bytes, free 777777 at utilization 0.9: usable = 777777 - 100000.3 = 677776.7;
  // pages of 4099 bytes: floor(677776 / 4099) = 165.
  auto plan = plan_kv_pool(request(1000003, 777777, 0.9, 4099));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->num_pages, 165);
  EXPECT_EQ(plan->pool_bytes, size_t{165} * 4099);
  EXPECT_EQ(plan->tokens, 165 * 64);
  EXPECT_NE(plan->summary.find("165 pages"), std::string::npos) << plan->summary;
  EXPECT_NE(plan->summary.find("10560 tokens"), std::string::npos) << plan->summary;
  EXPECT_TRUE(plan->warning.empty());
}

TEST(MemoryPlan, UtilizationOneTakesAllFreeMemory) {
  auto plan = plan_kv_pool(request(1000003, 777777, 1.0, 4099));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->num_pages, 777777 / 4099);
}

TEST(MemoryPlan, CpuCapsBoundThePool) {
  KvPoolRequest r = request(10 * kGiB, 9 * kGiB, 0.9, 1 << 20);  // usable 8 GiB
  r.space_cap_bytes = 4 * kGiB + 12345;
  auto capped = plan_kv_pool(r);
  ASSERT_TRUE(capped.ok()) << capped.status().to_string();
  EXPECT_EQ(capped->num_pages, 4096);
  r.useful_pages = 1001;
  auto useful = plan_kv_pool(r);
  ASSERT_TRUE(useful.ok()) << useful.status().to_string();
  EXPECT_EQ(useful->num_pages, 1001);
}

TEST(MemoryPlan, NoPageFitsIsResourceExhaustedNamingTheNumbers) {
  // usable = 500000 - 0.1 * 1000000 = 400000 bytes < one page of 400001.
  auto plan = plan_kv_pool(request(1000000, 500000, 0.9, 400001));
  ASSERT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(plan.status(), "no KV page fits")) << plan.status().to_string();
  EXPECT_TRUE(contains(plan.status(), "400001 bytes")) << plan.status().to_string();
  EXPECT_TRUE(contains(plan.status(), "--gpu-memory-utilization")) << plan.status().to_string();
  // Less free memory than the unusable share: nothing, not an underflow.
  auto none = plan_kv_pool(request(1000000, 50000, 0.9, 1));
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted) << none.status().to_string();
}

TEST(MemoryPlan, APlannedPoolMustHoldOneMaxLengthSequenceAsInVllm) {
  KvPoolRequest r = request(1000003, 777777, 0.9, 4099);  // 165 pages = 10560 tokens
  r.max_model_len = 10561;
  auto plan = plan_kv_pool(r);
  ASSERT_EQ(plan.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(plan.status(), "10560 tokens")) << plan.status().to_string();
  EXPECT_TRUE(contains(plan.status(), "--max-model-len 10560 or less")) << plan.status().to_string();
  r.max_model_len = 10560;
  auto fits = plan_kv_pool(r);
  ASSERT_TRUE(fits.ok()) << fits.status().to_string();
  EXPECT_NE(fits->summary.find("1.00 sequences of 10560"), std::string::npos) << fits->summary;
}

TEST(MemoryPlan, ExplicitPagesWinAndOnlyWarnWhenShort) {
  KvPoolRequest r = request(1000003, 777777, 0.5, 4099);  // the plan alone would give 67 pages
  r.explicit_pages = 171;
  r.max_model_len = 64 * 171 + 1;
  auto plan = plan_kv_pool(r);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_EQ(plan->num_pages, 171);
  EXPECT_FALSE(plan->warning.empty());
  EXPECT_NE(plan->summary.find("pages set explicitly"), std::string::npos);
  r.explicit_pages = 777777 / 4099 + 1;  // more than free memory holds
  auto too_many = plan_kv_pool(r);
  ASSERT_EQ(too_many.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(too_many.status(), std::to_string(r.explicit_pages) + " pages"))
      << too_many.status().to_string();
}

TEST(MemoryPlan, WeightsMustFitTheUsableShare) {
  // usable = 900001 - (1 - 0.75) * 1000000 = 650001.
  EXPECT_TRUE(check_weights_fit(650001, 1000000, 900001, 0.75, "test").ok());
  Status s = check_weights_fit(650002, 1000000, 900001, 0.75, "test");
  ASSERT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(contains(s, "the weights need")) << s.to_string();
  EXPECT_TRUE(contains(s, "utilization 0.75")) << s.to_string();
  EXPECT_EQ(check_weights_fit(1, 1000000, 900001, 0.0, "test").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace longbow
