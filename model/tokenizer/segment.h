// What a segmenter (BPE or unigram) returns: the normalized text cut into pieces, each with the
// vocabulary id the library's model would report (the unknown id for out-of-vocabulary pieces).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace longbow::spm {

struct Segment {
  std::string_view piece;  // a view into the normalized text
  int32_t id;
};

using Segments = std::vector<Segment>;

}  // namespace longbow::spm
