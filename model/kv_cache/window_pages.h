// Which leading pages of a sequence a sliding-window model never reads again (DESIGN §4: "pages
// behind the window are freed"). Shared by the scheduler, which releases them
// (KvCacheManager::release_leading), and by the readers of block tables, which must accept them as
// released (kReleasedPage) and never read them: build_step_inputs and every paged-attention
// implementation (backend.h, PagedAttentionArgs).
//
// Every layer attends to the last W tokens (itself included): a query at position p reads keys
// [p - W + 1, p]. The queries of a step sit at positions >= the sequence's num_computed, so keys
// before num_computed - W + 1 are dead for this and every later step. Pages are released in pairs:
// the Hopper flash-prefill kernel loads keys in 128-token tiles (two pages) and may fetch, and then
// mask, the page just before the window; only pages before an even page index are released, so no
// kernel ever loads a released entry.
//
// A model that mixes sliding and full-attention layers cannot release anything (its full layers
// read every page); parse_model_config rejects such models today, and the runtime rejects a window
// together with a DSA indexer (whose index scores read every page). Whoever lifts either rule must
// pass window 0 here for that model.
#pragma once

#include <algorithm>
#include <cstdint>

namespace longbow {

// A block-table entry whose page was released behind the window: never read by any kernel.
constexpr int32_t kReleasedPage = -1;

// Page 0 of every cache group's pool: never handed to a sequence; a window group's entries behind
// the window point at it. Attention may read it but masks it by the window (backend.h).
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

}  // namespace longbow
