// sentencepiece's Normalizer: turns raw text into the string the segmenters see.
//
// Per position, the longest matching user-defined symbol is copied verbatim; otherwise the longest
// precompiled-charsmap rule applies; otherwise one UTF-8 character is copied (a malformed byte
// becomes U+FFFD). Then the whitespace rules: leading/trailing/repeated spaces dropped
// (remove_extra_whitespaces), a space marker prepended (add_dummy_prefix; appended instead with
// treat_whitespace_as_suffix), spaces written as U+2581 (escape_whitespaces).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.h"
#include "model/tokenizer/charsmap.h"
#include "model/tokenizer/model_proto.h"
#include "model/tokenizer/piece_trie.h"

namespace longbow::spm {

class Normalizer {
 public:
  Normalizer() = default;

  // `user_defined` (may be null; must outlive the normalizer) holds the symbols matched before
  // normalization. INVALID_ARGUMENT when the charsmap is damaged.
  static StatusOr<Normalizer> create(const NormalizerSpecProto& spec, bool treat_whitespace_as_suffix,
                                     const PieceTrie* user_defined);

  std::string normalize(std::string_view input) const;

 private:
  // The normalized form of the first unit of non-empty `input` and the input bytes it consumes
  // (>= 1). The view points into `input`, the charsmap, or a static string.
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view input) const;

  bool add_dummy_prefix_ = true;
  bool remove_extra_whitespaces_ = true;
  bool escape_whitespaces_ = true;
  bool treat_whitespace_as_suffix_ = false;
  std::optional<PrecompiledCharsMap> charsmap_;
  const PieceTrie* user_defined_ = nullptr;
};

}  // namespace longbow::spm
