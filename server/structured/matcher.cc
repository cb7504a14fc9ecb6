#include "server/structured/matcher.h"

#include <utility>

namespace longbow::structured {

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar)
    : grammar_(std::move(grammar)), arena_(grammar_.get()) {
  state_.tops.push_back(arena_.push(grammar_->start_pos, kRootParent));
  complete_ = arena_.can_complete(state_.tops);
}

bool GrammarMatcher::is_terminated() {
  for (int b = 0; b < 256; ++b) {
    if (can_accept(std::string(1, static_cast<char>(b)))) return false;
  }
  return true;
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  const size_t mark = arena_.mark();
  if (!arena_.advance_bytes(state_.tops, bytes, next_)) {
    arena_.rollback(mark);
    return false;
  }
  history_.push_back(Snapshot{state_.tops, complete_, mark, 0});
  std::swap(state_, next_);
  if (!bytes.empty()) complete_ = arena_.can_complete(state_.tops);
  return true;
}

bool GrammarMatcher::can_accept(std::string_view bytes) {
  if (bytes.empty()) return true;
  const size_t mark = arena_.mark();
  const bool ok = arena_.advance_bytes(state_.tops, bytes, next_);
  arena_.rollback(mark);
  return ok;
}

void GrammarMatcher::rollback(size_t n) {
  if (n == 0 || n > history_.size()) return;
  const Snapshot& s = history_[history_.size() - n];
  state_.clear();
  state_.tops = s.tops;
  complete_ = s.complete;
  arena_.rollback(s.arena_size);
  history_.resize(history_.size() - n);
}

GrammarMatcher::Snapshot GrammarMatcher::snapshot() const {
  return Snapshot{state_.tops, complete_, arena_.mark(), history_.size()};
}

void GrammarMatcher::restore(const Snapshot& s) {
  state_.clear();
  state_.tops = s.tops;
  complete_ = s.complete;
  arena_.rollback(s.arena_size);
  if (history_.size() > s.history_size) history_.resize(s.history_size);
}

}  // namespace longbow::structured
