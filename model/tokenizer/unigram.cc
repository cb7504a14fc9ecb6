#include "model/tokenizer/unigram.h"

#include <algorithm>
#include <cfloat>
#include <utility>
#include <vector>

#include "model/tokenizer/utf8.h"

namespace longbow::spm {
namespace {

constexpr float kUnkPenalty = 10.0f;

}  // namespace

StatusOr<UnigramModel> UnigramModel::create(const Vocab& vocab) {
  UnigramModel m;
  m.vocab_ = &vocab;
  // The library starts from FLT_MAX / FLT_MIN (the smallest positive float, not -FLT_MAX): with
  // only negative scores max_score_ stays FLT_MIN. Kept for identical user-defined scores.
  m.min_score_ = FLT_MAX;
  m.max_score_ = FLT_MIN;
  std::vector<std::pair<std::string_view, int32_t>> entries;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const PieceType t = vocab.type(id);
    if (t == PieceType::kNormal) {
      m.min_score_ = std::min(m.min_score_, vocab.score(id));
      m.max_score_ = std::max(m.max_score_, vocab.score(id));
    }
    if (t == PieceType::kNormal || t == PieceType::kUserDefined || t == PieceType::kUnused) {
      entries.emplace_back(vocab.piece(id), id);
    }
  }
  if (entries.empty()) return invalid_argument("unigram model: no pieces to segment with");
  m.trie_ = PieceTrie::build(std::move(entries));
  return m;
}

Segments UnigramModel::segment(std::string_view normalized) const {
  if (normalized.empty()) return {};

  // best[i]: the best path covering normalized[0, i), ending in piece `id` that starts at
  // `starts_at`. The score is stored as float, but candidates for vocabulary pieces are formed
  // and compared in double, exactly as the library's `auto` arithmetic does.
  struct BestPathNode {
    int32_t id = -1;
    float best_path_score = 0;
    int64_t starts_at = -1;
  };
  const size_t size = normalized.size();
  const float unk_score = min_score_ - kUnkPenalty;
  std::vector<BestPathNode> best(size + 1);

  size_t starts_at = 0;
  while (starts_at < size) {
    const float score_till_here = best[starts_at].best_path_score;
    bool has_single_node = false;
    const size_t mblen = std::min<size_t>(one_char_len(normalized[starts_at]), size - starts_at);
    trie_.for_each_prefix(normalized.substr(starts_at), [&](size_t length, int32_t id) {
      const PieceType t = vocab_->type(id);
      if (t == PieceType::kUnused) return;
      BestPathNode& target = best[starts_at + length];
      const double score = t == PieceType::kUserDefined
                               ? static_cast<double>(static_cast<float>(length) * max_score_) - 0.1
                               : static_cast<double>(vocab_->score(id));
      const double candidate = score + static_cast<double>(score_till_here);
      if (target.starts_at == -1 || candidate > static_cast<double>(target.best_path_score)) {
        target.best_path_score = static_cast<float>(candidate);
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = id;
      }
      if (length == mblen) has_single_node = true;
    });
    if (!has_single_node) {
      BestPathNode& target = best[starts_at + mblen];
      const float candidate = unk_score + score_till_here;
      if (target.starts_at == -1 || candidate > target.best_path_score) {
        target.best_path_score = candidate;
        target.starts_at = static_cast<int64_t>(starts_at);
        target.id = vocab_->unk_id();
      }
    }
    starts_at += mblen;
  }

  Segments out;
  size_t ends_at = size;
  while (ends_at > 0) {
    const BestPathNode& node = best[ends_at];
    // Every end position reached here was written (each character start gets a piece of one
    // character or an unknown node); the check only guards against a broken invariant.
    if (node.starts_at < 0) break;
    const auto begin = static_cast<size_t>(node.starts_at);
    out.push_back({normalized.substr(begin, ends_at - begin), node.id});
    ends_at = begin;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace longbow::spm
