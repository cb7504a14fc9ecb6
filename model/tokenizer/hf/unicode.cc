#include "model/tokenizer/hf/unicode.h"

#include <utf8proc.h>

#include <cstdlib>
#include <memory>

namespace longbow::hf {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the well-formed character at the front of `s`, or -n for a maximal ill-formed
// subpart of n bytes (Unicode 15, table 3-7).
int well_formed_length(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) return 1;
  int length;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i < length; ++i) {
    if (static_cast<size_t>(i) >= s.size()) return -i;
    const auto b = static_cast<unsigned char>(s[static_cast<size_t>(i)]);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF)) return -i;
  }
  return length;
}

bool category_in(char32_t cp, int first, int last) {
  const int category = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  return category >= first && category <= last;
}

}  // namespace

char32_t next_code_point(std::string_view s, size_t* length) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  if (b0 < 0x80) {
    *length = 1;
    return b0;
  }
  utf8proc_int32_t cp = 0xFFFD;
  const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                              static_cast<utf8proc_ssize_t>(s.size()), &cp);
  *length = n > 0 ? static_cast<size_t>(n) : 1;
  return n > 0 ? static_cast<char32_t>(cp) : 0xFFFD;
}

void append_utf8(char32_t cp, std::string* out) {
  utf8proc_uint8_t buffer[4];
  const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buffer);
  out->append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

std::string to_valid_utf8(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    const int n = well_formed_length(text.substr(pos));
    if (n < 0) break;
    pos += static_cast<size_t>(n);
  }
  if (pos == text.size()) return std::string(text);
  std::string out(text.substr(0, pos));
  while (pos < text.size()) {
    const int n = well_formed_length(text.substr(pos));
    if (n > 0) {
      out.append(text.substr(pos, static_cast<size_t>(n)));
      pos += static_cast<size_t>(n);
    } else {
      out += kReplacement;
      pos += static_cast<size_t>(-n);
    }
  }
  return out;
}

bool is_whitespace(char32_t cp) {
  // Unicode's White_Space property (what Rust's char::is_whitespace tests).
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_word_character(char32_t cp) {
  if (category_in(cp, UTF8PROC_CATEGORY_LU, UTF8PROC_CATEGORY_ME)) return true;  // L*, M*
  const utf8proc_category_t c = utf8proc_category(static_cast<utf8proc_int32_t>(cp));
  if (c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_PC) return true;
  if (cp == 0x200C || cp == 0x200D) return true;  // Join_Control
  return (cp >= 0x24B6 && cp <= 0x24E9) || (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
         (cp >= 0x1F170 && cp <= 0x1F189);
}

bool is_numeric(char32_t cp) { return category_in(cp, UTF8PROC_CATEGORY_ND, UTF8PROC_CATEGORY_NO); }

std::string normalize(std::string_view text, NormalForm form) {
  int options = UTF8PROC_STABLE;
  switch (form) {
    case NormalForm::kNfc: options |= UTF8PROC_COMPOSE; break;
    case NormalForm::kNfd: options |= UTF8PROC_DECOMPOSE; break;
    case NormalForm::kNfkc: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormalForm::kNfkd: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  auto is_ascii = [&](size_t i) { return static_cast<unsigned char>(text[i]) < 0x80; };
  auto map = [&](std::string_view part, std::string* out) {
    utf8proc_uint8_t* mapped = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(part.data()),
                                            static_cast<utf8proc_ssize_t>(part.size()), &mapped,
                                            static_cast<utf8proc_option_t>(options));
    if (n < 0) {  // only on invalid UTF-8, which callers never pass
      out->append(part);
      return;
    }
    std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
    out->append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
  };
  // Every form maps each part that starts at an ASCII character on its own: ASCII characters
  // are starters that never decompose, never move, and are never the second character of a
  // composition, so nothing crosses such a boundary. An ASCII character followed by ASCII (or
  // the end) is its own normal form; the others go to utf8proc with the non-ASCII run after them.
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t start = pos;
    while (pos < text.size() && is_ascii(pos) && (pos + 1 == text.size() || is_ascii(pos + 1))) ++pos;
    out.append(text.substr(start, pos - start));
    if (pos == text.size()) break;
    const size_t part = pos;
    if (is_ascii(pos)) ++pos;
    while (pos < text.size() && !is_ascii(pos)) ++pos;
    map(text.substr(part, pos - part), &out);
  }
  return out;
}

std::string lowercase(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length;
    const char32_t cp = next_code_point(text.substr(pos), &length);
    if (cp == U'\u0130') {  // the one unconditional full mapping to two code points (SpecialCasing.txt)
      out += "i\u0307";
    } else {
      append_utf8(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp))), &out);
    }
    pos += length;
  }
  return out;
}

}  // namespace longbow::hf
