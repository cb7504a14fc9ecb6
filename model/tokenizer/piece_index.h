// An open-addressing hash index from piece strings to ids, for the hot lookups of the BPE merge
// loop (several per input character). The strings themselves live in the caller's piece table;
// the index stores only hashes and ids.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace longbow::spm {

class PieceIndex {
 public:
  PieceIndex() = default;

  // Indexes `ids` (distinct pieces of `pieces`, which must outlive the index and not move).
  PieceIndex(const std::vector<std::string>* pieces, const std::vector<int32_t>& ids);

  // The id whose piece equals `key`, or -1.
  int32_t find(std::string_view key) const;

  static uint64_t hash(std::string_view key);

 private:
  struct Slot {
    uint64_t hash = 0;
    int32_t id = -1;  // -1: empty
  };
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<Slot> slots_;  // power-of-two size, at most half full
};

}  // namespace longbow::spm
