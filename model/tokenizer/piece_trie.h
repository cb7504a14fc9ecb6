// A read-only byte trie from pieces to ids: the vocabulary lookup of the unigram model and the
// user-defined-symbol matcher. Nodes are laid out breadth-first; a node's children are contiguous
// and sorted by label, so a step is a binary search over at most 256 bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

namespace longbow::spm {

class PieceTrie {
 public:
  PieceTrie() = default;

  // `entries` are (key, value) pairs with distinct non-empty keys, in any order; values >= 0.
  static PieceTrie build(std::vector<std::pair<std::string_view, int32_t>> entries);

  bool empty() const { return nodes_.size() <= 1; }

  // Calls on_match(length, value) for every key that is a prefix of `text`, shortest first.
  template <typename OnMatch>
  void for_each_prefix(std::string_view text, OnMatch&& on_match) const {
    if (empty()) return;
    uint32_t node = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      if (!child(node, static_cast<uint8_t>(text[i]), &node)) return;
      if (nodes_[node].value >= 0) on_match(i + 1, nodes_[node].value);
    }
  }

  // Length of the longest key that is a prefix of `text` (0 when none).
  size_t longest_prefix(std::string_view text) const;

 private:
  struct Node {
    uint32_t first_child = 0;
    uint32_t num_children = 0;
    int32_t value = -1;  // -1: no key ends here
  };

  bool child(uint32_t node, uint8_t label, uint32_t* out) const;

  std::vector<Node> nodes_;       // nodes_[0] is the root
  std::vector<uint8_t> labels_;   // labels_[i]: the byte on the edge into nodes_[i]
};

}  // namespace longbow::spm
