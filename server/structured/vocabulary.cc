#include "server/structured/vocabulary.h"

#include <algorithm>
#include <utility>

namespace longbow::structured {

Vocabulary::Vocabulary(VocabularyInfo info) : info_(std::move(info)) {
  for (size_t id = 0; id < info_.token_bytes.size(); ++id) {
    if (!info_.token_bytes[id].empty()) sorted_.push_back(static_cast<int32_t>(id));
  }
  std::sort(sorted_.begin(), sorted_.end(), [&](int32_t a, int32_t b) {
    const std::string& x = info_.token_bytes[static_cast<size_t>(a)];
    const std::string& y = info_.token_bytes[static_cast<size_t>(b)];
    return x != y ? x < y : a < b;
  });
  // Breadth-first construction: the children of a node are consecutive nodes. A node is a range of
  // sorted_ sharing a prefix of length `depth`.
  struct Pending {
    int32_t begin, end, depth;
  };
  nodes_.push_back(Node{});
  std::vector<Pending> level{{0, static_cast<int32_t>(sorted_.size()), 0}};
  size_t first = 0;
  while (!level.empty()) {
    std::vector<Pending> next;
    for (size_t k = 0; k < level.size(); ++k) {
      Node& node = nodes_[first + k];
      const auto [begin, end, depth] = level[k];
      int32_t i = begin;
      while (i < end && static_cast<int32_t>(bytes(sorted_[static_cast<size_t>(i)]).size()) == depth) ++i;
      node.tok_begin = begin;
      node.tok_end = i;
      node.sub_end = end;
      while (i < end) {
        const uint8_t b = static_cast<uint8_t>(bytes(sorted_[static_cast<size_t>(i)])[static_cast<size_t>(depth)]);
        int32_t j = i;
        while (j < end && static_cast<uint8_t>(bytes(sorted_[static_cast<size_t>(j)])[static_cast<size_t>(depth)]) == b) ++j;
        next.push_back(Pending{i, j, depth + 1});
        i = j;
      }
    }
    // Children of this level's nodes are appended in order; fix up their ranges now.
    const int32_t base = static_cast<int32_t>(nodes_.size());
    int32_t cursor = base;
    size_t p = 0;
    for (size_t k = 0; k < level.size(); ++k) {
      Node& node = nodes_[first + k];
      node.child_begin = cursor;
      while (p < next.size() && next[p].begin >= node.tok_begin && next[p].end <= node.sub_end) {
        ++cursor;
        ++p;
      }
      node.child_end = cursor;
    }
    for (const Pending& q : next) {
      Node child;
      child.byte = static_cast<uint8_t>(bytes(sorted_[static_cast<size_t>(q.begin)])[static_cast<size_t>(q.depth - 1)]);
      nodes_.push_back(child);
    }
    first = static_cast<size_t>(base);
    level = std::move(next);
  }
}

}  // namespace longbow::structured
