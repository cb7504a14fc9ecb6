// The matcher's pushdown stacks: a forest of immutable frames in one arena. A stack is named by its
// top frame; frames share their parents, so copying a matcher state copies only its top ids.
// Frames are allocated stack-wise: mark()/rollback() discard every frame made since a mark, which
// the token-mask walk does after trying each trie branch.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "server/structured/grammar.h"

namespace longbow::structured {

// Parent ids below zero end a stack.
inline constexpr int32_t kRootParent = -1;  // the bottom frame is the grammar's root: ending it completes the match
inline constexpr int32_t kBoundary = -2;    // a cut used by the mask cache: ending it leaves the cached context

struct StackFrame {
  int32_t pos;     // the next element to match (never kEnd in a stored frame)
  int32_t parent;  // the frame to return to, or kRootParent / kBoundary
  int32_t count;   // at a kLoop element: the iterations completed; else 0
};

// A set of live stacks after some input: the ids of their top frames, each at a kBytes element.
struct StackSet {
  std::vector<int32_t> tops;
  bool complete = false;  // some stack ended the root: the input so far is a sentence
  bool boundary = false;  // some stack ended a kBoundary frame (mask-cache walks only)

  bool alive() const { return !tops.empty() || complete || boundary; }
  void clear() {
    tops.clear();
    complete = false;
    boundary = false;
  }
};

class StackArena {
 public:
  explicit StackArena(const Grammar* grammar) : g_(grammar) {}

  const Grammar& grammar() const { return *g_; }
  const StackFrame& frame(int32_t id) const { return frames_[static_cast<size_t>(id)]; }
  int32_t push(int32_t pos, int32_t parent, int32_t count = 0);
  size_t mark() const { return frames_.size(); }
  void rollback(size_t mark) { frames_.resize(mark); }

  // Stacks at the start of a rule's alternatives, under `parent` (the root: kRootParent).
  void start(int32_t rule, int32_t parent, StackSet& out);
  // Every stack of `in` whose top byte class holds `byte`, advanced past it. `out` must not alias `in`.
  void advance(std::span<const int32_t> tops, uint8_t byte, StackSet& out);
  // Feeds `bytes` one at a time; true when some stack survives all of them (or the last byte
  // completed the root). Not for stacks that contain a kBoundary frame.
  bool advance_bytes(std::span<const int32_t> tops, std::string_view bytes, StackSet& out);

 private:
  // Adds the stacks that begin at element `pos` of a frame returning to `parent`: a byte class is a
  // top; a rule reference pushes a return frame (unless it is the last element: tail call) and
  // expands the rule's alternatives; a loop with `count` iterations done may exit (count >= min)
  // and may start another iteration (count < max) under a frame that returns to the loop with
  // count + 1; the end of an alternative returns to the parent.
  void expand(int32_t pos, int32_t parent, int32_t count, StackSet& out);

  const Grammar* g_;
  std::vector<StackFrame> frames_;
  // (pos, parent, count) expanded during the current step: cuts epsilon cycles and duplicates.
  struct Seen {
    int32_t pos, parent, count;
    bool operator==(const Seen&) const = default;
  };
  std::vector<Seen> seen_;
  StackSet scratch_[2];
};

}  // namespace longbow::structured
