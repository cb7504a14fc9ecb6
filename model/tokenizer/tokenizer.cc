#include "model/tokenizer/tokenizer.h"

namespace longbow {

std::vector<TokenId> Tokenizer::encode_with_special_tokens(std::string_view text) const {
  std::vector<TokenId> ids;
  if (bos_id()) ids.push_back(*bos_id());
  std::vector<TokenId> encoded = encode(text);
  ids.insert(ids.end(), encoded.begin(), encoded.end());
  return ids;
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view piece_text) const {
  for (TokenId id = 0; id < vocab_size(); ++id) {
    if (piece(id) == piece_text) return id;
  }
  return std::nullopt;
}

}  // namespace longbow
