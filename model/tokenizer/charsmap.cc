#include "model/tokenizer/charsmap.h"

#include <cstring>

namespace longbow::spm {
namespace {

// Darts-clone's DoubleArrayUnit bit fields.
bool unit_has_leaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t unit_value(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t unit_label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
uint32_t unit_offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

uint32_t read_le32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

}  // namespace

StatusOr<PrecompiledCharsMap> PrecompiledCharsMap::parse(std::string_view blob) {
  if (blob.size() <= 4) {
    return invalid_argument("precompiled_charsmap: blob of " + std::to_string(blob.size()) +
                            " bytes is too short for its header");
  }
  const uint32_t trie_size = read_le32(blob.data());
  blob.remove_prefix(4);
  // The trie must fit behind its 4-byte header (sentencepiece checks only trie_size < the whole blob,
  // and would read past the end for the last 4 sizes).
  if (trie_size > blob.size()) {
    return invalid_argument("precompiled_charsmap: trie size " + std::to_string(trie_size) +
                            " exceeds the " + std::to_string(blob.size()) + " bytes after its header");
  }
  PrecompiledCharsMap map;
  // Like the library, a trailing partial unit is ignored.
  map.units_.resize(trie_size / 4);
  for (size_t i = 0; i < map.units_.size(); ++i) map.units_[i] = read_le32(blob.data() + 4 * i);
  map.pool_.assign(blob.substr(trie_size));
  return map;
}

size_t PrecompiledCharsMap::longest_match(std::string_view input, std::string_view* replacement) const {
  if (units_.empty()) return 0;
  size_t longest_length = 0;
  uint32_t longest_value = 0;
  size_t num_results = 0;
  size_t node = unit_offset(units_[0]);
  for (size_t i = 0; i < input.size(); ++i) {
    const auto label = static_cast<uint8_t>(input[i]);
    node ^= label;
    if (node >= units_.size()) break;
    const uint32_t unit = units_[node];
    if (unit_label(unit) != label) break;
    node ^= unit_offset(unit);
    if (unit_has_leaf(unit)) {
      if (node >= units_.size()) break;
      if (num_results < kMaxResults && i + 1 > longest_length) {
        longest_length = i + 1;
        longest_value = unit_value(units_[node]);
      }
      ++num_results;
    }
  }
  if (longest_length == 0) return 0;
  if (longest_value >= pool_.size()) {
    *replacement = std::string_view();
  } else {
    const char* start = pool_.data() + longest_value;
    *replacement = std::string_view(start, strnlen(start, pool_.size() - longest_value));
  }
  return longest_length;
}

}  // namespace longbow::spm
