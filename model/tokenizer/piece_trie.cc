#include "model/tokenizer/piece_trie.h"

#include <algorithm>
#include <deque>

namespace longbow::spm {

PieceTrie PieceTrie::build(std::vector<std::pair<std::string_view, int32_t>> entries) {
  std::sort(entries.begin(), entries.end());
  PieceTrie trie;
  trie.nodes_.emplace_back();
  trie.labels_.push_back(0);

  // Each pending node owns the sorted range [lo, hi) of keys that pass through it; all share
  // their first `depth` bytes.
  struct Pending {
    uint32_t node;
    size_t depth, lo, hi;
  };
  std::deque<Pending> queue{{0, 0, 0, entries.size()}};
  while (!queue.empty()) {
    auto [node, depth, lo, hi] = queue.front();
    queue.pop_front();
    if (lo < hi && entries[lo].first.size() == depth) trie.nodes_[node].value = entries[lo].second;
    while (lo < hi && entries[lo].first.size() == depth) ++lo;  // the key itself, and any duplicate
    trie.nodes_[node].first_child = static_cast<uint32_t>(trie.nodes_.size());
    size_t group = lo;
    while (group < hi) {
      const char label = entries[group].first[depth];
      size_t end = group;
      while (end < hi && entries[end].first[depth] == label) ++end;
      const auto child_index = static_cast<uint32_t>(trie.nodes_.size());
      trie.nodes_.emplace_back();
      trie.labels_.push_back(static_cast<uint8_t>(label));
      ++trie.nodes_[node].num_children;
      queue.push_back({child_index, depth + 1, group, end});
      group = end;
    }
  }
  return trie;
}

bool PieceTrie::child(uint32_t node, uint8_t label, uint32_t* out) const {
  const Node& n = nodes_[node];
  const auto first = labels_.begin() + n.first_child;
  const auto last = first + n.num_children;
  const auto it = std::lower_bound(first, last, label);
  if (it == last || *it != label) return false;
  *out = static_cast<uint32_t>(it - labels_.begin());
  return true;
}

size_t PieceTrie::longest_prefix(std::string_view text) const {
  size_t longest = 0;
  for_each_prefix(text, [&](size_t length, int32_t) { longest = length; });
  return longest;
}

}  // namespace longbow::spm
