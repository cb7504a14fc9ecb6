// sentencepiece's Decode for id sequences (SentencePieceProcessor::Decode), reproduced exactly.
//
// Control pieces vanish; the unknown piece becomes the unk surface (" ⁇ " by default); runs of
// byte pieces are joined and decoded as UTF-8, each malformed byte becoming U+FFFD; U+2581 becomes
// a space. At the start of the text one leading U+2581 is dropped when add_dummy_prefix is set,
// and with remove_extra_whitespaces every piece's leading U+2581 is dropped until the text is
// non-empty. A denormalizer spec, when the model has one, is applied to the result.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "common/status.h"
#include "model/tokenizer/model_proto.h"
#include "model/tokenizer/normalizer.h"
#include "model/tokenizer/vocab.h"

namespace longbow::spm {

class Decoder {
 public:
  Decoder() = default;

  // `vocab` and `denormalizer` (may be null) must outlive the decoder.
  Decoder(const Vocab& vocab, const ModelProto& model, const Normalizer* denormalizer);

  // OUT_OF_RANGE naming the first id outside [0, vocab size) when `skip_invalid` is false;
  // otherwise such ids are dropped.
  StatusOr<std::string> decode(std::span<const int32_t> ids, bool skip_invalid) const;

  // The bytes `id` contributes inside a sequence (no start-of-text rule, no UTF-8 repair).
  std::string token_bytes(int32_t id) const;

 private:
  const Vocab* vocab_ = nullptr;
  const Normalizer* denormalizer_ = nullptr;
  std::string unk_surface_;
  bool strip_bos_space_ = true;   // add_dummy_prefix || remove_extra_whitespaces
  bool strip_all_leading_ = true;  // remove_extra_whitespaces
};

}  // namespace longbow::spm
