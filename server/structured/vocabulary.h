// The vocabulary as the mask computation sees it: each token's decoded bytes, a byte trie over
// them, and the stop tokens. Built once per model and shared by every grammar.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace longbow::structured {

struct VocabularyInfo {
  std::vector<std::string> token_bytes;  // by token id; "" for special/control tokens (never allowed)
  std::vector<int32_t> stop_ids;         // allowed exactly when the match is complete (EOS, EOT, ...)
};

class Vocabulary {
 public:
  explicit Vocabulary(VocabularyInfo info);

  int size() const { return static_cast<int>(info_.token_bytes.size()); }
  const std::string& bytes(int32_t id) const { return info_.token_bytes[static_cast<size_t>(id)]; }
  const std::vector<int32_t>& stop_ids() const { return info_.stop_ids; }
  size_t mask_words() const { return (info_.token_bytes.size() + 63) / 64; }

  // The byte trie: node 0 is the root (the empty prefix). A node's tokens are sorted_[tok_begin,
  // tok_end) (tokens whose bytes are exactly the node's prefix), its whole subtree's tokens
  // sorted_[tok_begin, sub_end): token ids are ordered by their bytes, so a subtree is one range.
  struct Node {
    uint8_t byte = 0;
    int32_t child_begin = 0;  // children are nodes [child_begin, child_end), in byte order
    int32_t child_end = 0;
    int32_t tok_begin = 0;
    int32_t tok_end = 0;
    int32_t sub_end = 0;
  };
  const std::vector<Node>& nodes() const { return nodes_; }
  const std::vector<int32_t>& sorted_ids() const { return sorted_; }

 private:
  VocabularyInfo info_;
  std::vector<int32_t> sorted_;  // ids of non-empty tokens, by bytes
  std::vector<Node> nodes_;
};

}  // namespace longbow::structured
