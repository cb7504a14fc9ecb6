#include "model/kv_cache/page_allocator.h"

#include <cassert>

namespace longbow {

PageAllocator::PageAllocator(int num_pages) : num_pages_(num_pages), allocated_(static_cast<size_t>(num_pages)) {
  free_pages_.reserve(static_cast<size_t>(num_pages));
  // Highest id at the bottom of the stack so that pages come out as 0, 1, 2, ...
  for (int32_t page = num_pages - 1; page >= 0; --page) free_pages_.push_back(page);
}

std::optional<std::vector<int32_t>> PageAllocator::allocate(int count) {
  if (count < 0 || !can_allocate(count)) return std::nullopt;
  std::vector<int32_t> pages(free_pages_.end() - count, free_pages_.end());
  free_pages_.resize(free_pages_.size() - static_cast<size_t>(count));
  // Hand out in ascending order of how they sat on the stack (top first).
  std::vector<int32_t> ordered(pages.rbegin(), pages.rend());
  for (int32_t page : ordered) allocated_[static_cast<size_t>(page)] = true;
  return ordered;
}

void PageAllocator::free(const std::vector<int32_t>& pages) {
  for (int32_t page : pages) {
    assert(page >= 0 && page < num_pages_ && allocated_[static_cast<size_t>(page)]);
    allocated_[static_cast<size_t>(page)] = false;
    free_pages_.push_back(page);
  }
}

}  // namespace longbow
