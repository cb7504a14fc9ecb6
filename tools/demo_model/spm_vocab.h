// Just enough of a sentencepiece `tokenizer.model` (a serialized ModelProto) for the demo-model
// tool: the number of pieces and the ids of <unk>, <s> and </s>. The tokenizer proper lives in
// model/tokenizer; this reads only the wire format's top level and each piece's text and type.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace longbow::demo {

struct SpmVocab {
  int size = 0;
  std::optional<int> unk_id;  // the UNKNOWN piece
  std::optional<int> bos_id;  // the CONTROL piece "<s>"
  std::optional<int> eos_id;  // the CONTROL piece "</s>"
};

// INVALID_ARGUMENT names the file when it is not a well-formed ModelProto with at least one piece.
StatusOr<SpmVocab> read_spm_vocab(const std::string& path);

}  // namespace longbow::demo
