// libFuzzer target: a tokenizer.json document -> parse_hf_tokenizer (model, added tokens,
// normalizer, pre-tokenizer, post-processor, decoder), BOS/EOS named as tokenizer_config.json would.
// An accepted tokenizer then encodes a fixed text and a slice of the input itself (with and without
// the post-processor's special tokens), decodes the ids both ways and reads every token's bytes, so
// a document that loads but breaks an invariant (an id outside the vocabulary, a bad byte piece)
// is caught. Any crash, sanitizer report, hang or exception escaping is a bug.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/hf_tokenizer.h"

namespace {

void check_ids(const longbow::Tokenizer& tok, const std::vector<longbow::TokenId>& ids) {
  for (const longbow::TokenId id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();  // encode must stay in the vocabulary
  }
}

void round_trip(const longbow::Tokenizer& tok, std::string_view text) {
  const std::vector<longbow::TokenId> ids = tok.encode(text);
  check_ids(tok, ids);
  (void)tok.decode(ids);
  (void)tok.decode_keeping_special(ids);
  const std::vector<longbow::TokenId> with_specials = tok.encode_with_special_tokens(text);
  check_ids(tok, with_specials);
  (void)tok.decode_checked(with_specials);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string document(reinterpret_cast<const char*>(data), size);
  longbow::HfSpecialTokens specials;
  specials.bos_token = "<s>";
  auto tokenizer = longbow::parse_hf_tokenizer(document, specials);
  if (!tokenizer.ok()) tokenizer = longbow::parse_hf_tokenizer(document, longbow::HfSpecialTokens{});
  if (!tokenizer.ok()) return 0;
  const longbow::Tokenizer& tok = **tokenizer;
  round_trip(tok, "Hello, wörld! 123 \xe2\x96\x81 tabs\tand\n\nnewlines <s></s> 日本語 \xf0\x9f\x98\x80 x\xff");
  // A slice of the document: its own vocabulary, added tokens and patterns in arbitrary order.
  round_trip(tok, std::string_view(document).substr(size / 2, 512));
  const int n = std::min(tok.vocab_size(), 4096);
  for (longbow::TokenId id = 0; id < n; ++id) {
    const std::optional<longbow::TokenId> found = tok.token_to_id(tok.piece(id));
    if (found && (*found < 0 || *found >= tok.vocab_size())) __builtin_trap();
    (void)tok.token_bytes(id);
    (void)tok.is_control(id);
  }
  const longbow::TokenId out_of_range[] = {-1, tok.vocab_size(), 1 << 30};
  (void)tok.decode(out_of_range);
  (void)tok.decode_checked(out_of_range);
  return 0;
}
