// PageKey: the identity of a full KV page in the prefix cache.
//
// A page's key chains the key of the page before it with the page's tokens, so equal keys mean
// equal prefixes (up to a 128-bit collision; the cache also compares each page's own tokens).
// The first page's parent is root_page_key(salt): requests with different salts never share pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace longbow {

struct PageKey {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const PageKey&, const PageKey&) = default;
};

struct PageKeyHasher {
  size_t operator()(const PageKey& key) const { return static_cast<size_t>(key.lo ^ (key.hi * 0x9e3779b97f4a7c15ull)); }
};

// The parent key of a sequence's first page. salt 0 is the shared, unsalted namespace.
PageKey root_page_key(uint64_t salt);

// Key of a full page holding `tokens` (exactly page_size of them) after the page keyed `parent`.
PageKey chain_page_key(const PageKey& parent, std::span<const int32_t> tokens);

// The keys of a sequence's full pages, computed once per sequence (by the KV manager) and shared by
// all its page groups: keys[i] is the key of page i (tokens [i·P, i·P + P)).
struct PageChain {
  PageKey root;                // root_page_key(salt): the parent of page 0
  std::vector<PageKey> keys;   // a prefix of the sequence's full pages

  const PageKey& parent(size_t page) const { return page == 0 ? root : keys[page - 1]; }
  // Appends the keys of full pages [keys.size(), num_pages) of `tokens` (which must hold
  // num_pages · page_size tokens at least).
  void extend(std::span<const int32_t> tokens, size_t num_pages, size_t page_size);
};

// 64-bit salt for a per-tenant cache_salt string; "" gives 0 (shared).
uint64_t cache_salt_from_string(std::string_view text);

}  // namespace longbow
