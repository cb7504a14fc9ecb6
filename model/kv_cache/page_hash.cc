#include "model/kv_cache/page_hash.h"

namespace longbow {
namespace {

// splitmix64's finalizer: a bijective 64-bit mix with full avalanche.
constexpr uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

constexpr uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

// Two lanes absorb the same input with different multipliers, so a collision must hit both.
constexpr uint64_t kLaneMulHi = 0x9e3779b97f4a7c15ull;
constexpr uint64_t kLaneMulLo = 0xc2b2ae3d27d4eb4full;

}  // namespace

PageKey root_page_key(uint64_t salt) {
  return PageKey{mix64(salt ^ 0x6c6f6e67626f7721ull), mix64(salt + 0x243f6a8885a308d3ull)};
}

PageKey chain_page_key(const PageKey& parent, std::span<const int32_t> tokens) {
  uint64_t hi = parent.hi;
  uint64_t lo = parent.lo;
  for (int32_t token : tokens) {
    uint64_t value = static_cast<uint32_t>(token);
    hi = rotl(hi ^ (value * kLaneMulHi), 29) * kLaneMulLo + 0x165667b19e3779f9ull;
    lo = rotl(lo ^ (value * kLaneMulLo), 31) * kLaneMulHi + 0x27d4eb2f165667c5ull;
  }
  uint64_t length = tokens.size();
  return PageKey{mix64(hi ^ length ^ mix64(lo)), mix64(lo ^ rotl(length, 17) ^ mix64(hi + 1))};
}

void PageChain::extend(std::span<const int32_t> tokens, size_t num_pages, size_t page_size) {
  keys.reserve(num_pages);
  for (size_t i = keys.size(); i < num_pages; ++i) {
    keys.push_back(chain_page_key(parent(i), tokens.subspan(i * page_size, page_size)));
  }
}

uint64_t cache_salt_from_string(std::string_view text) {
  if (text.empty()) return 0;
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a finalizer
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  uint64_t salt = mix64(h);
  return salt == 0 ? 1 : salt;
}

}  // namespace longbow
