// Decoders of tokenizer.json ("decoder"): turn the token strings of an id sequence back into text.
// Each step rewrites the list of token strings (decode_chain); the text is their concatenation.
// Supported: ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::hf {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void decode_chain(std::vector<std::string>* tokens) const = 0;
};

// The byte a byte-fallback piece stands for: "<0xAB>" (hex digits in either case), else nullopt.
std::optional<char> parse_byte_piece(std::string_view token);

// null JSON gives nullptr (tokens are then joined with spaces, as tokenizers does).
StatusOr<std::unique_ptr<Decoder>> make_decoder(const nlohmann::json& j);

}  // namespace longbow::hf
