#include "model/kv_cache/page_allocator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace longbow {
namespace {

TEST(PageAllocator, HandsOutDistinctPagesUntilEmpty) {
  PageAllocator allocator(5);
  auto first = allocator.allocate(3);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(allocator.num_free(), 2);
  EXPECT_FALSE(allocator.allocate(3).has_value());  // too few: nothing changes
  EXPECT_EQ(allocator.num_free(), 2);
  auto second = allocator.allocate(2);
  ASSERT_TRUE(second.has_value());
  std::set<int32_t> all(first->begin(), first->end());
  all.insert(second->begin(), second->end());
  EXPECT_EQ(all.size(), 5u);
  EXPECT_EQ(allocator.num_free(), 0);
}

TEST(PageAllocator, FreedPagesReturn) {
  PageAllocator allocator(4);
  auto pages = allocator.allocate(4);
  ASSERT_TRUE(pages.has_value());
  allocator.free({pages->at(1), pages->at(3)});
  EXPECT_EQ(allocator.num_free(), 2);
  auto again = allocator.allocate(2);
  ASSERT_TRUE(again.has_value());
  std::vector<int32_t> sorted = *again;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int32_t>{pages->at(1), pages->at(3)}));
}

TEST(PageAllocator, PagesForTokens) {
  EXPECT_EQ(pages_for_tokens(0, 64), 0);
  EXPECT_EQ(pages_for_tokens(1, 64), 1);
  EXPECT_EQ(pages_for_tokens(64, 64), 1);
  EXPECT_EQ(pages_for_tokens(65, 64), 2);
}

}  // namespace
}  // namespace longbow
