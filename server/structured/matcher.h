// GrammarMatcher: one request's position in a grammar. Accepts a token's bytes all-or-nothing,
// says whether the output so far is a complete sentence (EOS allowed), and rolls back cheaply: a
// state is the list of its stacks' top frame ids plus the arena size (frames are immutable).
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "server/structured/grammar.h"
#include "server/structured/stack_arena.h"

namespace longbow::structured {

class GrammarMatcher {
 public:
  explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar);

  struct Snapshot {
    std::vector<int32_t> tops;
    bool complete = false;
    size_t arena_size = 0;
    size_t history_size = 0;
  };

  // Advances past `bytes` when some stack survives them; otherwise returns false and changes nothing.
  bool accept_bytes(std::string_view bytes);
  // Whether accept_bytes(bytes) would succeed; the state is unchanged either way.
  bool can_accept(std::string_view bytes);
  // The output so far is a sentence of the grammar: stopping (EOS) is allowed here.
  bool is_complete() const { return complete_; }
  // No byte can follow (only EOS, when complete).
  bool is_terminated();

  // Undoes the last `n` successful accept_bytes calls (n <= accepted_count()).
  void rollback(size_t n);
  size_t accepted_count() const { return history_.size(); }
  Snapshot snapshot() const;
  // Returns to a snapshot taken earlier on the current path (not one that rollback/restore undid).
  void restore(const Snapshot& s);

  const StackSet& state() const { return state_; }
  StackArena& arena() { return arena_; }
  const StackArena& arena() const { return arena_; }
  const Grammar& grammar() const { return *grammar_; }
  const std::shared_ptr<const Grammar>& grammar_ptr() const { return grammar_; }

 private:
  std::shared_ptr<const Grammar> grammar_;
  StackArena arena_;
  StackSet state_;
  bool complete_ = false;
  StackSet next_;
  // One entry per accepted call: the state before it and the arena size then.
  std::vector<Snapshot> history_;
};

}  // namespace longbow::structured
