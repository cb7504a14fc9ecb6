#include "model/tokenizer/vocab.h"

#include <algorithm>

namespace longbow::spm {
namespace {

bool is_normal_type(PieceType t) {
  return t == PieceType::kNormal || t == PieceType::kUserDefined || t == PieceType::kUnused;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // the library prints and accepts upper case only
}

}  // namespace

std::string byte_to_piece(uint8_t b) {
  constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[b >> 4] + kHex[b & 15] + ">";
}

int piece_to_byte(std::string_view piece) {
  if (piece.size() != 6 || !piece.starts_with("<0x") || piece[5] != '>') return -1;
  const int hi = hex_digit(piece[3]);
  const int lo = hex_digit(piece[4]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

StatusOr<Vocab> Vocab::create(const ModelProto& model) {
  Vocab v;
  v.pieces_ = model.pieces;
  v.byte_fallback_ = model.trainer_spec.byte_fallback;
  v.byte_values_.assign(v.pieces_.size(), -1);
  std::array<bool, 256> byte_found{};
  std::vector<std::pair<std::string_view, int32_t>> user_defined;

  for (size_t i = 0; i < v.pieces_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const PieceProto& p = v.pieces_[i];
    const std::string where = "piece " + std::to_string(id) + " \"" + p.piece + "\"";
    if (p.piece.empty()) return invalid_argument("piece " + std::to_string(id) + " is empty");
    PieceMap& map = is_normal_type(p.type) ? v.normal_ : v.reserved_;
    if (!map.emplace(p.piece, id).second) return invalid_argument(where + " is already defined");
    if (p.type == PieceType::kUserDefined) user_defined.emplace_back(p.piece, id);
    if (p.type == PieceType::kUnknown) {
      if (v.unk_id_ >= 0) {
        return invalid_argument(where + ": a second UNKNOWN piece (the first is id " +
                                std::to_string(v.unk_id_) + ")");
      }
      v.unk_id_ = id;
    }
    if (p.type == PieceType::kByte) {
      if (!v.byte_fallback_) return invalid_argument(where + " is a BYTE piece but byte_fallback is false");
      const int b = piece_to_byte(p.piece);
      if (b < 0) return invalid_argument(where + " is a BYTE piece not of the form <0xXX>");
      byte_found[b] = true;
      v.byte_values_[i] = static_cast<int16_t>(b);
    }
  }
  if (v.unk_id_ < 0) return invalid_argument("the model defines no UNKNOWN piece");
  if (v.byte_fallback_ && std::find(byte_found.begin(), byte_found.end(), false) != byte_found.end()) {
    return invalid_argument("byte_fallback is true but the model lacks some of the 256 <0xXX> pieces");
  }
  for (int b = 0; b < 256; ++b) v.byte_piece_ids_[b] = v.piece_to_id(byte_to_piece(static_cast<uint8_t>(b)));
  v.user_defined_ = PieceTrie::build(std::move(user_defined));
  return v;
}

int32_t Vocab::piece_to_id(std::string_view piece) const {
  if (const auto it = reserved_.find(piece); it != reserved_.end()) return it->second;
  if (const auto it = normal_.find(piece); it != normal_.end()) return it->second;
  return unk_id_;
}

int32_t Vocab::find_normal(std::string_view piece) const {
  const auto it = normal_.find(piece);
  return it == normal_.end() ? -1 : it->second;
}

}  // namespace longbow::spm
