// group_cache_specs: which layers share a block table or a state slot.
#include "model/kv_cache/cache_spec.h"

#include <gtest/gtest.h>

#include <vector>

namespace longbow {
namespace {

TEST(CacheSpec, AllFullLayersFormOneGroup) {
  std::vector<CacheSpec> specs(3, PagedSpec{.bytes_per_token = 100, .window = 0});
  std::vector<CacheGroup> groups = group_cache_specs(specs, 64);
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_FALSE(groups[0].is_state);
  EXPECT_EQ(groups[0].window, 0);
  EXPECT_EQ(groups[0].bytes_per_page, 3 * 100 * 64);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 1, 2}));
}

TEST(CacheSpec, LocalGlobalAndStateLayersFormOneGroupEach) {
  // Gemma-3-like 2 local : 1 global, then a lightning layer; layers of one window with different
  // byte counts (a DSA layer's extra index keys) still share their table.
  std::vector<CacheSpec> specs = {PagedSpec{10, 512}, PagedSpec{10, 512}, PagedSpec{12, 0},
                                  StateSpec{4096},    PagedSpec{10, 512}, PagedSpec{10, 0}};
  std::vector<CacheGroup> groups = group_cache_specs(specs, 64);
  ASSERT_EQ(groups.size(), 3u);
  EXPECT_EQ(groups[0].window, 512);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 1, 4}));
  EXPECT_EQ(groups[0].bytes_per_page, 3 * 10 * 64);
  EXPECT_EQ(groups[1].window, 0);
  EXPECT_EQ(groups[1].layers, (std::vector<int>{2, 5}));
  EXPECT_EQ(groups[1].bytes_per_page, (12 + 10) * 64);
  EXPECT_TRUE(groups[2].is_state);
  EXPECT_EQ(groups[2].layers, (std::vector<int>{3}));
  EXPECT_EQ(groups[2].bytes_per_slot, 4096);
}

}  // namespace
}  // namespace longbow
