#include "model/kv_cache/page_group.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <string>

#include "model/kv_cache/window_pages.h"

namespace longbow {

PageGroup::PageGroup(int pool_size, int page_size, int window, bool prefix_caching)
    : page_size_(std::max(1, page_size)),
      window_(std::max(0, window)),
      prefix_caching_(prefix_caching),
      pages_(static_cast<size_t>(std::max(1, pool_size))) {
  if (prefix_caching_) page_tokens_.assign(pages_.size() * static_cast<size_t>(page_size_), 0);
  // Pages come out of a fresh pool as 1, 2, 3, ...; page 0 is the null page.
  for (int32_t page = 1; page < static_cast<int32_t>(pages_.size()); ++page) queue_push_back(page);
}

// ---- free queue (intrusive doubly linked list over page ids) -----------------------------------

void PageGroup::queue_push_back(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  p.prev = free_tail_;
  p.next = kNone;
  if (free_tail_ != kNone) pages_[static_cast<size_t>(free_tail_)].next = page;
  else free_head_ = page;
  free_tail_ = page;
  ++num_free_;
}

void PageGroup::queue_push_front(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  p.prev = kNone;
  p.next = free_head_;
  if (free_head_ != kNone) pages_[static_cast<size_t>(free_head_)].prev = page;
  else free_tail_ = page;
  free_head_ = page;
  ++num_free_;
}

void PageGroup::queue_remove(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  if (p.prev != kNone) pages_[static_cast<size_t>(p.prev)].next = p.next;
  else free_head_ = p.next;
  if (p.next != kNone) pages_[static_cast<size_t>(p.next)].prev = p.prev;
  else free_tail_ = p.prev;
  p.prev = p.next = kNone;
  --num_free_;
}

int32_t PageGroup::take_free_page() {
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

void PageGroup::retain(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  if (p.ref_count == 0) queue_remove(page);
  ++p.ref_count;
}

void PageGroup::release(int32_t page) {
  Page& p = pages_[static_cast<size_t>(page)];
  assert(p.ref_count > 0);
  if (--p.ref_count > 0) return;
  if (p.has_key) queue_push_back(page);
  else queue_push_front(page);
}

// ---- prefix cache -----------------------------------------------------------------------------

std::span<const int32_t> PageGroup::page_tokens(int32_t page) const {
  return std::span<const int32_t>(page_tokens_).subspan(static_cast<size_t>(page) * static_cast<size_t>(page_size_),
                                                        static_cast<size_t>(page_size_));
}

int32_t PageGroup::find_cached(const PageChain& chain, std::span<const int32_t> tokens, int i) const {
  auto it = cached_.find(chain.keys[static_cast<size_t>(i)]);
  if (it == cached_.end()) return kNone;
  // The key is 128 bits; the page's own tokens and parent are compared too.
  const Page& p = pages_[static_cast<size_t>(it->second)];
  if (!(p.parent_key == chain.parent(static_cast<size_t>(i)))) return kNone;
  std::span<const int32_t> want =
      tokens.subspan(static_cast<size_t>(i) * static_cast<size_t>(page_size_), static_cast<size_t>(page_size_));
  std::span<const int32_t> stored = page_tokens(it->second);
  return std::equal(stored.begin(), stored.end(), want.begin(), want.end()) ? it->second : kNone;
}

int PageGroup::first_live_page(int hit) const {
  return static_cast<int>(pages_behind_window(int64_t{hit} * page_size_, window_, page_size_));
}

int PageGroup::hit_pages(const PageChain& chain, std::span<const int32_t> tokens, int max_pages) const {
  if (!prefix_caching_) return 0;
  max_pages = std::min(max_pages, static_cast<int>(chain.keys.size()));
  if (window_ == 0) {
    int hit = 0;
    while (hit < max_pages && find_cached(chain, tokens, hit) != kNone) ++hit;
    return hit;
  }
  // Right to left: the largest L whose pages [first_live_page(L), L) are all cached. run[i]: cached
  // pages ending at page i, contiguous.
  std::vector<int> run(static_cast<size_t>(max_pages), 0);
  for (int i = 0; i < max_pages; ++i) {
    if (find_cached(chain, tokens, i) == kNone) continue;
    run[static_cast<size_t>(i)] = (i > 0 ? run[static_cast<size_t>(i - 1)] : 0) + 1;
  }
  for (int hit = max_pages; hit > 0; --hit) {
    if (run[static_cast<size_t>(hit - 1)] >= hit - first_live_page(hit)) return hit;
  }
  return 0;
}

int PageGroup::pages_needed(const PageChain& chain, std::span<const int32_t> tokens, int hit, int num_tokens) const {
  const int total = (num_tokens + page_size_ - 1) / page_size_;
  int needed = std::max(0, total - hit);
  for (int i = first_live_page(hit); i < hit; ++i) {
    const int32_t page = find_cached(chain, tokens, i);
    if (page != kNone && pages_[static_cast<size_t>(page)].ref_count == 0) ++needed;
  }
  return needed;
}

Status PageGroup::allocate(SeqId seq, const PageChain& chain, std::span<const int32_t> tokens, int hit,
                           int num_tokens) {
  if (tables_.count(seq)) return invalid_argument(fmt::format("kv cache: sequence {} already has pages", seq));
  if (num_tokens < hit * page_size_) {
    return invalid_argument(fmt::format("kv cache: allocate {} tokens for sequence {} is less than its cached "
                                        "prefix of {}",
                                        num_tokens, seq, hit * page_size_));
  }
  const int first_live = first_live_page(hit);
  for (int i = first_live; i < hit; ++i) {
    if (find_cached(chain, tokens, i) == kNone) {
      return invalid_argument(fmt::format("kv cache: page {} of sequence {}'s prefix hit is not cached", i, seq));
    }
  }
  const int needed = pages_needed(chain, tokens, hit, num_tokens);
  if (needed > num_free_) {
    return resource_exhausted(
        fmt::format("kv cache: sequence {} needs {} free pages, {} are free", seq, needed, num_free_));
  }
  Table table;
  table.num_committed_pages = hit;
  table.num_released_pages = first_live;
  table.pages.assign(static_cast<size_t>(first_live), kNullPage);
  for (int i = first_live; i < hit; ++i) {
    const int32_t page = find_cached(chain, tokens, i);
    retain(page);
    table.pages.push_back(page);
  }
  const int total = (num_tokens + page_size_ - 1) / page_size_;
  while (static_cast<int>(table.pages.size()) < total) table.pages.push_back(take_free_page());
  tables_.emplace(seq, std::move(table));
  return Status::Ok();
}

int PageGroup::pages_to_grow(SeqId seq, int num_tokens) const {
  auto it = tables_.find(seq);
  const int have = it == tables_.end() ? 0 : static_cast<int>(it->second.pages.size());
  return std::max(0, (num_tokens + page_size_ - 1) / page_size_ - have);
}

Status PageGroup::grow(SeqId seq, int num_tokens) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return internal_error(fmt::format("kv cache: grow of unknown sequence {}", seq));
  const int needed = pages_to_grow(seq, num_tokens);
  if (needed > num_free_) {
    return resource_exhausted(
        fmt::format("kv cache: sequence {} needs {} more pages, {} are free", seq, needed, num_free_));
  }
  for (int i = 0; i < needed; ++i) it->second.pages.push_back(take_free_page());
  return Status::Ok();
}

void PageGroup::commit(SeqId seq, const PageChain& chain, std::span<const int32_t> tokens, int num_full_pages) {
  if (!prefix_caching_) return;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  Table& table = it->second;
  const int end = std::min({num_full_pages, static_cast<int>(table.pages.size()), static_cast<int>(chain.keys.size())});
  for (int i = table.num_committed_pages; i < end; ++i) {
    const int32_t page = table.pages[static_cast<size_t>(i)];
    const PageKey& key = chain.keys[static_cast<size_t>(i)];
    // A released entry's page is gone. A page computed twice (two sequences prefilled the same
    // prefix in one step) stays private to its sequence; the first copy is the cached one.
    if (page != kNullPage && !pages_[static_cast<size_t>(page)].has_key && cached_.find(key) == cached_.end()) {
      Page& p = pages_[static_cast<size_t>(page)];
      p.has_key = true;
      p.key = key;
      p.parent_key = chain.parent(static_cast<size_t>(i));
      std::span<const int32_t> chunk =
          tokens.subspan(static_cast<size_t>(i) * static_cast<size_t>(page_size_), static_cast<size_t>(page_size_));
      std::copy(chunk.begin(), chunk.end(), page_tokens_.begin() + static_cast<ptrdiff_t>(page) * page_size_);
      cached_.emplace(key, page);
    }
    table.num_committed_pages = i + 1;
  }
}

void PageGroup::release_behind(SeqId seq, int64_t first_query_pos) {
  if (window_ == 0) return;
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  Table& table = it->second;
  const int end = static_cast<int>(std::min<int64_t>(pages_behind_window(first_query_pos, window_, page_size_),
                                                     static_cast<int64_t>(table.pages.size())));
  // Tail first, as free(): the shorter prefixes stay cached longest.
  for (int i = end - 1; i >= table.num_released_pages; --i) {
    release(table.pages[static_cast<size_t>(i)]);
    table.pages[static_cast<size_t>(i)] = kNullPage;
  }
  table.num_released_pages = std::max(table.num_released_pages, end);
}

void PageGroup::free(SeqId seq) {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return;
  const std::vector<int32_t>& pages = it->second.pages;
  for (auto page = pages.rbegin(); page != pages.rend(); ++page) {
    if (*page != kNullPage) release(*page);
  }
  tables_.erase(it);
}

std::span<const int32_t> PageGroup::block_table(SeqId seq) const {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return {};
  return it->second.pages;
}

int PageGroup::live_pages(SeqId seq) const {
  auto it = tables_.find(seq);
  if (it == tables_.end()) return 0;
  return static_cast<int>(it->second.pages.size()) - it->second.num_released_pages;
}

Status PageGroup::check_integrity() const {
  const std::string group = fmt::format("kv cache integrity (group of window {}): ", window_);
  auto fail = [&group](const std::string& what) { return internal_error(group + what); };
  std::vector<int32_t> refs(pages_.size(), 0);
  for (const auto& [seq, table] : tables_) {
    const int size = static_cast<int>(table.pages.size());
    if (table.num_committed_pages > size) {
      return fail(fmt::format("sequence {} committed more pages than it holds", seq));
    }
    if (table.num_released_pages > size) return fail(fmt::format("sequence {} released more pages than it holds", seq));
    if (window_ == 0 && table.num_released_pages > 0) {
      return fail(fmt::format("sequence {} has released entries in a full group", seq));
    }
    for (int i = 0; i < size; ++i) {
      const int32_t page = table.pages[static_cast<size_t>(i)];
      const bool released = i < table.num_released_pages;
      if (released != (page == kNullPage)) {
        return fail(fmt::format("sequence {} entry {} is {} but its released run has {} entries", seq, i, page,
                                table.num_released_pages));
      }
      if (released) continue;
      if (page < 1 || page >= pool_size()) {
        return fail(fmt::format("sequence {} holds page {} out of range", seq, page));
      }
      ++refs[static_cast<size_t>(page)];
    }
  }
  // Walk the free queue both ways.
  std::vector<bool> in_queue(pages_.size(), false);
  int count = 0;
  int32_t prev = kNone;
  for (int32_t page = free_head_; page != kNone; page = pages_[static_cast<size_t>(page)].next) {
    if (page < 1 || page >= pool_size() || in_queue[static_cast<size_t>(page)] || count > pool_size()) {
      return fail(fmt::format("free queue is not a list of distinct usable pages (at page {})", page));
    }
    if (pages_[static_cast<size_t>(page)].prev != prev) {
      return fail(fmt::format("free queue back link of page {} is broken", page));
    }
    in_queue[static_cast<size_t>(page)] = true;
    prev = page;
    ++count;
  }
  if (prev != free_tail_) return fail("free queue tail is not its last page");
  if (count != num_free_) return fail(fmt::format("free queue holds {} pages, counter says {}", count, num_free_));
  const Page& null_page = pages_[kNullPage];
  if (null_page.ref_count != 0 || null_page.has_key) return fail("the null page is referenced or keyed");
  int keyed = 0;
  for (size_t i = 1; i < pages_.size(); ++i) {
    const Page& p = pages_[i];
    if (p.ref_count != refs[i]) {
      return fail(fmt::format("page {} has refcount {} but {} references", i, p.ref_count, refs[i]));
    }
    if ((p.ref_count == 0) != in_queue[i]) {
      return fail(
          fmt::format("page {} {}", i, in_queue[i] ? "is referenced and free" : "is neither referenced nor free"));
    }
    if (p.has_key) {
      ++keyed;
      auto it = cached_.find(p.key);
      if (it == cached_.end() || it->second != static_cast<int32_t>(i)) {
        return fail(fmt::format("page {} has a key the map lacks", i));
      }
      if (!(chain_page_key(p.parent_key, page_tokens(static_cast<int32_t>(i))) == p.key)) {
        return fail(fmt::format("page {}'s key does not match its tokens", i));
      }
    }
  }
  if (keyed != static_cast<int>(cached_.size())) {
    return fail(fmt::format("key map holds {} entries for {} keyed pages", cached_.size(), keyed));
  }
  return Status::Ok();
}

}  // namespace longbow
