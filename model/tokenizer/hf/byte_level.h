// The GPT-2 byte-to-unicode map of byte-level BPE: every byte value gets a printable code point
// (printable Latin-1 bytes map to themselves, the other 68 to U+0100.. in order), so any byte
// string becomes a vocabulary string and back.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace longbow::hf {

// The code point byte `b` maps to.
char32_t byte_to_char(uint8_t b);
// The UTF-8 encoding of byte_to_char(b) for each byte (1 or 2 bytes each).
const std::array<std::string, 256>& byte_chars();
// The byte a code point stands for, or nullopt when it is not in the map.
std::optional<uint8_t> char_to_byte(char32_t cp);

// Appends the byte-level spelling of `bytes` to `out`.
void append_byte_level(std::string_view bytes, std::string* out);

// The bytes a byte-level token stands for; nullopt when some character of `token` is outside the
// map (Hugging Face's ByteLevel decoder then keeps the token's own UTF-8 bytes).
std::optional<std::string> byte_level_to_bytes(std::string_view token);

}  // namespace longbow::hf
