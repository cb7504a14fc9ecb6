#include "model/kv_cache/kv_cache_manager.h"

#include <algorithm>
#include <cassert>

namespace longbow {

KvCacheManager::KvCacheManager(const KvCacheOptions& options)
    : page_size_(std::max(1, options.page_size)),
      prefix_caching_(options.enable_prefix_caching),
      pages_(static_cast<size_t>(std::max(0, options.num_pages))) {
  if (prefix_caching_) page_tokens_.assign(pages_.size() * static_cast<size_t>(page_size_), 0);
  // Pages come out of a fresh pool as 0, 1, 2, ...
  for (int32_t page = 0; page < num_pages(); ++page) queue_push_back(page);
}

KvCacheStats KvCacheManager::stats() const {
  KvCacheStats stats;
  stats.num_pages = num_pages();
  stats.num_used = num_used();
  stats.num_free = num_free_;
  stats.num_cached = static_cast<int>(cached_.size());
  stats.prefix_query_tokens = prefix_query_tokens_;
  stats.prefix_hit_tokens = prefix_hit_tokens_;
  stats.num_evictions = num_evictions_;
  return stats;
}

// ---- free queue (intrusive doubly linked list over page ids) -----------------------------------

void KvCacheManager::queue_push_back(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  p.prev = free_tail_;
  p.next = kNone;
  if (free_tail_ != kNone) pages_[static_cast<size_t>(free_tail_)].next = page;
  else free_head_ = page;
  free_tail_ = page;
  ++num_free_;
}

void KvCacheManager::queue_push_front(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  p.prev = kNone;
  p.next = free_head_;
  if (free_head_ != kNone) pages_[static_cast<size_t>(free_head_)].prev = page;
  else free_tail_ = page;
  free_head_ = page;
  ++num_free_;
}

void KvCacheManager::queue_remove(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  if (p.prev != kNone) pages_[static_cast<size_t>(p.prev)].next = p.next;
  else free_head_ = p.next;
  if (p.next != kNone) pages_[static_cast<size_t>(p.next)].prev = p.prev;
  else free_tail_ = p.prev;
  p.prev = p.next = kNone;
  --num_free_;
}

int32_t KvCacheManager::take_free_page() {
  int32_t page = free_head_;
  assert(page != kNone);
  queue_remove(page);
  Page& p = pages_[static_cast<size_t>(page)];
  if (p.has_key) {
    cached_.erase(p.key);
    p.has_key = false;
    ++num_evictions_;
  }
  p.ref_count = 1;
  return page;
}

void KvCacheManager::retain(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  if (p.ref_count == 0) queue_remove(page);
  ++p.ref_count;
}

void KvCacheManager::release(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  assert(p.ref_count > 0);
  if (--p.ref_count > 0) return;
  if (p.has_key) queue_push_back(page);
  else queue_push_front(page);
}

// ---- prefix cache -----------------------------------------------------------------------------

std::span<const int32_t> KvCacheManager::page_tokens(int32_t page) const {
  return std::span<const int32_t>(page_tokens_).subspan(static_cast<size_t>(page) * static_cast<size_t>(page_size_),
                                                        static_cast<size_t>(page_size_));
}

bool KvCacheManager::page_holds(int32_t page, const PageKey& parent, std::span<const int32_t> tokens) const {
  const Page& p = pages_[static_cast<size_t>(page)];
  if (!p.has_key || !(p.parent_key == parent)) return false;
  std::span<const int32_t> stored = page_tokens(page);
  return std::equal(stored.begin(), stored.end(), tokens.begin(), tokens.end());
}

PrefixMatch KvCacheManager::match_prefix(std::span<const int32_t> tokens, uint64_t salt) const {
  PrefixMatch match;
  match.salt = salt;
  match.last_key = root_page_key(salt);
  if (!prefix_caching_ || tokens.empty()) return match;
  // The last token is always computed, so at most (size - 1) tokens come from the cache.
  size_t max_pages = (tokens.size() - 1) / static_cast<size_t>(page_size_);
  for (size_t i = 0; i < max_pages; ++i) {
    std::span<const int32_t> chunk = tokens.subspan(i * static_cast<size_t>(page_size_), static_cast<size_t>(page_size_));
    PageKey key = chain_page_key(match.last_key, chunk);
    auto it = cached_.find(key);
    if (it == cached_.end() || !page_holds(it->second, match.last_key, chunk)) break;
    match.pages.push_back(it->second);
    match.last_key = key;
  }
  return match;
}

int KvCacheManager::pages_needed(const PrefixMatch& match, int num_tokens) const {
  int total = (num_tokens + page_size_ - 1) / page_size_;
  int fresh = std::max(0, total - static_cast<int>(match.pages.size()));
  int revived = 0;
  for (int32_t page : match.pages) {
    if (pages_[static_cast<size_t>(page)].ref_count == 0) ++revived;
  }
  return fresh + revived;
}

Status KvCacheManager::allocate(SeqId seq, const PrefixMatch& match, int num_tokens, int num_query_tokens) {
  if (tables_.count(seq)) return invalid_argument("kv cache: sequence " + std::to_string(seq) + " already has pages");
  if (num_tokens < match.num_tokens(page_size_)) {
    return invalid_argument("kv cache: allocate " + std::to_string(num_tokens) + " tokens for sequence " +
                            std::to_string(seq) + " is less than its cached prefix of " +
                            std::to_string(match.num_tokens(page_size_)));
  }
  int needed = pages_needed(match, num_tokens);
  if (needed > num_free_) {
    return resource_exhausted("kv cache: sequence " + std::to_string(seq) + " needs " + std::to_string(needed) +
                              " free pages, " + std::to_string(num_free_) + " are free");
  }
  Table table;
  table.salt = match.salt;
  table.last_key = match.last_key;
  table.num_committed_pages = static_cast<int>(match.pages.size());
  for (int32_t page : match.pages) {
    retain(page);
    table.pages.push_back(page);
  }
  int total = (num_tokens + page_size_ - 1) / page_size_;
  while (static_cast<int>(table.pages.size()) < total) table.pages.push_back(take_free_page());
  prefix_query_tokens_ += num_query_tokens;
  prefix_hit_tokens_ += match.num_tokens(page_size_);
  tables_.emplace(seq, std::move(table));
  return Status::Ok();
}

int KvCacheManager::pages_to_grow(SeqId seq, int num_tokens) const {
  auto it = tables_.find(seq);
  int have = it == tables_.end() ? 0 : static_cast<int>(it->second.pages.size());
  return std::max(0, (num_tokens + page_size_ - 1) / page_size_ - have);
}

Status KvCacheManager::grow(SeqId seq, int num_tokens) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return internal_error("kv cache: grow of unknown sequence " + std::to_string(seq));
  int needed = pages_to_grow(seq, num_tokens);
  if (needed > num_free_) {
    return resource_exhausted("kv cache: sequence " + std::to_string(seq) + " needs " + std::to_string(needed) +
                              " more pages, " + std::to_string(num_free_) + " are free");
  }
  for (int i = 0; i < needed; ++i) it->second.pages.push_back(take_free_page());
  return Status::Ok();
}

void KvCacheManager::commit(SeqId seq, std::span<const int32_t> tokens, int num_computed) {
  if (!prefix_caching_) return;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  Table& table = it->second;
  size_t computed = std::min(tokens.size(), static_cast<size_t>(std::max(0, num_computed)));
  int full_pages = std::min(static_cast<int>(computed / static_cast<size_t>(page_size_)),
                            static_cast<int>(table.pages.size()));
  for (int i = table.num_committed_pages; i < full_pages; ++i) {
    std::span<const int32_t> chunk =
        tokens.subspan(static_cast<size_t>(i) * static_cast<size_t>(page_size_), static_cast<size_t>(page_size_));
    PageKey key = chain_page_key(table.last_key, chunk);
    int32_t page = table.pages[static_cast<size_t>(i)];
    // A released page (released before its commit) is gone; the key chain still advances over its
    // tokens so that the later pages get their right keys.
    Page* p = page == kReleasedPage ? nullptr : &pages_[static_cast<size_t>(page)];
    // A page computed twice (two sequences prefilled the same prefix in one step) stays private to
    // its sequence; the first copy is the cached one.
    if (p != nullptr && !p->has_key && cached_.find(key) == cached_.end()) {
      p->has_key = true;
      p->key = key;
      p->parent_key = table.last_key;
      std::copy(chunk.begin(), chunk.end(),
                page_tokens_.begin() + static_cast<ptrdiff_t>(page) * page_size_);
      cached_.emplace(key, page);
    }
    table.last_key = key;
    table.num_committed_pages = i + 1;
  }
}

void KvCacheManager::release_leading(SeqId seq, int num_pages) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  Table& table = it->second;
  const int end = std::min(num_pages, static_cast<int>(table.pages.size()));
  // Tail first, as free(): the shorter prefixes stay cached longest.
  for (int i = end - 1; i >= table.num_released_pages; --i) {
    release(table.pages[static_cast<size_t>(i)]);
    table.pages[static_cast<size_t>(i)] = kReleasedPage;
  }
  table.num_released_pages = std::max(table.num_released_pages, end);
}

void KvCacheManager::free(SeqId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  const std::vector<int32_t>& pages = it->second.pages;
  for (auto page = pages.rbegin(); page != pages.rend(); ++page) {
    if (*page != kReleasedPage) release(*page);
  }
  tables_.erase(it);
}

std::span<const int32_t> KvCacheManager::block_table(SeqId seq) const {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return {};
  return it->second.pages;
}

Status KvCacheManager::check_integrity() const {
  auto fail = [](const std::string& what) { return internal_error("kv cache integrity: " + what); };
  std::vector<int32_t> refs(pages_.size(), 0);
  for (const auto& [seq, table] : tables_) {
    if (table.num_committed_pages > static_cast<int>(table.pages.size())) {
      return fail("sequence " + std::to_string(seq) + " committed more pages than it holds");
    }
    if (table.num_released_pages > static_cast<int>(table.pages.size())) {
      return fail("sequence " + std::to_string(seq) + " released more pages than it holds");
    }
    for (size_t i = 0; i < table.pages.size(); ++i) {
      const int32_t page = table.pages[i];
      const bool released = static_cast<int>(i) < table.num_released_pages;
      if (released != (page == kReleasedPage)) {
        return fail("sequence " + std::to_string(seq) + " entry " + std::to_string(i) + " is " +
                    std::to_string(page) + " but its released run has " +
                    std::to_string(table.num_released_pages) + " entries");
      }
      if (released) continue;
      if (page < 0 || page >= num_pages()) {
        return fail("sequence " + std::to_string(seq) + " holds page " + std::to_string(page) + " out of range");
      }
      ++refs[static_cast<size_t>(page)];
    }
  }
  // Walk the free queue both ways.
  std::vector<bool> in_queue(pages_.size(), false);
  int count = 0;
  int32_t prev = kNone;
  for (int32_t page = free_head_; page != kNone; page = pages_[static_cast<size_t>(page)].next) {
    if (page < 0 || page >= num_pages() || in_queue[static_cast<size_t>(page)] || count > num_pages()) {
      return fail("free queue is not a list of distinct pages (at page " + std::to_string(page) + ")");
    }
    if (pages_[static_cast<size_t>(page)].prev != prev) {
      return fail("free queue back link of page " + std::to_string(page) + " is broken");
    }
    in_queue[static_cast<size_t>(page)] = true;
    prev = page;
    ++count;
  }
  if (prev != free_tail_) return fail("free queue tail is not its last page");
  if (count != num_free_) {
    return fail("free queue holds " + std::to_string(count) + " pages, counter says " + std::to_string(num_free_));
  }
  int keyed = 0;
  for (size_t i = 0; i < pages_.size(); ++i) {
    const Page& p = pages_[i];
    std::string name = "page " + std::to_string(i);
    if (p.ref_count != refs[i]) {
      return fail(name + " has refcount " + std::to_string(p.ref_count) + " but " + std::to_string(refs[i]) +
                  " references");
    }
    if ((p.ref_count == 0) != in_queue[i]) {
      return fail(name + (in_queue[i] ? " is referenced and free" : " is neither referenced nor free"));
    }
    if (p.has_key) {
      ++keyed;
      auto it = cached_.find(p.key);
      if (it == cached_.end() || it->second != static_cast<int32_t>(i)) return fail(name + " has a key the map lacks");
      if (!(chain_page_key(p.parent_key, page_tokens(static_cast<int32_t>(i))) == p.key)) {
        return fail(name + "'s key does not match its tokens");
      }
    }
  }
  if (keyed != static_cast<int>(cached_.size())) {
    return fail("key map holds " + std::to_string(cached_.size()) + " entries for " + std::to_string(keyed) +
                " keyed pages");
  }
  return Status::Ok();
}

}  // namespace longbow
