#include "model/tokenizer/bpe.h"

#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/tokenizer/utf8.h"

namespace longbow::spm {
namespace {

struct Symbol {
  int prev;
  int next;
  bool freeze;  // a user-defined symbol: never merged
  std::string_view piece;
};

struct SymbolPair {
  int left;
  int right;
  float score;
  size_t size;  // bytes of the merged piece; a pair is stale once either side changed size
};

// Orders the max-heap: higher score first, then the smaller left index.
struct PairLess {
  bool operator()(const SymbolPair& a, const SymbolPair& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

Segments bpe_segment(const Vocab& vocab, std::string_view normalized) {
  if (normalized.empty()) return {};

  std::vector<Symbol> symbols;
  symbols.reserve(normalized.size());
  {
    std::string_view rest = normalized;
    int index = 0;
    while (!rest.empty()) {
      Symbol s;
      const size_t user_len = vocab.user_defined().longest_prefix(rest);
      s.freeze = user_len > 0;
      const size_t len = s.freeze ? user_len : std::min<size_t>(rest.size(), one_char_len(rest[0]));
      s.piece = rest.substr(0, len);
      s.prev = index == 0 ? -1 : index - 1;
      rest.remove_prefix(len);
      s.next = rest.empty() ? -1 : index + 1;
      ++index;
      symbols.push_back(s);
    }
  }

  std::priority_queue<SymbolPair, std::vector<SymbolPair>, PairLess> agenda;
  // Merged UNUSED piece -> the two pieces it was made from (last writer wins, as in the library).
  std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>> rev_merge;

  const auto maybe_add_pair = [&](int left, int right) {
    if (left == -1 || right == -1 || symbols[left].freeze || symbols[right].freeze) return;
    const std::string_view merged(symbols[left].piece.data(),
                                  symbols[left].piece.size() + symbols[right].piece.size());
    const int32_t id = vocab.find_normal(merged);
    if (id < 0) return;
    agenda.push({left, right, vocab.score(id), merged.size()});
    if (vocab.is(id, PieceType::kUnused)) rev_merge[merged] = {symbols[left].piece, symbols[right].piece};
  };

  for (size_t i = 1; i < symbols.size(); ++i) maybe_add_pair(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!agenda.empty()) {
    const SymbolPair top = agenda.top();
    agenda.pop();
    Symbol& left = symbols[top.left];
    Symbol& right = symbols[top.right];
    if (left.piece.empty() || right.piece.empty() || left.piece.size() + right.piece.size() != top.size) {
      continue;
    }
    left.piece = std::string_view(left.piece.data(), left.piece.size() + right.piece.size());
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.left;
    right.piece = std::string_view();
    maybe_add_pair(left.prev, top.left);
    maybe_add_pair(top.left, left.next);
  }

  Segments out;
  out.reserve(symbols.size());
  // Resegments merged UNUSED pieces; depth is bounded by the piece length.
  const auto resegment = [&](auto&& self, std::string_view w) -> void {
    const int32_t id = vocab.piece_to_id(w);
    if (id < 0 || !vocab.is(id, PieceType::kUnused)) {
      out.push_back({w, id});
      return;
    }
    const auto it = rev_merge.find(w);
    if (it == rev_merge.end()) {
      out.push_back({w, id});
      return;
    }
    const auto [first, second] = it->second;
    self(self, first);
    self(self, second);
  };
  for (int index = 0; index != -1; index = symbols[index].next) resegment(resegment, symbols[index].piece);
  return out;
}

}  // namespace longbow::spm
