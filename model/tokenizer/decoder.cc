#include "model/tokenizer/decoder.h"

#include <string_view>
#include <utility>

#include "model/tokenizer/utf8.h"

namespace longbow::spm {
namespace {

// Appends a run of byte-piece bytes: well-formed characters as they are, each malformed byte as
// U+FFFD.
void append_bytes(std::string_view bytes, std::string* text) {
  while (!bytes.empty()) {
    size_t length = 0;
    if (is_valid_utf8_prefix(bytes, &length)) {
      text->append(bytes.substr(0, length));
    } else {
      text->append(kReplacementCharacter);
    }
    bytes.remove_prefix(length);
  }
}

}  // namespace

Decoder::Decoder(const Vocab& vocab, const ModelProto& model, const Normalizer* denormalizer)
    : vocab_(&vocab),
      denormalizer_(denormalizer),
      unk_surface_(model.trainer_spec.unk_surface),
      strip_bos_space_(model.normalizer_spec.add_dummy_prefix || model.normalizer_spec.remove_extra_whitespaces),
      strip_all_leading_(model.normalizer_spec.remove_extra_whitespaces) {}

StatusOr<std::string> Decoder::decode(std::span<const int32_t> ids, bool skip_invalid) const {
  std::string text;
  std::string bytes;         // the pending run of byte pieces
  bool is_bos_ws = true;     // a leading "▁" may still be dropped
  bool bos_ws_seen = false;  // the previous piece's leading "▁" was dropped
  for (const int32_t id : ids) {
    if (!vocab_->contains(id)) {
      if (skip_invalid) continue;
      return out_of_range("decode: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                          std::to_string(vocab_->size()) + ")");
    }
    const PieceType type = vocab_->type(id);
    if (type == PieceType::kByte) {
      bytes.push_back(static_cast<char>(vocab_->byte_value(id)));
      continue;
    }
    append_bytes(bytes, &text);
    bytes.clear();
    if (bos_ws_seen || !text.empty()) is_bos_ws = false;
    bos_ws_seen = false;
    if (type == PieceType::kControl) continue;
    if (type == PieceType::kUnknown) {
      text.append(unk_surface_);
      continue;
    }
    std::string_view piece = vocab_->piece(id);
    if (is_bos_ws && strip_bos_space_ && piece.starts_with(kSpaceSymbol)) {
      piece.remove_prefix(kSpaceSymbol.size());
      bos_ws_seen = !strip_all_leading_;
    }
    append_unescaped(piece, &text);
  }
  append_bytes(bytes, &text);
  if (denormalizer_ != nullptr) return denormalizer_->normalize(text);
  return text;
}

std::string Decoder::token_bytes(int32_t id) const {
  if (!vocab_->contains(id)) return {};
  switch (vocab_->type(id)) {
    case PieceType::kControl:
      return {};
    case PieceType::kUnknown:
      return unk_surface_;
    case PieceType::kByte:
      return std::string(1, static_cast<char>(vocab_->byte_value(id)));
    default: {
      std::string out;
      append_unescaped(vocab_->piece(id), &out);
      return out;
    }
  }
}

}  // namespace longbow::spm
