// KvCacheManager: host-side bookkeeping of the paged KV cache, with refcounts and a prefix cache.
//
// Owns, for every live sequence, the block table (physical page ids, in logical order) that the
// runtime reads. Pages are shared by refcount; a full page whose K/V has been written (commit())
// is identified by its chained PageKey and can be reused by any later sequence with the same prefix.
// A page whose refcount drops to 0 goes to the free queue but keeps its key, so it can still be hit
// until allocation needs it: the queue is LRU (the head is evicted first). A sequence's pages are
// released tail first, so the pages holding the longest (least shareable) prefixes are evicted first;
// pages without a key go to the head, as they hold nothing worth keeping.
//
// Sliding-window models release a running sequence's leading pages once no query can read them
// (release_leading, window_pages.h): their table entries become kReleasedPage (-1) and stay so, so
// a table keeps its logical length (entry i still covers tokens [64·i, 64·i + 64)). A released page
// is released like any other: it stays alive while another table shares it, and a keyed one stays
// in the prefix cache until allocation evicts it.
//
// No device code. Not thread-safe: the engine thread owns it.
//
// Feasibility/mutation pairs: match_prefix()/pages_needed() never mutate; allocate() and grow()
// mutate only when they succeed.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/page_hash.h"
#include "model/kv_cache/window_pages.h"

namespace longbow {

using SeqId = int64_t;

struct KvCacheOptions {
  int num_pages = 0;
  int page_size = 64;
  bool enable_prefix_caching = true;
};

// The cached leading pages of a token sequence, as found by match_prefix(). Valid until the next
// mutating call.
struct PrefixMatch {
  std::vector<int32_t> pages;  // physical pages of the prefix, in order
  PageKey last_key;            // key of the last matched page (the root key when none matched)
  uint64_t salt = 0;
  int num_tokens(int page_size) const { return static_cast<int>(pages.size()) * page_size; }
};

struct KvCacheStats {
  int num_pages = 0;
  int num_used = 0;    // refcount > 0
  int num_free = 0;    // refcount 0 (includes cached pages, which are evictable)
  int num_cached = 0;  // pages holding a key (in use or free)
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up at allocate()
  int64_t prefix_hit_tokens = 0;    // of those, tokens served from the cache
  int64_t num_evictions = 0;        // cached pages whose key was dropped to reuse the page
};

class KvCacheManager {
 public:
  explicit KvCacheManager(const KvCacheOptions& options);

  int page_size() const { return page_size_; }
  int num_pages() const { return static_cast<int>(pages_.size()); }
  int num_free() const { return num_free_; }
  int num_used() const { return num_pages() - num_free_; }
  bool prefix_caching() const { return prefix_caching_; }
  KvCacheStats stats() const;

  // The longest run of cached full pages that prefixes `tokens`, never covering the last token
  // (its logits must be computed). Empty when prefix caching is off.
  PrefixMatch match_prefix(std::span<const int32_t> tokens, uint64_t salt) const;

  // Free pages allocate(match, num_tokens) would consume: new pages beyond the match, plus matched
  // pages that currently sit in the free queue.
  int pages_needed(const PrefixMatch& match, int num_tokens) const;
  bool can_allocate(const PrefixMatch& match, int num_tokens) const {
    return pages_needed(match, num_tokens) <= num_free_;
  }
  // Creates `seq`'s block table: the matched pages (shared), then fresh pages up to `num_tokens`
  // tokens. `num_query_tokens` is counted for the hit rate. RESOURCE_EXHAUSTED (no change) when
  // too few pages are free; INVALID_ARGUMENT if `seq` already has a table.
  Status allocate(SeqId seq, const PrefixMatch& match, int num_tokens, int num_query_tokens);

  // Free pages needed for `seq`'s table to cover `num_tokens` tokens.
  int pages_to_grow(SeqId seq, int num_tokens) const;
  bool can_grow(SeqId seq, int num_tokens) const { return pages_to_grow(seq, num_tokens) <= num_free_; }
  // Appends fresh pages so the table covers `num_tokens`. RESOURCE_EXHAUSTED (no change) if too few.
  Status grow(SeqId seq, int num_tokens);

  // Records that K/V of tokens[0, num_computed) of `seq` is written: its full pages enter the prefix
  // cache. `tokens` is the sequence's whole token list (prompt, then outputs).
  void commit(SeqId seq, std::span<const int32_t> tokens, int num_computed);

  // Releases the entries [0, num_pages) of `seq`'s table that are not released yet (the last of
  // them first, as free()) and sets them to kReleasedPage; entries past the table's end are
  // ignored. Call it after commit() for the tokens those pages hold, or their keys never enter the
  // prefix cache. Unknown ids are ignored.
  void release_leading(SeqId seq, int num_pages);

  // Drops `seq`'s table, releasing its pages (tail first). Unknown ids are ignored.
  void free(SeqId seq);

  bool has_table(SeqId seq) const { return tables_.count(seq) != 0; }
  // Physical pages of `seq` in logical order (kReleasedPage for released leading entries); empty for
  // an unknown id.
  std::span<const int32_t> block_table(SeqId seq) const;

  // Every page is free xor referenced; refcounts equal the references from block tables, whose
  // released entries form a leading run; the free
  // queue is a consistent list of exactly the unreferenced pages; the key map and page keys agree.
  // INTERNAL naming the first broken invariant.
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
    int num_committed_pages = 0;  // leading pages whose key chain has been computed
    int num_released_pages = 0;   // leading entries set to kReleasedPage by release_leading()
    PageKey last_key;             // key of the last committed page (root key when none)
    uint64_t salt = 0;
  };

  std::span<const int32_t> page_tokens(int32_t page) const;
  bool page_holds(int32_t page, const PageKey& parent, std::span<const int32_t> tokens) const;
  void queue_push_back(int32_t page);
  void queue_push_front(int32_t page);
  void queue_remove(int32_t page);
  int32_t take_free_page();  // pops the head; evicts its key
  void retain(int32_t page);
  void release(int32_t page);

  int page_size_;
  bool prefix_caching_;
  std::vector<Page> pages_;
  std::vector<int32_t> page_tokens_;  // [num_pages][page_size]: tokens of each keyed page
  int32_t free_head_ = kNone;
  int32_t free_tail_ = kNone;
  int num_free_ = 0;
  std::unordered_map<PageKey, int32_t, PageKeyHasher> cached_;
  std::unordered_map<SeqId, Table> tables_;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
  int64_t num_evictions_ = 0;
};

}  // namespace longbow
