// pages_behind_window (model/kv_cache/window_pages.h): the released pages are exactly those below
// the two-page (128-key) tile that holds the first key any query at or after the step's first
// position can read, for every window and position.
#include "model/kv_cache/window_pages.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace longbow {
namespace {

TEST(WindowPages, NoWindowReleasesNothing) {
  EXPECT_EQ(pages_behind_window(100000, 0, 64), 0);
  EXPECT_EQ(pages_behind_window(0, 16, 64), 0);
}

TEST(WindowPages, ReleasesWholeTilesBehindTheFirstVisibleKey) {
  constexpr int64_t kPage = 64;
  constexpr int64_t kTile = kWindowReleasePages * kPage;
  for (int64_t window : {1, 16, 63, 64, 65, 100, 128, 200, 4096}) {
    for (int64_t pos = 0; pos < 2000; ++pos) {
      const int64_t released = pages_behind_window(pos, window, kPage);
      const int64_t first_key = std::max<int64_t>(0, pos - window + 1);
      // Nothing a query at >= pos reads (keys >= first_key), nor the tile a kernel loads to reach it.
      EXPECT_LE(released * kPage, first_key / kTile * kTile) << pos << " " << window;
      // Maximal: the next release unit would cut into that tile.
      EXPECT_GT((released + kWindowReleasePages) * kPage, first_key / kTile * kTile) << pos << " " << window;
      EXPECT_EQ(released % kWindowReleasePages, 0);
    }
  }
  EXPECT_EQ(pages_behind_window(227, 100, 64), 2);  // first key 128: pages 0 and 1 are dead
  EXPECT_EQ(pages_behind_window(226, 100, 64), 0);  // first key 127: page 1 is still read
}

// window_live_pages_bound is the most live entries a window group's table holds in a step of n
// tokens starting at any num_computed, when the entries behind pages_behind_window(num_computed) are
// released; and some position reaches it.
TEST(WindowPages, LivePagesBoundIsTightForEveryStartingPosition) {
  for (int64_t page : {4, 64}) {
    for (int64_t window : {1, 5, 8, 63, 64, 100, 128, 300}) {
      for (int64_t n : {1, 3, 64, 100}) {
        int64_t most = 0;
        for (int64_t computed = 0; computed < window + 40 * page; ++computed) {
          const int64_t covered = (computed + n + page - 1) / page;
          most = std::max(most, covered - pages_behind_window(computed, window, page));
        }
        EXPECT_LE(most, window_live_pages_bound(window, n, page)) << page << " " << window << " " << n;
        EXPECT_GE(most + 1, window_live_pages_bound(window, n, page)) << page << " " << window << " " << n;
      }
    }
  }
  EXPECT_EQ(window_live_pages_bound(0, 64, 64), 0);
  EXPECT_EQ(kNullPage, 0);
}

}  // namespace
}  // namespace longbow
