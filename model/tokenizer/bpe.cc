#include "model/tokenizer/bpe.h"

#include <algorithm>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/tokenizer/utf8.h"

namespace longbow::spm {
namespace {

struct Symbol {
  int prev;      // -1 at the start of a run
  int next;      // -1 at the end of a run
  bool freeze;   // a user-defined symbol: never merged
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

// Up to the first 4 bytes of a character, little-endian. Distinct characters can collide only
// when continuation bytes are NUL, which at worst hides a cut, never invents one.
uint32_t pack_char(std::string_view c) {
  uint32_t v = 0;
  for (size_t i = 0; i < c.size() && i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(c[i])) << (8 * i);
  return v;
}
uint64_t pack_pair(std::string_view a, std::string_view b) {
  return static_cast<uint64_t>(pack_char(a)) << 32 | pack_char(b);
}

// Splits `text` into characters as the segmenter does (by lead byte, clipped at the end).
template <typename OnChar>
void for_each_char(std::string_view text, OnChar&& on_char) {
  while (!text.empty()) {
    const size_t len = std::min<size_t>(text.size(), one_char_len(text[0]));
    on_char(text.substr(0, len));
    text.remove_prefix(len);
  }
}

}  // namespace

BpeModel BpeModel::create(const Vocab& vocab) {
  BpeModel m;
  m.vocab_ = &vocab;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const PieceType t = vocab.type(id);
    if (t == PieceType::kUnused) m.split_runs_ = false;
    if (t != PieceType::kNormal && t != PieceType::kUserDefined && t != PieceType::kUnused) continue;
    std::string_view prev;
    for_each_char(vocab.piece(id), [&](std::string_view c) {
      if (!prev.empty()) m.inner_pairs_.insert(pack_pair(prev, c));
      prev = c;
    });
  }
  if (!m.split_runs_) m.inner_pairs_.clear();
  return m;
}

Segments BpeModel::segment(std::string_view normalized) const {
  if (normalized.empty()) return {};
  const Vocab& vocab = *vocab_;

  // Characters, linked within runs; run_starts holds each run's first index.
  std::vector<Symbol> symbols;
  std::vector<int> run_starts;
  symbols.reserve(normalized.size());
  {
    std::string_view rest = normalized;
    while (!rest.empty()) {
      Symbol s;
      const size_t user_len = vocab.user_defined().longest_prefix(rest);
      s.freeze = user_len > 0;
      const size_t len = s.freeze ? user_len : std::min<size_t>(rest.size(), one_char_len(rest[0]));
      s.piece = rest.substr(0, len);
      rest.remove_prefix(len);
      const int index = static_cast<int>(symbols.size());
      const bool cut = index == 0 || (split_runs_ && (s.freeze || symbols.back().freeze ||
                                                      !inner_pairs_.contains(pack_pair(symbols.back().piece, s.piece))));
      if (cut) {
        if (index > 0) symbols.back().next = -1;
        run_starts.push_back(index);
        s.prev = -1;
      } else {
        symbols.back().next = index;
        s.prev = index - 1;
      }
      s.next = -1;
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

  for (const int start : run_starts) {
    for (int i = start; symbols[i].next != -1; i = symbols[i].next) maybe_add_pair(i, symbols[i].next);
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
  for (const int start : run_starts) {
    for (int i = start; i != -1; i = symbols[i].next) resegment(resegment, symbols[i].piece);
  }
  return out;
}

}  // namespace longbow::spm
