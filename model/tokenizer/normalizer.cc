#include "model/tokenizer/normalizer.h"

#include "model/tokenizer/utf8.h"

namespace longbow::spm {

StatusOr<Normalizer> Normalizer::create(const NormalizerSpecProto& spec, bool treat_whitespace_as_suffix,
                                        const PieceTrie* user_defined) {
  Normalizer n;
  n.add_dummy_prefix_ = spec.add_dummy_prefix;
  n.remove_extra_whitespaces_ = spec.remove_extra_whitespaces;
  n.escape_whitespaces_ = spec.escape_whitespaces;
  n.treat_whitespace_as_suffix_ = treat_whitespace_as_suffix;
  n.user_defined_ = user_defined;
  if (!spec.precompiled_charsmap.empty()) {
    ASSIGN_OR_RETURN(n.charsmap_, PrecompiledCharsMap::parse(spec.precompiled_charsmap));
  }
  return n;
}

std::pair<std::string_view, size_t> Normalizer::normalize_prefix(std::string_view input) const {
  if (user_defined_ != nullptr) {
    const size_t length = user_defined_->longest_prefix(input);
    if (length > 0) return {input.substr(0, length), length};
  }
  if (charsmap_.has_value()) {
    std::string_view replacement;
    const size_t length = charsmap_->longest_match(input, &replacement);
    if (length > 0) return {replacement, length};
  }
  size_t length = 0;
  if (!is_valid_utf8_prefix(input, &length)) return {kReplacementCharacter, 1};
  return {input.substr(0, length), length};
}

std::string Normalizer::normalize(std::string_view input) const {
  std::string out;
  if (input.empty()) return out;

  if (remove_extra_whitespaces_) {
    while (!input.empty()) {
      const auto [piece, consumed] = normalize_prefix(input);
      if (piece != " ") break;
      input.remove_prefix(consumed);
    }
  }
  if (input.empty()) return out;

  out.reserve(input.size() * 3);
  const std::string_view space = escape_whitespaces_ ? kSpaceSymbol : std::string_view(" ");
  if (!treat_whitespace_as_suffix_ && add_dummy_prefix_) out.append(space);

  bool is_prev_space = remove_extra_whitespaces_;
  while (!input.empty()) {
    auto [piece, consumed] = normalize_prefix(input);
    // Spaces right after a space are dropped (only while remove_extra_whitespaces keeps
    // is_prev_space alive).
    while (is_prev_space && !piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
    if (!piece.empty()) {
      for (const char c : piece) {
        if (escape_whitespaces_ && c == ' ') {
          out.append(kSpaceSymbol);
        } else {
          out.push_back(c);
        }
      }
      is_prev_space = piece.back() == ' ';
    }
    input.remove_prefix(consumed);
    if (!remove_extra_whitespaces_) is_prev_space = false;
  }

  if (remove_extra_whitespaces_) {
    while (out.size() >= space.size() && std::string_view(out).ends_with(space)) {
      out.resize(out.size() - space.size());
    }
  }
  if (treat_whitespace_as_suffix_ && add_dummy_prefix_) out.append(space);
  return out;
}

}  // namespace longbow::spm
