#include "tools/demo_model/spm_vocab.h"

#include <cstdint>
#include <string_view>

#include "common/json_file.h"

namespace longbow::demo {
namespace {

// Protocol buffer wire format: each field is a varint key (number << 3 | wire type) and a value.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : bytes_(bytes) {}

  bool done() const { return pos_ == bytes_.size(); }

  bool varint(uint64_t* out) {
    *out = 0;
    for (int shift = 0; shift < 64 && pos_ < bytes_.size(); shift += 7) {
      const uint8_t byte = static_cast<uint8_t>(bytes_[pos_++]);
      *out |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;
  }

  // Reads one field; `payload` is set for length-delimited fields, `value` for varints.
  bool field(uint32_t* number, std::string_view* payload, uint64_t* value) {
    uint64_t key;
    if (!varint(&key)) return false;
    *number = static_cast<uint32_t>(key >> 3);
    *payload = {};
    *value = 0;
    switch (key & 7) {
      case 0: return varint(value);
      case 1: return skip(8);
      case 5: return skip(4);
      case 2: {
        uint64_t length;
        if (!varint(&length) || length > bytes_.size() - pos_) return false;
        *payload = bytes_.substr(pos_, length);
        pos_ += length;
        return true;
      }
      default: return false;  // groups (3, 4) do not occur in ModelProto
    }
  }

 private:
  bool skip(size_t n) {
    if (n > bytes_.size() - pos_) return false;
    pos_ += n;
    return true;
  }

  std::string_view bytes_;
  size_t pos_ = 0;
};

constexpr uint32_t kModelPieces = 1;  // ModelProto.pieces
constexpr uint32_t kPieceText = 1;    // SentencePiece.piece
constexpr uint32_t kPieceType = 3;    // SentencePiece.type
constexpr uint64_t kTypeUnknown = 2;
constexpr uint64_t kTypeControl = 3;

}  // namespace

StatusOr<SpmVocab> read_spm_vocab(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, read_file(path));
  SpmVocab vocab;
  WireReader model(bytes);
  while (!model.done()) {
    uint32_t number;
    std::string_view payload;
    uint64_t value;
    if (!model.field(&number, &payload, &value)) {
      return invalid_argument(path + ": not a sentencepiece model (malformed protobuf)");
    }
    if (number != kModelPieces) continue;

    std::string_view text;
    uint64_t type = 1;  // NORMAL
    WireReader piece(payload);
    while (!piece.done()) {
      uint32_t piece_field;
      std::string_view piece_payload;
      uint64_t piece_value;
      if (!piece.field(&piece_field, &piece_payload, &piece_value)) {
        return invalid_argument(path + ": piece " + std::to_string(vocab.size) + " is malformed");
      }
      if (piece_field == kPieceText) text = piece_payload;
      if (piece_field == kPieceType) type = piece_value;
    }
    if (type == kTypeUnknown && !vocab.unk_id) vocab.unk_id = vocab.size;
    if (type == kTypeControl && text == "<s>") vocab.bos_id = vocab.size;
    if (type == kTypeControl && text == "</s>") vocab.eos_id = vocab.size;
    ++vocab.size;
  }
  if (vocab.size == 0) return invalid_argument(path + ": sentencepiece model has no pieces");
  return vocab;
}

}  // namespace longbow::demo
