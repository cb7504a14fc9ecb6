// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): split each normalized piece into the words
// the model segments independently. Supported: Split (String or Regex pattern, every delimiter
// behaviour, invert), ByteLevel, Metaspace, Digits, Sequence; other types are UNIMPLEMENTED.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace longbow::hf {

// A piece of the input on its way to the model. `at_start`: the piece begins at offset 0 of the
// original input (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; empty pieces are dropped.
  virtual void pre_tokenize(std::vector<Piece>* pieces) const = 0;
};

// null JSON gives nullptr (no pre-tokenizer: each piece is one word).
StatusOr<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const nlohmann::json& j);

}  // namespace longbow::hf
