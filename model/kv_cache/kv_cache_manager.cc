#include "model/kv_cache/kv_cache_manager.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

namespace longbow {

KvCacheOptions KvCacheOptions::single_group(int pool_size, int page_size, bool enable_prefix_caching) {
  KvCacheOptions options;
  CacheGroup full;
  full.layers = {0};
  options.groups = {full};
  options.pool_sizes = {pool_size};
  options.page_size = page_size;
  options.enable_prefix_caching = enable_prefix_caching;
  return options;
}

StatusOr<std::unique_ptr<KvCacheManager>> KvCacheManager::create(const KvCacheOptions& options) {
  if (options.groups.empty()) return invalid_argument("kv cache: the model declares no cache group");
  if (options.pool_sizes.size() != options.groups.size()) {
    return invalid_argument(fmt::format("kv cache: {} pool sizes for {} cache groups", options.pool_sizes.size(),
                                        options.groups.size()));
  }
  if (options.page_size < 1) return invalid_argument(fmt::format("kv cache: page size {}", options.page_size));
  for (size_t g = 0; g < options.groups.size(); ++g) {
    if (!options.groups[g].is_state && options.pool_sizes[g] < 2) {
      return invalid_argument(fmt::format("kv cache: group {} has a pool of {} pages; it needs its null page and "
                                          "at least one more",
                                          g, options.pool_sizes[g]));
    }
    if (options.groups[g].is_state && options.pool_sizes[g] < 1) {
      return invalid_argument(fmt::format("kv cache: state group {} has {} slots", g, options.pool_sizes[g]));
    }
  }
  return std::unique_ptr<KvCacheManager>(new KvCacheManager(options));
}

KvCacheManager::KvCacheManager(const KvCacheOptions& options)
    : page_size_(options.page_size), prefix_caching_(options.enable_prefix_caching), groups_(options.groups) {
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (groups_[g].is_state) {
      member_.push_back(static_cast<int>(state_.size()));
      state_.emplace_back(options.pool_sizes[g]);
    } else {
      member_.push_back(static_cast<int>(paged_.size()));
      paged_.emplace_back(options.pool_sizes[g], page_size_, groups_[g].window, prefix_caching_);
    }
  }
}

const PageGroup& KvCacheManager::page_group(int group) const {
  return paged_[static_cast<size_t>(member_[static_cast<size_t>(group)])];
}

int KvCacheManager::num_pages() const {
  int total = 0;
  for (const PageGroup& g : paged_) total += g.num_usable();
  return total;
}

int KvCacheManager::num_used() const {
  int total = 0;
  for (const PageGroup& g : paged_) total += g.num_used();
  return total;
}

int KvCacheManager::num_free() const {
  int total = 0;
  for (const PageGroup& g : paged_) total += g.num_free();
  return total;
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats stats;
  stats.prefix_query_tokens = prefix_query_tokens_;
  stats.prefix_hit_tokens = prefix_hit_tokens_;
  for (size_t g = 0; g < groups_.size(); ++g) {
    KvGroupStats group;
    group.is_state = groups_[g].is_state;
    group.window = groups_[g].window;
    if (group.is_state) {
      const StateSlots& slots = state_[static_cast<size_t>(member_[g])];
      group.num_pages = slots.num_slots();
      group.num_used = slots.num_used();
    } else {
      const PageGroup& pages = paged_[static_cast<size_t>(member_[g])];
      group.num_pages = pages.num_usable();
      group.num_used = pages.num_used();
      group.num_cached = pages.num_cached();
      stats.num_pages += group.num_pages;
      stats.num_used += group.num_used;
      stats.num_free += pages.num_free();
      stats.num_cached += group.num_cached;
      stats.num_evictions += pages.num_evictions();
    }
    stats.groups.push_back(group);
  }
  return stats;
}

int64_t KvCacheManager::max_sequence_tokens(int step_tokens) const {
  int64_t limit = std::numeric_limits<int32_t>::max();
  for (const PageGroup& g : paged_) {
    const int64_t usable = g.num_usable();
    if (g.window() > 0 && usable >= window_live_pages_bound(g.window(), step_tokens, page_size_)) continue;
    limit = std::min(limit, usable * page_size_);
  }
  return limit;
}

PrefixMatch KvCacheManager::match_prefix(std::span<const int32_t> tokens, uint64_t salt) const {
  PrefixMatch match;
  match.chain.root = root_page_key(salt);
  if (!prefix_caching_ || tokens.empty() || !state_.empty()) return match;
  // The last token is always computed, so at most (size - 1) tokens come from the cache.
  const int max_pages = static_cast<int>((tokens.size() - 1) / static_cast<size_t>(page_size_));
  match.chain.extend(tokens, static_cast<size_t>(max_pages), static_cast<size_t>(page_size_));
  // Fixed point: each group lowers the candidate to the longest hit it honours at or below it.
  int hit = max_pages;
  for (bool lowered = true; lowered && hit > 0;) {
    lowered = false;
    for (const PageGroup& g : paged_) {
      const int accepted = g.hit_pages(match.chain, tokens, hit);
      if (accepted < hit) {
        hit = accepted;
        lowered = true;
      }
    }
  }
  match.num_pages = hit;
  return match;
}

bool KvCacheManager::can_allocate(const PrefixMatch& match, std::span<const int32_t> tokens, int num_tokens) const {
  for (const PageGroup& g : paged_) {
    if (g.pages_needed(match.chain, tokens, match.num_pages, num_tokens) > g.num_free()) return false;
  }
  for (const StateSlots& s : state_) {
    if (s.num_free() < 1) return false;
  }
  return true;
}

Status KvCacheManager::allocate(SeqId seq, const PrefixMatch& match, std::span<const int32_t> tokens, int num_tokens,
                                int num_query_tokens) {
  if (seqs_.count(seq)) return invalid_argument(fmt::format("kv cache: sequence {} already has pages", seq));
  if (match.num_pages > static_cast<int>(match.chain.keys.size()) ||
      tokens.size() < static_cast<size_t>(match.num_tokens(page_size_))) {
    return invalid_argument(fmt::format("kv cache: the prefix match of sequence {} does not fit its tokens", seq));
  }
  if (!state_.empty() && match.num_pages > 0) {
    return invalid_argument(fmt::format("kv cache: sequence {} has a prefix hit but the model has a state group", seq));
  }
  if (!can_allocate(match, tokens, num_tokens)) {
    return resource_exhausted(fmt::format("kv cache: too few free pages or slots for sequence {} ({} tokens)", seq,
                                          num_tokens));
  }
  for (PageGroup& g : paged_) {
    Status allocated = g.allocate(seq, match.chain, tokens, match.num_pages, num_tokens);
    if (!allocated.ok()) {  // a bad argument (checked first by every group alike): undo
      for (PageGroup& undo : paged_) undo.free(seq);
      return allocated;
    }
  }
  for (StateSlots& s : state_) {
    Status allocated = s.allocate(seq);
    if (!allocated.ok()) {
      for (PageGroup& undo : paged_) undo.free(seq);
      for (StateSlots& undo : state_) undo.free(seq);
      return allocated;
    }
  }
  SeqRecord record;
  record.chain = match.chain;
  seqs_.emplace(seq, std::move(record));
  prefix_query_tokens_ += num_query_tokens;
  prefix_hit_tokens_ += match.num_tokens(page_size_);
  return Status::Ok();
}

bool KvCacheManager::can_grow(SeqId seq, int num_tokens) const {
  for (const PageGroup& g : paged_) {
    if (g.pages_to_grow(seq, num_tokens) > g.num_free()) return false;
  }
  return true;
}

Status KvCacheManager::grow(SeqId seq, int num_tokens) {
  if (!seqs_.count(seq)) return internal_error(fmt::format("kv cache: grow of unknown sequence {}", seq));
  if (!can_grow(seq, num_tokens)) {
    return resource_exhausted(fmt::format("kv cache: too few free pages to grow sequence {} to {} tokens", seq,
                                          num_tokens));
  }
  for (PageGroup& g : paged_) RETURN_IF_ERROR(g.grow(seq, num_tokens));
  return Status::Ok();
}

void KvCacheManager::commit(SeqId seq, std::span<const int32_t> tokens, int num_computed) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const size_t computed = std::min(tokens.size(), static_cast<size_t>(std::max(0, num_computed)));
  if (prefix_caching_) {
    const size_t full_pages = computed / static_cast<size_t>(page_size_);
    PageChain& chain = it->second.chain;
    if (chain.keys.size() < full_pages) chain.extend(tokens, full_pages, static_cast<size_t>(page_size_));
    for (PageGroup& g : paged_) g.commit(seq, chain, tokens, static_cast<int>(full_pages));
  }
  for (PageGroup& g : paged_) g.release_behind(seq, static_cast<int64_t>(computed));
}

void KvCacheManager::free(SeqId seq) {
  if (seqs_.erase(seq) == 0) return;
  for (PageGroup& g : paged_) g.free(seq);
  for (StateSlots& s : state_) s.free(seq);
}

std::vector<std::span<const int32_t>> KvCacheManager::block_tables(SeqId seq) const {
  std::vector<std::span<const int32_t>> tables;
  if (!seqs_.count(seq)) return tables;
  tables.reserve(paged_.size());
  for (const PageGroup& g : paged_) tables.push_back(g.block_table(seq));
  return tables;
}

std::span<const int32_t> KvCacheManager::block_table(SeqId seq, int group) const {
  if (group < 0 || group >= static_cast<int>(groups_.size()) || groups_[static_cast<size_t>(group)].is_state) return {};
  return page_group(group).block_table(seq);
}

int32_t KvCacheManager::state_slot(SeqId seq) const { return state_.empty() ? -1 : state_.front().slot(seq); }

Status KvCacheManager::check_integrity() const {
  for (size_t g = 0; g < groups_.size(); ++g) {
    const Status status = groups_[g].is_state ? state_[static_cast<size_t>(member_[g])].check_integrity()
                                              : paged_[static_cast<size_t>(member_[g])].check_integrity();
    if (!status.ok()) return status.with_context(fmt::format("cache group {}", g));
    for (const auto& [seq, record] : seqs_) {
      const bool held = groups_[g].is_state ? state_[static_cast<size_t>(member_[g])].slot(seq) >= 0
                                            : paged_[static_cast<size_t>(member_[g])].has_table(seq);
      if (!held) {
        return internal_error(fmt::format("kv cache integrity: sequence {} holds nothing in group {}", seq, g));
      }
    }
  }
  return Status::Ok();
}

}  // namespace longbow
