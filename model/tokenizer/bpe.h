// sentencepiece's BPE segmentation (bpe_model.cc), reproduced step for step.
//
// The text is split into characters (a user-defined symbol is one frozen character); then, while
// any adjacent pair concatenates to a vocabulary piece, the pair whose piece has the highest score
// is merged (ties: the leftmost). A priority queue of candidate pairs with lazy invalidation makes
// this O(n log n). Merged UNUSED pieces are split back into the pieces they were made from.
//
// Speed-up with identical results: a merge can only join characters c1 c2 that occur adjacently
// inside some vocabulary piece, so the text is cut into independent runs wherever the adjacent
// pair occurs in no piece (typically before every "▁"), and each run is merged on its own with a
// small queue. Merges in one run never affect another, so the per-run merge order is the global
// one. The cut is skipped when the model has UNUSED pieces: their resegmentation depends on the
// global order of candidate pairs.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_set>

#include "model/tokenizer/segment.h"
#include "model/tokenizer/vocab.h"

namespace longbow::spm {

class BpeModel {
 public:
  BpeModel() = default;

  // `vocab` must outlive the model.
  static BpeModel create(const Vocab& vocab);

  Segments segment(std::string_view normalized) const;

 private:
  const Vocab* vocab_ = nullptr;
  bool split_runs_ = true;
  // Packed (character, next character) pairs that occur inside some NORMAL, USER_DEFINED or
  // UNUSED piece; see pack_pair in bpe.cc.
  std::unordered_set<uint64_t> inner_pairs_;
};

}  // namespace longbow::spm
