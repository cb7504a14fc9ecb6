#include "model/tokenizer/piece_index.h"

#include <cstring>

namespace longbow::spm {

uint64_t PieceIndex::hash(std::string_view key) {
  // FNV-1a, then a final avalanche so the low bits used for the slot are well mixed.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : key) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

PieceIndex::PieceIndex(const std::vector<std::string>* pieces, const std::vector<int32_t>& ids) : pieces_(pieces) {
  size_t capacity = 16;
  while (capacity < ids.size() * 2) capacity *= 2;
  slots_.assign(capacity, Slot());
  const size_t mask = capacity - 1;
  for (const int32_t id : ids) {
    const uint64_t h = hash((*pieces_)[id]);
    size_t i = h & mask;
    while (slots_[i].id >= 0) i = (i + 1) & mask;
    slots_[i] = {h, id};
  }
}

int32_t PieceIndex::find(std::string_view key) const {
  if (slots_.empty()) return -1;
  const uint64_t h = hash(key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == h && (*pieces_)[s.id] == key) return s.id;
  }
}

}  // namespace longbow::spm
