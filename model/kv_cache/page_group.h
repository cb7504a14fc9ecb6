// PageGroup: the pool, refcounts, prefix cache and block tables of one paged cache group (DESIGN §5;
// the layers sharing one CacheGroup). The KV manager (kv_cache_manager.h) keeps one per paged group
// and drives them together.
//
// Page id 0 is the null page (kNullPage, window_pages.h): reserved, never handed out, never
// referenced. Pages 1 .. pool_size-1 are shared by refcount. A full page whose K/V has been written
// (commit()) is identified by its chained PageKey and can be reused by any later sequence with the
// same prefix. A page whose refcount drops to 0 goes to the free queue but keeps its key, so it can
// still be hit until allocation needs it: the queue is LRU (the head is evicted first). A
// sequence's pages are released tail first, so the pages holding the longest (least shareable)
// prefixes are evicted first; pages without a key go to the head, as they hold nothing worth keeping.
//
// The group's policy follows its window:
// - full (window 0): a table keeps every page; a prefix hit is the longest run of cached pages from
//   the left;
// - window W: release_behind() returns the leading pages no later query reads
//   (pages_behind_window) and sets their entries to kNullPage; a prefix hit of L pages needs only
//   the pages from pages_behind_window(L·P) to L (the last W tokens' pages), the entries before
//   them are kNullPage from the start.
// A released page is released like any other: it stays alive while another table shares it, and a
// keyed one stays in the prefix cache until allocation evicts it.
//
// No device code. Not thread-safe: the engine thread owns it (through the KV manager).
// Feasibility/mutation pairs: hit_pages()/pages_needed()/pages_to_grow() never mutate; allocate()
// and grow() mutate only when they succeed.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/page_hash.h"

namespace longbow {

using SeqId = int64_t;

class PageGroup {
 public:
  // `pool_size` page ids, the null page included (so pool_size - 1 usable pages); `window` 0 for a
  // full group.
  PageGroup(int pool_size, int page_size, int window, bool prefix_caching);

  int window() const { return window_; }
  int pool_size() const { return static_cast<int>(pages_.size()); }
  int num_usable() const { return pool_size() - 1; }
  int num_free() const { return num_free_; }
  int num_used() const { return num_usable() - num_free_; }
  int num_cached() const { return static_cast<int>(cached_.size()); }
  int64_t num_evictions() const { return num_evictions_; }

  // The largest L <= max_pages such that this group can start a sequence at token L·P from cached
  // pages of `chain` (which holds at least max_pages keys; `tokens` at least max_pages·P tokens):
  // full: pages 0..L-1 all cached; window: pages pages_behind_window(L·P)..L-1 cached. 0 when
  // prefix caching is off.
  int hit_pages(const PageChain& chain, std::span<const int32_t> tokens, int max_pages) const;

  // Free pages allocate(..., hit, num_tokens) would consume: fresh pages beyond the hit, plus hit
  // pages that sit in the free queue.
  int pages_needed(const PageChain& chain, std::span<const int32_t> tokens, int hit, int num_tokens) const;
  // Creates `seq`'s table: kNullPage behind the window (window groups), the hit pages (shared), then
  // fresh pages up to `num_tokens`. `hit` must not exceed hit_pages(). RESOURCE_EXHAUSTED (no
  // change) when too few pages are free; INVALID_ARGUMENT if `seq` already has a table.
  Status allocate(SeqId seq, const PageChain& chain, std::span<const int32_t> tokens, int hit, int num_tokens);

  // Free pages needed for `seq`'s table to cover `num_tokens` tokens.
  int pages_to_grow(SeqId seq, int num_tokens) const;
  // Appends fresh pages so the table covers `num_tokens`. RESOURCE_EXHAUSTED (no change) if too few.
  Status grow(SeqId seq, int num_tokens);

  // Records that the first `num_full_pages` pages of `seq` hold the tokens keyed by `chain` (which
  // holds that many keys): they enter the prefix cache (unless released already, or the key is
  // cached by another page). No-op without prefix caching.
  void commit(SeqId seq, const PageChain& chain, std::span<const int32_t> tokens, int num_full_pages);

  // Window policy: releases the entries of `seq` that no query at a position >= first_query_pos
  // reads (tail first, as free()) and sets them to kNullPage. No-op for full groups. Call it after
  // commit() for those pages, or their keys never enter the prefix cache.
  void release_behind(SeqId seq, int64_t first_query_pos);

  // Drops `seq`'s table, releasing its pages (tail first). Unknown ids are ignored.
  void free(SeqId seq);

  bool has_table(SeqId seq) const { return tables_.count(seq) != 0; }
  // Page ids of `seq` in logical order (kNullPage for released entries); empty for an unknown id.
  std::span<const int32_t> block_table(SeqId seq) const;
  // Entries of `seq` that hold a page (not kNullPage).
  int live_pages(SeqId seq) const;

  // The null page is never referenced nor free; every other page is free xor referenced; refcounts
  // equal the references from tables, whose kNullPage entries form a leading run (window groups
  // only); the free queue is a consistent list of exactly the unreferenced pages; the key map and
  // page keys agree. INTERNAL naming the first broken invariant.
  Status check_integrity() const;

 private:
  static constexpr int32_t kNone = -1;

  struct Page {
    int32_t ref_count = 0;
    bool has_key = false;
    PageKey key;
    PageKey parent_key;
    int32_t prev = kNone;  // free-queue links, valid while ref_count == 0
    int32_t next = kNone;
  };

  struct Table {
    std::vector<int32_t> pages;
    int num_committed_pages = 0;  // leading pages offered to the prefix cache
    int num_released_pages = 0;   // leading entries that are kNullPage
  };

  // The cached page holding page `i` of `chain` (its tokens in `tokens`), or kNone.
  int32_t find_cached(const PageChain& chain, std::span<const int32_t> tokens, int i) const;
  int first_live_page(int hit) const;  // entries before it are kNullPage in a table starting at hit
  std::span<const int32_t> page_tokens(int32_t page) const;
  void queue_push_back(int32_t page);
  void queue_push_front(int32_t page);
  void queue_remove(int32_t page);
  int32_t take_free_page();  // pops the head; evicts its key
  void retain(int32_t page);
  void release(int32_t page);

  int page_size_;
  int window_;
  bool prefix_caching_;
  std::vector<Page> pages_;
  std::vector<int32_t> page_tokens_;  // [pool_size][page_size]: tokens of each keyed page
  int32_t free_head_ = kNone;
  int32_t free_tail_ = kNone;
  int num_free_ = 0;
  std::unordered_map<PageKey, int32_t, PageKeyHasher> cached_;
  std::unordered_map<SeqId, Table> tables_;
  int64_t num_evictions_ = 0;
};

}  // namespace longbow
