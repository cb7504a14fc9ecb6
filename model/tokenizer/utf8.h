// UTF-8 helpers with sentencepiece's exact rules (string_util in the library), which differ from a
// strict decoder in two places that matter for byte-identical output: OneCharLen looks only at the
// lead byte, and an invalid sequence always counts as one byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace longbow::spm {

inline constexpr char32_t kUnicodeError = 0xFFFD;
inline constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD
inline constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";           // U+2581 "▁"

// Length of the UTF-8 sequence announced by `lead` (1 for continuation and invalid bytes).
inline int one_char_len(char lead) {
  constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[static_cast<uint8_t>(lead) >> 4];
}

// Decodes the first code point of non-empty `s`. On a malformed, overlong, surrogate or
// out-of-range sequence returns kUnicodeError with *length = 1.
char32_t decode_utf8(std::string_view s, size_t* length);

// True when `s` (non-empty) starts with a well-formed character; a literal U+FFFD counts as
// well-formed. *length is the bytes that character (or the one bad byte) takes.
inline bool is_valid_utf8_prefix(std::string_view s, size_t* length) {
  return decode_utf8(s, length) != kUnicodeError || *length == 3;
}

// Appends `text` with every U+2581 replaced by a space.
void append_unescaped(std::string_view text, std::string* out);

}  // namespace longbow::spm
