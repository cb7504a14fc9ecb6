// The matcher's pushdown stacks: a forest of immutable frames in one arena. A stack is named by its
// top frame; frames share their parents, so copying a matcher state copies only its top ids.
// A top frame is a continuation: the element it names is the next to process, and it is expanded
// only when the next byte is known (one byte of lookahead), so alternatives that cannot start with
// that byte are never pushed. Frames are allocated stack-wise: mark()/rollback() discard every frame
// made since a mark, which the token-mask walk does after trying each trie branch.
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
  int32_t pos;     // the next element to process (a kEnd returns to the parent)
  int32_t parent;  // the frame to return to, or kRootParent / kBoundary
  int32_t count;   // at a kLoop element: the iterations completed; else 0
};

// The live stacks after some input: their top frame ids. After at least one byte every stack
// listed can still be completed (all rules are productive), so a non-empty set is alive.
struct StackSet {
  std::vector<int32_t> tops;
  bool boundary = false;  // some stack ended a kBoundary frame on the last byte (mask-cache walks)

  void clear() {
    tops.clear();
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

  // The stacks of `tops` that accept `byte`, advanced past it. `out` must not alias `tops`.
  void advance(std::span<const int32_t> tops, uint8_t byte, StackSet& out);
  // Feeds `bytes` one at a time; true when some stack survives all of them.
  bool advance_bytes(std::span<const int32_t> tops, std::string_view bytes, StackSet& out);
  // Whether some stack can end the root without another byte (the input so far is a sentence).
  bool can_complete(std::span<const int32_t> tops);

 private:
  void expand(int32_t pos, int32_t parent, int32_t count, uint8_t byte, StackSet& out);
  bool completes(int32_t pos, int32_t parent, int32_t count);

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
