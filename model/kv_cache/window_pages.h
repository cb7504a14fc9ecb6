// Which leading pages of a sequence a window group never reads again (DESIGN §5: "a window group
// returns the pages behind its window"), and the null page their block-table entries point at.
// Used by the window groups of the KV manager (model/kv_cache/page_group.h), which release them,
// and by the memory plan and the scheduler's bounds.
//
// Every layer of a window group attends to the last W tokens (itself included): a query at
// position p reads keys [p - W + 1, p]. The queries of a step sit at positions >= the sequence's
// num_computed, so keys before num_computed - W + 1 are dead for this and every later step. Pages
// are released in pairs: the Hopper flash-prefill kernel loads keys in 128-token tiles (two pages)
// and may fetch, and then mask, the page just before the window; only pages before an even page
// index are released, so no kernel loads a null entry inside a tile that holds live keys. (Since
// released entries point at the readable null page, a kernel that does load one reads zeros or
// garbage that its window mask drops; the pairing keeps the loads it does useful.)
#pragma once

#include <algorithm>
#include <cstdint>

namespace longbow {

// Page id 0 of every paged group's pool: reserved, never handed out, readable by every kernel.
// A block-table entry behind a window group's window is kNullPage, so a table keeps its logical
// indexing (entry i covers tokens [64·i, 64·i + 64)). (-1 remains only the marker of a decode
// graph's padding rows: slot -1, context 0.)
constexpr int32_t kNullPage = 0;

// Pages per release unit (see above): 2 × 64 tokens, the largest key tile of any prefill kernel.
constexpr int kWindowReleasePages = 2;

// Leading pages of a sequence that no query at a position >= first_query_pos reads with a sliding
// window of `window` tokens; 0 when window <= 0 (no window: every page stays).
constexpr int64_t pages_behind_window(int64_t first_query_pos, int64_t window, int64_t page_size) {
  if (window <= 0 || page_size <= 0) return 0;
  const int64_t first_key = std::max<int64_t>(0, first_query_pos - window + 1);
  const int64_t first_key_page = first_key / page_size;
  return first_key_page / kWindowReleasePages * kWindowReleasePages;
}

// The most live (non-null) entries a window group's table holds during a step that computes at most
// `step_tokens` tokens, when the pages behind the window of the step's first query are released
// (pages_behind_window(num_computed)): with a = num_computed - W + 1 = q·P + r, the table covers
// ceil((a + W - 1 + n) / P) entries of which at least q - 1 are released, so at most
// 1 + ceil((W + n + P - 2) / P) are live. 0 for window <= 0 (no bound).
constexpr int64_t window_live_pages_bound(int64_t window, int64_t step_tokens, int64_t page_size) {
  if (window <= 0 || page_size <= 0) return 0;
  return 1 + (window + step_tokens + page_size - 2 + page_size - 1) / page_size;
}

}  // namespace longbow
