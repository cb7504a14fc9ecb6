#include "model/tokenizer/utf8.h"

namespace longbow::spm {
namespace {

bool is_trail_byte(char c) { return (static_cast<uint8_t>(c) & 0xC0) == 0x80; }
bool is_valid_code_point(char32_t c) { return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF); }

}  // namespace

char32_t decode_utf8(std::string_view s, size_t* length) {
  const auto b = [&](size_t i) { return static_cast<char32_t>(static_cast<uint8_t>(s[i])); };
  const size_t n = s.size();
  if (b(0) < 0x80) {
    *length = 1;
    return b(0);
  }
  if (n >= 2 && (b(0) & 0xE0) == 0xC0) {
    const char32_t cp = (b(0) & 0x1F) << 6 | (b(1) & 0x3F);
    if (is_trail_byte(s[1]) && cp >= 0x80 && is_valid_code_point(cp)) {
      *length = 2;
      return cp;
    }
  } else if (n >= 3 && (b(0) & 0xF0) == 0xE0) {
    const char32_t cp = (b(0) & 0x0F) << 12 | (b(1) & 0x3F) << 6 | (b(2) & 0x3F);
    if (is_trail_byte(s[1]) && is_trail_byte(s[2]) && cp >= 0x800 && is_valid_code_point(cp)) {
      *length = 3;
      return cp;
    }
  } else if (n >= 4 && (b(0) & 0xF8) == 0xF0) {
    const char32_t cp = (b(0) & 0x07) << 18 | (b(1) & 0x3F) << 12 | (b(2) & 0x3F) << 6 | (b(3) & 0x3F);
    if (is_trail_byte(s[1]) && is_trail_byte(s[2]) && is_trail_byte(s[3]) && cp >= 0x10000 &&
        is_valid_code_point(cp)) {
      *length = 4;
      return cp;
    }
  }
  *length = 1;
  return kUnicodeError;
}

void append_unescaped(std::string_view text, std::string* out) {
  size_t start = 0;
  while (true) {
    const size_t hit = text.find(kSpaceSymbol, start);
    if (hit == std::string_view::npos) break;
    out->append(text.substr(start, hit - start));
    out->push_back(' ');
    start = hit + kSpaceSymbol.size();
  }
  out->append(text.substr(start));
}

}  // namespace longbow::spm
