// Tokenizer: the interface the server tokenizes through, with two implementations written in
// longbow: sentencepiece `tokenizer.model` files (below) and Hugging Face `tokenizer.json` files
// (hf_tokenizer.h); load_tokenizer() (tokenizer_factory.h) picks one for a model directory.
//
// Sentencepiece: Debian's libsentencepiece cannot share a process with gRPC (it embeds protobuf 3.14), so this
// reimplements what the server needs: the ModelProto wire format, the normalizer (precompiled
// charsmap, whitespace rules), BPE and unigram segmentation, byte fallback, user-defined and control
// pieces. encode() and decode() are byte-identical to sentencepiece's Encode/Decode (tests compare
// against libsentencepiece 0.1.97 over a corpus). All methods are const and keep no mutable state:
// one Tokenizer may be used from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow {

using TokenId = int32_t;

// Token ids a tokenizer file may use lie below this (the bound config.json's vocab_size has too;
// the largest real vocabularies hold about 2^18): a larger id is an error, not an allocation.
inline constexpr TokenId kMaxVocabSize = 1 << 22;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Token ids for `text`, without BOS/EOS (as spm_encode --output_format=id).
  virtual std::vector<TokenId> encode(std::string_view text) const = 0;
  // Text for `ids`, as spm_decode --input_format=id (control tokens vanish; unknown ids are an error
  // only in decode_checked).
  virtual std::string decode(std::span<const TokenId> ids) const = 0;
  // decode(), but OUT_OF_RANGE naming the first id outside [0, vocab_size()) instead of skipping
  // it (the library rejects the whole sequence the same way).
  virtual StatusOr<std::string> decode_checked(std::span<const TokenId> ids) const = 0;

  // The bytes one token contributes when decoded in the middle of a sequence: "▁" becomes " ", a
  // byte piece <0xAB> becomes that single (possibly partial UTF-8) byte, control tokens give "".
  // The streaming detokenizer concatenates these and emits only complete UTF-8.
  virtual std::string token_bytes(TokenId id) const = 0;

  virtual int vocab_size() const = 0;
  virtual std::string_view piece(TokenId id) const = 0;
  virtual bool is_control(TokenId id) const = 0;
  virtual std::optional<TokenId> bos_id() const = 0;
  virtual std::optional<TokenId> eos_id() const = 0;
  virtual std::optional<TokenId> unk_id() const = 0;

  // Token ids with the tokenizer's own special tokens around them (Hugging Face's
  // add_special_tokens=True: the post-processor's template; sentencepiece: BOS when it has one).
  virtual std::vector<TokenId> encode_with_special_tokens(std::string_view text) const {
    std::vector<TokenId> ids;
    if (bos_id()) ids.push_back(*bos_id());
    std::vector<TokenId> encoded = encode(text);
    ids.insert(ids.end(), encoded.begin(), encoded.end());
    return ids;
  }
  // decode(), but special tokens keep their text (Hugging Face's skip_special_tokens=False).
  virtual std::string decode_keeping_special(std::span<const TokenId> ids) const { return decode(ids); }
  // Whether encode() itself finds special-token text (Hugging Face added tokens) in its input;
  // sentencepiece does not (callers split at control pieces first).
  virtual bool parses_special_tokens() const { return false; }
  // The id whose piece (vocabulary string or added token) is exactly `piece`.
  virtual std::optional<TokenId> token_to_id(std::string_view piece_text) const {
    for (TokenId id = 0; id < vocab_size(); ++id) {
      if (piece(id) == piece_text) return id;
    }
    return std::nullopt;
  }
};

// Loads a sentencepiece model file (BPE or unigram). INVALID_ARGUMENT on a malformed file,
// UNIMPLEMENTED naming the model type or normalizer feature it does not support.
StatusOr<std::unique_ptr<Tokenizer>> load_sentencepiece_tokenizer(const std::string& path);

}  // namespace longbow
