// Normalizers of tokenizer.json ("normalizer"): string rewrites applied to each piece of input
// text between added tokens, before pre-tokenization. Supported types: NFC, NFD, NFKC, NFKD,
// Lowercase, Strip, Replace, Prepend and Sequence; any other type is UNIMPLEMENTED naming it.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace longbow::hf {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // `text` is non-empty, valid UTF-8; so is the result.
  virtual std::string normalize(std::string_view text) const = 0;
};

// null JSON gives nullptr (no normalizer).
StatusOr<std::unique_ptr<Normalizer>> make_normalizer(const nlohmann::json& j);

}  // namespace longbow::hf
