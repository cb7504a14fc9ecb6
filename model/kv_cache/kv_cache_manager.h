// KvCacheManager: the host-side KV cache of the engine, one coordinator over the model's cache
// groups (DESIGN §5; vLLM's KV cache coordinator over per-group managers).
//
// The runtime declares its groups (Transformer::cache_groups(), cache_spec.h). For each paged group
// the manager keeps a PageGroup (page_group.h: its own pool with a null page 0, refcounts, prefix
// cache, LRU and one block table per sequence; a window group releases the pages behind its window
// itself), and for each state group a StateSlots pool (state_slots.h: one slot per running
// sequence). A sequence holds pages in every paged group and a slot in every state group, from
// allocate() to free(); every call below acts on all groups at once, and the check/act pairs hold
// across groups (allocate() and grow() change nothing unless every group can serve them).
//
// Prefix cache: the keys of a sequence's full pages are computed once (PageChain, by match_prefix()
// and commit()) and shared by the groups. A prefix hit is the longest length every group accepts,
// found as a fixed point: starting from the longest candidate, each group in turn lowers it to the
// longest hit it can honour at or below it (full: cached pages from the left; window: the pages of
// the last W tokens; state: none), until no group lowers it.
//
// No device code. Not thread-safe: the engine thread owns it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/cache_spec.h"
#include "model/kv_cache/page_group.h"
#include "model/kv_cache/page_hash.h"
#include "model/kv_cache/state_slots.h"
#include "model/kv_cache/window_pages.h"

namespace longbow {

struct KvCacheOptions {
  // The runtime's cache groups and, per group, its pool size (paged: pages with the null page;
  // state: slots), e.g. Transformer::num_pages(g).
  std::vector<CacheGroup> groups;
  std::vector<int> pool_sizes;
  int page_size = 64;
  bool enable_prefix_caching = true;

  // One full-attention group of `pool_size` pages (null page included): a model without windows.
  static KvCacheOptions single_group(int pool_size, int page_size = 64, bool enable_prefix_caching = true);
};

// The cached leading pages of a token sequence, as found by match_prefix(). Valid until the next
// mutating call.
struct PrefixMatch {
  PageChain chain;    // keys of the full pages a hit may cover (never the page of the last token)
  int num_pages = 0;  // pages every group accepts
  int num_tokens(int page_size) const { return num_pages * page_size; }
};

struct KvGroupStats {
  bool is_state = false;
  int window = 0;
  int num_pages = 0;   // paged: usable pages (the null page not counted); state: slots
  int num_used = 0;    // refcount > 0 / slots held
  int num_cached = 0;  // pages holding a key (in use or free)
};

struct KvCacheStats {
  // Totals over the paged groups.
  int num_pages = 0;
  int num_used = 0;
  int num_free = 0;    // refcount 0 (includes cached pages, which are evictable)
  int num_cached = 0;
  int64_t prefix_query_tokens = 0;  // prompt tokens looked up at allocate()
  int64_t prefix_hit_tokens = 0;    // of those, tokens served from the cache
  int64_t num_evictions = 0;        // cached pages whose key was dropped to reuse the page
  std::vector<KvGroupStats> groups;  // in cache-group order
};

class KvCacheManager {
 public:
  // INVALID_ARGUMENT when the pool sizes do not match the groups, or a paged pool holds no page
  // besides its null page.
  static StatusOr<std::unique_ptr<KvCacheManager>> create(const KvCacheOptions& options);

  int page_size() const { return page_size_; }
  bool prefix_caching() const { return prefix_caching_; }
  const std::vector<CacheGroup>& groups() const { return groups_; }
  int num_paged_groups() const { return static_cast<int>(paged_.size()); }
  // The paged group of cache group `group` (which must be paged).
  const PageGroup& page_group(int group) const;
  // Usable pages over all paged groups, and those referenced / free.
  int num_pages() const;
  int num_used() const;
  int num_free() const;
  KvCacheStats stats() const;

  // The longest sequence one request may reach when it runs alone with steps of at most
  // `step_tokens` tokens: every full group must hold all its pages, a window group its window's
  // (window_live_pages_bound).
  int64_t max_sequence_tokens(int step_tokens) const;

  // The longest prefix of `tokens` every group can serve from the cache, never covering the last
  // token (its logits must be computed). Empty when prefix caching is off or the model has a state
  // group.
  PrefixMatch match_prefix(std::span<const int32_t> tokens, uint64_t salt) const;

  // Whether allocate(seq, match, tokens, num_tokens) fits: every paged group has the free pages
  // (fresh ones beyond the hit, plus hit pages in the free queue) and every state group a free slot.
  bool can_allocate(const PrefixMatch& match, std::span<const int32_t> tokens, int num_tokens) const;
  // Creates `seq`'s tables (hit pages shared, fresh pages up to `num_tokens` tokens, kNullPage behind
  // a window group's window) and its state slots. `tokens` is the sequence's token list (at least
  // the hit's tokens); `num_query_tokens` is counted for the hit rate. RESOURCE_EXHAUSTED (no change)
  // when some group is short; INVALID_ARGUMENT if `seq` already has tables.
  Status allocate(SeqId seq, const PrefixMatch& match, std::span<const int32_t> tokens, int num_tokens,
                  int num_query_tokens);

  // Whether every paged group can grow `seq`'s table to cover `num_tokens` tokens.
  bool can_grow(SeqId seq, int num_tokens) const;
  // Appends fresh pages in every paged group. RESOURCE_EXHAUSTED (no change) when some group is short.
  Status grow(SeqId seq, int num_tokens);

  // Records that K/V of tokens[0, num_computed) of `seq` is written: its full pages enter every
  // group's prefix cache (their keys computed once, here), then every window group releases the
  // pages no query at a position >= num_computed reads (the next step's queries start there).
  // `tokens` is the sequence's whole token list (prompt, then outputs).
  void commit(SeqId seq, std::span<const int32_t> tokens, int num_computed);

  // Drops `seq`'s tables and slots, releasing its pages (tail first). Unknown ids are ignored.
  void free(SeqId seq);

  bool has_table(SeqId seq) const { return seqs_.count(seq) != 0; }
  // One block table per paged group, in cache-group order (SequenceStep::block_tables); empty for
  // an unknown id.
  std::vector<std::span<const int32_t>> block_tables(SeqId seq) const;
  // `seq`'s table in cache group `group` (paged).
  std::span<const int32_t> block_table(SeqId seq, int group) const;
  // `seq`'s slot in the first state group, or -1 (none, or no state group).
  int32_t state_slot(SeqId seq) const;

  // Every group's invariants (PageGroup/StateSlots::check_integrity) and that every sequence has a
  // table or slot in every group. INTERNAL naming the group and the first broken invariant.
  Status check_integrity() const;

 private:
  struct SeqRecord {
    PageChain chain;  // keys of its full pages committed so far (and of the hit it started from)
  };

  KvCacheManager(const KvCacheOptions& options);

  int page_size_;
  bool prefix_caching_;
  std::vector<CacheGroup> groups_;
  std::vector<int> member_;  // per cache group: its index in paged_ or in state_
  std::vector<PageGroup> paged_;
  std::vector<StateSlots> state_;
  std::unordered_map<SeqId, SeqRecord> seqs_;
  int64_t prefix_query_tokens_ = 0;
  int64_t prefix_hit_tokens_ = 0;
};

}  // namespace longbow
