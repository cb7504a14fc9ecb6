// Post-processors of tokenizer.json ("post_processor"): what encode adds around one sequence when
// special tokens are requested. TemplateProcessing (its "single" template), ByteLevel (offsets
// only: ids unchanged) and Sequence are supported; pairs of sequences are not used by a server.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow::hf {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // `ids` of one sequence with the template's special tokens added.
  virtual std::vector<TokenId> process(std::vector<TokenId> ids) const = 0;
};

// null JSON gives nullptr (nothing added). INVALID_ARGUMENT when a special token's id lies
// outside [0, vocab_size).
StatusOr<std::unique_ptr<PostProcessor>> make_post_processor(const nlohmann::json& j, TokenId vocab_size);

}  // namespace longbow::hf
