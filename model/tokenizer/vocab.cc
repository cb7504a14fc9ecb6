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
  v.texts_ = std::make_unique<std::vector<std::string>>();
  v.texts_->reserve(model.pieces.size());
  for (const PieceProto& p : model.pieces) {
    v.texts_->push_back(p.piece);
    v.scores_.push_back(p.score);
    v.types_.push_back(p.type);
  }
  v.byte_fallback_ = model.trainer_spec.byte_fallback;
  v.byte_values_.assign(model.pieces.size(), -1);

  // Duplicates are found with a sorted copy rather than through the index under construction.
  std::vector<std::pair<std::string_view, int32_t>> normal_sorted, reserved_sorted;
  std::array<bool, 256> byte_found{};
  std::vector<std::pair<std::string_view, int32_t>> user_defined;
  for (size_t i = 0; i < model.pieces.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    const std::string& piece = (*v.texts_)[i];
    const PieceType type = v.types_[i];
    const std::string where = "piece " + std::to_string(id) + " \"" + piece + "\"";
    if (piece.empty()) return invalid_argument("piece " + std::to_string(id) + " is empty");
    (is_normal_type(type) ? normal_sorted : reserved_sorted).emplace_back(piece, id);
    if (type == PieceType::kUserDefined) user_defined.emplace_back(piece, id);
    if (type == PieceType::kUnknown) {
      if (v.unk_id_ >= 0) {
        return invalid_argument(where + ": a second UNKNOWN piece (the first is id " +
                                std::to_string(v.unk_id_) + ")");
      }
      v.unk_id_ = id;
    }
    if (type == PieceType::kByte) {
      if (!v.byte_fallback_) return invalid_argument(where + " is a BYTE piece but byte_fallback is false");
      const int b = piece_to_byte(piece);
      if (b < 0) return invalid_argument(where + " is a BYTE piece not of the form <0xXX>");
      byte_found[b] = true;
      v.byte_values_[i] = static_cast<int16_t>(b);
    }
  }
  for (auto* group : {&normal_sorted, &reserved_sorted}) {
    std::stable_sort(group->begin(), group->end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < group->size(); ++i) {
      if ((*group)[i].first == (*group)[i - 1].first) {
        return invalid_argument("piece " + std::to_string((*group)[i].second) + " \"" +
                                std::string((*group)[i].first) + "\" is already defined (id " +
                                std::to_string((*group)[i - 1].second) + ")");
      }
    }
  }
  if (v.unk_id_ < 0) return invalid_argument("the model defines no UNKNOWN piece");
  if (v.byte_fallback_ && std::find(byte_found.begin(), byte_found.end(), false) != byte_found.end()) {
    return invalid_argument("byte_fallback is true but the model lacks some of the 256 <0xXX> pieces");
  }
  const auto ids_of = [](const std::vector<std::pair<std::string_view, int32_t>>& group) {
    std::vector<int32_t> ids;
    for (const auto& entry : group) ids.push_back(entry.second);
    return ids;
  };
  v.normal_ = PieceIndex(v.texts_.get(), ids_of(normal_sorted));
  v.reserved_ = PieceIndex(v.texts_.get(), ids_of(reserved_sorted));
  for (int b = 0; b < 256; ++b) v.byte_piece_ids_[b] = v.piece_to_id(byte_to_piece(static_cast<uint8_t>(b)));
  v.user_defined_ = PieceTrie::build(std::move(user_defined));
  return v;
}

int32_t Vocab::piece_to_id(std::string_view piece) const {
  if (const int32_t id = reserved_.find(piece); id >= 0) return id;
  if (const int32_t id = normal_.find(piece); id >= 0) return id;
  return unk_id_;
}

int32_t Vocab::find_normal(std::string_view piece) const { return normal_.find(piece); }

}  // namespace longbow::spm
