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

}  // namespace
}  // namespace longbow
