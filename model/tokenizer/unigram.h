// sentencepiece's unigram segmentation: the Viterbi best path over all vocabulary pieces that
// tile the text, as the library's "optimized" encoder computes it (unigram_model.cc
// EncodeOptimized, the default in 0.1.97), including its float/double arithmetic so that ties
// resolve identically.
//
// Scores: a NORMAL piece scores its log-probability; a USER_DEFINED piece scores
// length_in_bytes * max_normal_score - 0.1; UNUSED pieces are skipped; a character no
// piece of one character covers gets an unknown node scoring min_normal_score - 10.
#pragma once

#include <string_view>

#include "common/status.h"
#include "model/tokenizer/piece_trie.h"
#include "model/tokenizer/segment.h"
#include "model/tokenizer/vocab.h"

namespace longbow::spm {

class UnigramModel {
 public:
  UnigramModel() = default;

  // `vocab` must outlive the model. INVALID_ARGUMENT when the model has no NORMAL,
  // USER_DEFINED or UNUSED piece.
  static StatusOr<UnigramModel> create(const Vocab& vocab);

  Segments segment(std::string_view normalized) const;

 private:
  const Vocab* vocab_ = nullptr;
  PieceTrie trie_;
  float min_score_ = 0;
  float max_score_ = 0;
};

}  // namespace longbow::spm
