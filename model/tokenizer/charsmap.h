// The precompiled normalization map of a NormalizerSpec (`precompiled_charsmap`).
//
// Blob layout (little-endian): uint32 trie_size, then trie_size bytes of a Darts-clone double-array
// trie (32-bit units) whose keys are UTF-8 source sequences and whose values are byte offsets into
// the rest of the blob, a pool of NUL-terminated replacement strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::spm {

class PrecompiledCharsMap {
 public:
  PrecompiledCharsMap() = default;

  // INVALID_ARGUMENT when the blob's header or sizes are inconsistent. An empty blob is not
  // accepted here (it means "no map": the caller keeps none).
  static StatusOr<PrecompiledCharsMap> parse(std::string_view blob);

  // Longest rule whose source is a prefix of `input`, searched like the library (at most
  // kMaxResults candidate prefixes, shortest first). Returns the source length (0: no rule) and
  // sets *replacement. Out-of-range trie positions or offsets in a damaged map count as no match
  // or are clipped to the pool; they never read outside the blob.
  size_t longest_match(std::string_view input, std::string_view* replacement) const;

 private:
  static constexpr size_t kMaxResults = 32;

  std::vector<uint32_t> units_;
  std::string pool_;
};

}  // namespace longbow::spm
