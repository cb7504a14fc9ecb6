#include "server/structured/token_mask.h"

#include <algorithm>
#include <utility>

namespace longbow::structured {

namespace {

void set_bit(std::vector<uint64_t>& mask, int32_t id) {
  mask[static_cast<size_t>(id) / 64] |= uint64_t{1} << (static_cast<size_t>(id) % 64);
}

void finish_stops(const GrammarMatcher& matcher, const Vocabulary& vocab, std::vector<uint64_t>& mask) {
  for (const int32_t id : vocab.stop_ids()) {
    if (id < 0 || id >= vocab.size()) continue;
    const uint64_t bit = uint64_t{1} << (static_cast<size_t>(id) % 64);
    if (matcher.is_complete()) {
      mask[static_cast<size_t>(id) / 64] |= bit;
    } else {
      mask[static_cast<size_t>(id) / 64] &= ~bit;
    }
  }
}

}  // namespace

TokenMasker::TokenMasker(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const Vocabulary> vocab,
                         Options options)
    : grammar_(std::move(grammar)),
      vocab_(std::move(vocab)),
      options_(options),
      walk_arena_(grammar_.get()),
      checked_epoch_(static_cast<size_t>(vocab_->size()), 0) {
  options_.context_depth = std::max(1, options_.context_depth);
  for (int32_t id = 0; id < vocab_->size(); ++id) {
    max_token_bytes_ = std::max(max_token_bytes_, static_cast<int32_t>(vocab_->bytes(id).size()));
  }
}

size_t TokenMasker::cache_entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.size();
}

void TokenMasker::fill_mask_brute_force(GrammarMatcher& matcher, const Vocabulary& vocab,
                                        std::vector<uint64_t>& mask) {
  mask.assign(vocab.mask_words(), 0);
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& b = vocab.bytes(id);
    if (!b.empty() && matcher.can_accept(b)) set_bit(mask, id);
  }
  finish_stops(matcher, vocab, mask);
}

void TokenMasker::fill_mask(GrammarMatcher& matcher, std::vector<uint64_t>& mask) {
  const size_t words = vocab_->mask_words();
  mask.assign(words, 0);
  std::lock_guard<std::mutex> lock(mu_);
  if (++epoch_ == 0) {
    std::fill(checked_epoch_.begin(), checked_epoch_.end(), 0);
    epoch_ = 1;
  }
  const std::vector<int32_t> tops = matcher.state().tops;
  std::vector<const Entry*> entries;
  entries.reserve(tops.size());
  for (const int32_t top : tops) {
    const Entry& e = entry_for(matcher, top);
    entries.push_back(&e);
    for (size_t w = 0; w < words; ++w) mask[w] |= e.accepted[w];
  }
  for (const Entry* e : entries) {
    for (const int32_t id : e->uncertain) {
      if (mask_allows(mask, id) || checked_epoch_[static_cast<size_t>(id)] == epoch_) continue;
      checked_epoch_[static_cast<size_t>(id)] = epoch_;
      if (matcher.can_accept(vocab_->bytes(id))) set_bit(mask, id);
    }
  }
  finish_stops(matcher, *vocab_, mask);
}

const TokenMasker::Entry& TokenMasker::entry_for(const GrammarMatcher& matcher, int32_t top) {
  // The key: the top context_depth frames' grammar positions, loop counts reduced to what a short
  // token can observe (iterations still required / still allowed, each capped at clip: every
  // iteration consumes a byte, so frames equal up to the cap agree on every token of at most
  // short_token_bytes bytes).
  const int32_t clip = options_.short_token_bytes + 1;
  bool clipped = false;  // some bound was reduced to `clip`: long tokens are decided per step
  // A bound above every token's length is invisible to all tokens: one exact key value.
  const int32_t far = std::max(max_token_bytes_, clip) + 1;
  auto reduce = [&](int32_t v) {
    if (v >= far) return far + 1;
    if (v > clip) {
      clipped = true;
      return clip;
    }
    return v;
  };
  std::vector<StackFrame> chain;
  std::vector<int32_t> key_ints;
  bool reaches_root = false;
  int32_t id = top;
  while (static_cast<int>(chain.size()) < options_.context_depth) {
    const StackFrame& f = matcher.arena().frame(id);
    chain.push_back(f);
    key_ints.push_back(f.pos);
    const Element& el = grammar_->elements[static_cast<size_t>(f.pos)];
    if (el.kind == Element::Kind::kLoop) {
      const Loop& loop = grammar_->loops[static_cast<size_t>(el.index)];
      const int32_t need = std::max(loop.min - f.count, 0);
      const int32_t room = loop.max == kUnbounded ? far : loop.max - f.count;
      key_ints.push_back(reduce(need));
      key_ints.push_back(reduce(room));
    }
    if (f.parent < 0) {
      reaches_root = true;
      break;
    }
    id = f.parent;
  }
  std::string key(reinterpret_cast<const char*>(key_ints.data()), key_ints.size() * sizeof(int32_t));
  key.push_back(reaches_root ? 'r' : 'c');
  auto it = cache_.find(key);
  if (it != cache_.end()) return *it->second;
  auto entry = std::make_unique<Entry>();
  compute(chain, reaches_root, clipped, *entry);
  const Entry& ref = *entry;
  cache_.emplace(std::move(key), std::move(entry));
  return ref;
}

void TokenMasker::compute(const std::vector<StackFrame>& chain, bool reaches_root, bool clipped, Entry& entry) {
  const std::vector<Vocabulary::Node>& nodes = vocab_->nodes();
  const std::vector<int32_t>& sorted = vocab_->sorted_ids();
  entry.accepted.assign(vocab_->mask_words(), 0);
  walk_arena_.rollback(0);
  int32_t parent = reaches_root ? kRootParent : kBoundary;
  for (size_t k = chain.size(); k-- > 0;) parent = walk_arena_.push(chain[k].pos, parent, chain[k].count);

  // Depth-first over the trie; states[d] holds the stacks after the first d bytes of the path.
  std::vector<StackSet> states(1);
  states[0].tops = {parent};
  struct Visit {
    int32_t node;
    int32_t next_child;
    size_t mark;
  };
  std::vector<Visit> path{{0, nodes[0].child_begin, walk_arena_.mark()}};
  std::vector<std::pair<int32_t, int32_t>> boundary_ranges;  // in sorted-index space
  while (!path.empty()) {
    Visit& v = path.back();
    if (v.next_child == nodes[static_cast<size_t>(v.node)].child_end) {
      walk_arena_.rollback(v.mark);
      path.pop_back();
      continue;
    }
    const int32_t c = v.next_child++;
    const Vocabulary::Node& child = nodes[static_cast<size_t>(c)];
    const size_t depth = path.size();
    if (states.size() <= depth) states.resize(depth + 1);
    const size_t mark = walk_arena_.mark();
    walk_arena_.advance(states[depth - 1].tops, child.byte, states[depth]);
    const StackSet& s = states[depth];
    if (s.boundary) boundary_ranges.emplace_back(child.tok_begin, child.sub_end);
    if (!s.tops.empty()) {
      for (int32_t i = child.tok_begin; i < child.tok_end; ++i) set_bit(entry.accepted, sorted[static_cast<size_t>(i)]);
    }
    if (!s.tops.empty() && child.child_begin != child.child_end) {
      path.push_back(Visit{c, child.child_begin, mark});
    } else {
      walk_arena_.rollback(mark);
    }
  }
  for (const auto& [lo, hi] : boundary_ranges) {
    for (int32_t i = lo; i < hi; ++i) {
      const int32_t id = sorted[static_cast<size_t>(i)];
      if (!mask_allows(entry.accepted, id)) entry.uncertain.push_back(id);
    }
  }
  if (clipped) {
    // This entry stands for frames with other loop counts too: long tokens are decided per step.
    for (int32_t id = 0; id < vocab_->size(); ++id) {
      if (static_cast<int>(vocab_->bytes(id).size()) > options_.short_token_bytes) {
        entry.accepted[static_cast<size_t>(id) / 64] &= ~(uint64_t{1} << (static_cast<size_t>(id) % 64));
        entry.uncertain.push_back(id);
      }
    }
  }
  std::sort(entry.uncertain.begin(), entry.uncertain.end());
  entry.uncertain.erase(std::unique(entry.uncertain.begin(), entry.uncertain.end()), entry.uncertain.end());
}

}  // namespace longbow::structured
