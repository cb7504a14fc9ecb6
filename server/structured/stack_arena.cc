#include "server/structured/stack_arena.h"

#include <algorithm>

namespace longbow::structured {

int32_t StackArena::push(int32_t pos, int32_t parent, int32_t count) {
  frames_.push_back(StackFrame{pos, parent, count});
  return static_cast<int32_t>(frames_.size()) - 1;
}

// Follows the frame (pos, parent, count) through rule references, loops and returns until byte
// elements, keeping the paths whose byte class holds `byte`: each such path becomes a top frame at
// the element after the byte. A rule reference in tail position reuses the parent (no return frame).
void StackArena::expand(int32_t pos, int32_t parent, int32_t count, uint8_t byte, StackSet& out) {
  for (;;) {
    const auto p = static_cast<size_t>(pos);
    const Element& el = g_->elements[p];
    if (el.kind == Element::Kind::kEnd) {
      if (parent == kRootParent) return;
      if (parent == kBoundary) {
        out.boundary = true;
        return;
      }
      const StackFrame f = frames_[static_cast<size_t>(parent)];
      pos = f.pos;
      parent = f.parent;
      count = f.count;
      continue;
    }
    if (!g_->may_pass[p] && !g_->first[p].test(byte)) return;
    const Seen key{pos, parent, count};
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return;
    seen_.push_back(key);
    if (el.kind == Element::Kind::kBytes) {
      if (g_->byte_sets[static_cast<size_t>(el.index)].test(byte)) out.tops.push_back(push(pos + 1, parent));
      return;
    }
    if (el.kind == Element::Kind::kLoop) {
      const Loop& loop = g_->loops[static_cast<size_t>(el.index)];
      if (loop.max == kUnbounded || count < loop.max) {
        // (An unused frame stays: ids named in seen_ must not be reused within a step.)
        const int32_t again = push(pos, parent, count + 1);
        for (const int32_t start : g_->rules[static_cast<size_t>(loop.body_rule)]) expand(start, again, 0, byte, out);
      }
      if (count < loop.min) return;
      pos += 1;
      count = 0;
      continue;
    }
    const Element& next = g_->elements[p + 1];
    const int32_t ret = next.kind == Element::Kind::kEnd ? parent : push(pos + 1, parent);
    for (const int32_t start : g_->rules[static_cast<size_t>(el.index)]) expand(start, ret, 0, byte, out);
    return;
  }
}

bool StackArena::completes(int32_t pos, int32_t parent, int32_t count) {
  for (;;) {
    const Element& el = g_->elements[static_cast<size_t>(pos)];
    if (el.kind == Element::Kind::kEnd) {
      if (parent == kRootParent) return true;
      if (parent == kBoundary) return false;
      const StackFrame f = frames_[static_cast<size_t>(parent)];
      pos = f.pos;
      parent = f.parent;
      count = f.count;
      continue;
    }
    if (el.kind == Element::Kind::kBytes || !g_->may_pass[static_cast<size_t>(pos)]) return false;
    const Seen key{pos, parent, count};
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return false;
    seen_.push_back(key);
    if (el.kind == Element::Kind::kLoop) {
      // Iterations consume bytes, so only leaving the loop can complete.
      if (count < g_->loops[static_cast<size_t>(el.index)].min) return false;
      pos += 1;
      count = 0;
      continue;
    }
    // A rule reference: some alternative derives nothing, then the rest of this frame completes.
    // (The return frame stays: ids named in seen_ must not be reused within a query.)
    const int32_t ret = push(pos + 1, parent);
    for (const int32_t start : g_->rules[static_cast<size_t>(el.index)]) {
      if (completes(start, ret, 0)) return true;
    }
    return false;
  }
}

bool StackArena::can_complete(std::span<const int32_t> tops) {
  seen_.clear();
  for (const int32_t t : tops) {
    const StackFrame f = frames_[static_cast<size_t>(t)];
    if (completes(f.pos, f.parent, f.count)) return true;
  }
  return false;
}

void StackArena::advance(std::span<const int32_t> tops, uint8_t byte, StackSet& out) {
  out.clear();
  seen_.clear();
  for (const int32_t t : tops) {
    const StackFrame f = frames_[static_cast<size_t>(t)];
    expand(f.pos, f.parent, f.count, byte, out);
  }
}

bool StackArena::advance_bytes(std::span<const int32_t> tops, std::string_view bytes, StackSet& out) {
  out.clear();
  if (bytes.empty()) {
    out.tops.assign(tops.begin(), tops.end());
    return !out.tops.empty();
  }
  std::span<const int32_t> cur = tops;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const bool last = i + 1 == bytes.size();
    StackSet& dst = last ? out : scratch_[i % 2];
    advance(cur, static_cast<uint8_t>(bytes[i]), dst);
    if (dst.tops.empty()) {
      out.clear();
      return false;
    }
    cur = dst.tops;
  }
  return true;
}

}  // namespace longbow::structured
