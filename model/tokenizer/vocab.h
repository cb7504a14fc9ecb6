// The piece table of a sentencepiece model: ids, types, scores and the two lookup maps the library
// keeps (NORMAL/USER_DEFINED/UNUSED pieces vs. the reserved UNKNOWN/CONTROL/BYTE pieces), with the
// library's load-time checks.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/model_proto.h"
#include "model/tokenizer/piece_index.h"
#include "model/tokenizer/piece_trie.h"

namespace longbow::spm {

class Vocab {
 public:
  Vocab() = default;

  // INVALID_ARGUMENT, naming the piece, on: an empty or duplicated piece, no or several UNKNOWN
  // pieces, a BYTE piece that is not "<0xXX>" or appears without byte_fallback, byte_fallback
  // without all 256 byte pieces.
  static StatusOr<Vocab> create(const ModelProto& model);

  int size() const { return static_cast<int>(types_.size()); }
  bool contains(int32_t id) const { return id >= 0 && id < size(); }
  const std::string& piece(int32_t id) const { return (*texts_)[id]; }
  float score(int32_t id) const { return scores_[id]; }
  PieceType type(int32_t id) const { return types_[id]; }
  bool is(int32_t id, PieceType t) const { return types_[id] == t; }
  int32_t unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }

  // The library's PieceToId: reserved pieces first, then the others, else the unknown id.
  int32_t piece_to_id(std::string_view piece) const;
  // Id of a NORMAL, USER_DEFINED or UNUSED piece, or -1.
  int32_t find_normal(std::string_view piece) const;
  // piece_to_id("<0xXX>") for byte value b.
  int32_t byte_piece_id(uint8_t b) const { return byte_piece_ids_[b]; }
  // The byte a BYTE piece stands for (valid for BYTE ids only).
  uint8_t byte_value(int32_t id) const { return static_cast<uint8_t>(byte_values_[id]); }

  // USER_DEFINED pieces, for the normalizer and the BPE splitter (longest match wins).
  const PieceTrie& user_defined() const { return user_defined_; }

 private:
  // Heap-allocated so the indexes' pointer to it survives moves of the Vocab.
  std::unique_ptr<std::vector<std::string>> texts_;
  std::vector<float> scores_;
  std::vector<PieceType> types_;
  PieceIndex normal_;    // NORMAL, USER_DEFINED, UNUSED
  PieceIndex reserved_;  // UNKNOWN, CONTROL, BYTE
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false;
  std::array<int32_t, 256> byte_piece_ids_{};
  std::vector<int16_t> byte_values_;  // per id: the byte of a BYTE piece, else -1
  PieceTrie user_defined_;
};

// "<0xAB>" for 0xAB: the library's ByteToPiece (upper-case hex).
std::string byte_to_piece(uint8_t b);
// The library's PieceToByte: the byte of "<0xAB>"-form pieces, else -1.
int piece_to_byte(std::string_view piece);

}  // namespace longbow::spm
