// sentencepiece's BPE segmentation (bpe_model.cc), reproduced step for step.
//
// The text is split into characters (a user-defined symbol is one frozen character); then, while
// any adjacent pair concatenates to a vocabulary piece, the pair whose piece has the highest score
// is merged (ties: the leftmost). A priority queue of candidate pairs with lazy invalidation makes
// this O(n log n). Merged UNUSED pieces are split back into the pieces they were made from.
#pragma once

#include <string_view>

#include "model/tokenizer/segment.h"
#include "model/tokenizer/vocab.h"

namespace longbow::spm {

Segments bpe_segment(const Vocab& vocab, std::string_view normalized);

}  // namespace longbow::spm
