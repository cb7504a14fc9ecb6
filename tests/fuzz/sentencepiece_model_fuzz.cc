// libFuzzer target: a sentencepiece model file (protobuf wire format, written by hand in
// model/tokenizer) -> load_sentencepiece_tokenizer; an accepted model then encodes and decodes a
// fixed text and every piece is looked up, so a model that loads but breaks an invariant is caught.
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  longbow::fuzz::MemoryFile file(data, size);
  if (!file.ok()) return 0;
  auto tokenizer = longbow::load_sentencepiece_tokenizer(file.path());
  if (!tokenizer.ok()) return 0;
  const longbow::Tokenizer& tok = **tokenizer;
  std::vector<longbow::TokenId> ids = tok.encode("Hello, wörld! 123 \xe2\x96\x81 tabs\tand\nnewlines <s>");
  for (longbow::TokenId id : ids) {
    if (id < 0 || id >= tok.vocab_size()) __builtin_trap();  // encode must stay in the vocabulary
  }
  (void)tok.decode(ids);
  const int n = std::min(tok.vocab_size(), 4096);
  for (longbow::TokenId id = 0; id < n; ++id) {
    (void)tok.piece(id);
    (void)tok.token_bytes(id);
  }
  return 0;
}
