// PageAllocator: a host-side free list of KV-cache pages. No device code; not thread-safe (the
// engine thread owns it). The engine's KV manager adds refcounts and prefix caching on top.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace longbow {

class PageAllocator {
 public:
  explicit PageAllocator(int num_pages);

  int num_pages() const { return num_pages_; }
  int num_free() const { return static_cast<int>(free_pages_.size()); }
  bool can_allocate(int count) const { return count <= num_free(); }

  // `count` distinct free pages, or nullopt (and no change) when fewer are free.
  std::optional<std::vector<int32_t>> allocate(int count);
  // Returns pages to the free list. Each must be currently allocated (asserted).
  void free(const std::vector<int32_t>& pages);

 private:
  int num_pages_;
  std::vector<int32_t> free_pages_;  // a stack: the most recently freed page is reused first
  std::vector<bool> allocated_;
};

// Pages needed to hold `num_tokens` tokens.
constexpr int pages_for_tokens(int64_t num_tokens, int page_size) {
  return static_cast<int>((num_tokens + page_size - 1) / page_size);
}

}  // namespace longbow
