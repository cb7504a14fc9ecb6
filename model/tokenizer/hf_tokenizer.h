// Hugging Face `tokenizer.json` tokenizers (the "tokenizers" library's serialized pipeline):
// added tokens -> normalizer -> pre-tokenizer -> BPE model, and decoder for the way back, each
// step in model/tokenizer/hf/. encode() is tokenizers' encode(text, add_special_tokens=False),
// encode_with_special_tokens() adds the post-processor's template, decode() is
// decode(ids, skip_special_tokens=True) and decode_keeping_special() the same with False; the
// goldens in tests/data/tokenizer/ hold these byte for byte against tokenizers 0.23.2.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow {

// What tokenizer.json leaves to tokenizer_config.json: which added tokens are BOS and EOS.
struct HfSpecialTokens {
  std::optional<std::string> bos_token;
  std::optional<std::string> eos_token;
};

// Parses a tokenizer.json document. INVALID_ARGUMENT for malformed content, UNIMPLEMENTED naming a
// model, normalizer, pre-tokenizer, post-processor or decoder type it does not support.
StatusOr<std::unique_ptr<Tokenizer>> parse_hf_tokenizer(const std::string& json_text, const HfSpecialTokens& specials);

// parse_hf_tokenizer() on the file at `path`, errors prefixed with the path.
StatusOr<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& path, const HfSpecialTokens& specials);

}  // namespace longbow
