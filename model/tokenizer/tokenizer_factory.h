// load_tokenizer: the one entry point that turns a model directory (or a tokenizer file) into a
// Tokenizer, choosing Hugging Face tokenizer.json when present, else sentencepiece tokenizer.model.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "model/tokenizer/hf_tokenizer.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow {

// The tokenizer file `path` names: `path` itself when it is a file, else the directory's
// tokenizer.json, else its tokenizer.model. NOT_FOUND naming both when the directory has neither.
StatusOr<std::string> find_tokenizer_file(const std::string& path);

// BOS/EOS token strings from tokenizer_config.json in `dir` ("bos_token"/"eos_token", a string or
// an AddedToken object); absent file or keys give nullopt.
HfSpecialTokens read_special_tokens(const std::string& dir);

// The tokenizer in `path` (see find_tokenizer_file). A .json file (or content starting with '{')
// is read as tokenizer.json with the BOS/EOS of the tokenizer_config.json beside it; anything else
// as a sentencepiece model.
StatusOr<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path);

}  // namespace longbow
