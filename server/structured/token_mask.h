// TokenMasker: per-step token masks for one grammar over one vocabulary.
//
// A token is allowed when the matcher can accept all of its bytes; stop tokens exactly when the
// match is complete. The work per step is split as XGrammar splits it:
//  - For each live stack, the frames of its top `context_depth` levels decide most tokens on their
//    own. Walking the vocabulary trie from just those frames (with a cut below them) sorts every
//    token into accepted (consumed inside those frames: accepted whatever lies below), rejected (dies
//    inside them) or uncertain (reaches the cut: depends on the frames below). The result is cached
//    by the frames' grammar positions and shared by every request on this grammar.
//  - Per step, the mask is the union of the cached accepted sets of the live stacks, plus each
//    uncertain token checked through the request's matcher.
// Cache entries are computed on first use; a warm grammar costs one bitset OR per stack plus the
// uncertain checks.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/structured/grammar.h"
#include "server/structured/matcher.h"
#include "server/structured/vocabulary.h"

namespace longbow::structured {

class TokenMasker {
 public:
  struct Options {
    int context_depth = 4;  // stack levels a cache entry covers
    // Loop frames whose remaining bounds (iterations still required / allowed) exceed the longest
    // token share one exact cache entry per loop position; bounds between this and the longest
    // token share one entry too, whose tokens longer than this are checked per step instead
    // (tokens past 24 bytes are 0.3% of Llama-3's vocabulary).
    int short_token_bytes = 24;
  };
  TokenMasker(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const Vocabulary> vocab, Options options);
  TokenMasker(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const Vocabulary> vocab)
      : TokenMasker(std::move(grammar), std::move(vocab), Options{}) {}

  // mask gets vocab.mask_words() words; bit (id % 64) of word (id / 64) set = token id allowed.
  // `matcher` must run this masker's grammar; its state is unchanged on return.
  void fill_mask(GrammarMatcher& matcher, std::vector<uint64_t>& mask);

  // Every token tried through the matcher (the oracle for tests).
  static void fill_mask_brute_force(GrammarMatcher& matcher, const Vocabulary& vocab, std::vector<uint64_t>& mask);

  size_t cache_entries() const;
  const Vocabulary& vocabulary() const { return *vocab_; }
  const std::shared_ptr<const Grammar>& grammar() const { return grammar_; }

 private:
  struct Entry {
    std::vector<uint64_t> accepted;  // by token id
    std::vector<int32_t> uncertain;  // token ids
  };
  const Entry& entry_for(const GrammarMatcher& matcher, int32_t top);
  void compute(const std::vector<StackFrame>& chain, bool reaches_root, bool clipped, Entry& entry);

  std::shared_ptr<const Grammar> grammar_;
  std::shared_ptr<const Vocabulary> vocab_;
  Options options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Entry>> cache_;
  StackArena walk_arena_;
  int32_t max_token_bytes_ = 0;
  std::vector<uint32_t> checked_epoch_;  // by token id: the fill_mask call that already tried it
  uint32_t epoch_ = 0;
};

inline bool mask_allows(const std::vector<uint64_t>& mask, int32_t id) {
  return (mask[static_cast<size_t>(id) / 64] >> (static_cast<size_t>(id) % 64)) & 1U;
}

}  // namespace longbow::structured
