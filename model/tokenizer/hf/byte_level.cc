#include "model/tokenizer/hf/byte_level.h"

#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<std::string, 256> utf8{};
  std::array<int16_t, 324> from_char{};  // code points < 324 cover the whole map; -1: not mapped

  Tables() {
    from_char.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      to_char[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    for (int b = 0; b < 256; ++b) {
      const char32_t cp = to_char[static_cast<size_t>(b)];
      append_utf8(cp, &utf8[static_cast<size_t>(b)]);
      from_char[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t b) { return tables().to_char[b]; }

const std::array<std::string, 256>& byte_chars() { return tables().utf8; }

std::optional<uint8_t> char_to_byte(char32_t cp) {
  if (cp >= tables().from_char.size() || tables().from_char[cp] < 0) return std::nullopt;
  return static_cast<uint8_t>(tables().from_char[cp]);
}

void append_byte_level(std::string_view bytes, std::string* out) {
  const auto& utf8 = tables().utf8;
  for (const char c : bytes) out->append(utf8[static_cast<uint8_t>(c)]);
}

std::optional<std::string> byte_level_to_bytes(std::string_view token) {
  std::string bytes;
  bytes.reserve(token.size());
  size_t pos = 0;
  while (pos < token.size()) {
    size_t length;
    const std::optional<uint8_t> b = char_to_byte(next_code_point(token.substr(pos), &length));
    if (!b) return std::nullopt;
    bytes.push_back(static_cast<char>(*b));
    pos += length;
  }
  return bytes;
}

}  // namespace longbow::hf
