#include "server/structured/stack_arena.h"

#include <algorithm>

namespace longbow::structured {

int32_t StackArena::push(int32_t pos, int32_t parent, int32_t count) {
  frames_.push_back(StackFrame{pos, parent, count});
  return static_cast<int32_t>(frames_.size()) - 1;
}

void StackArena::expand(int32_t pos, int32_t parent, int32_t count, StackSet& out) {
  for (;;) {
    const Element& el = g_->elements[static_cast<size_t>(pos)];
    if (el.kind == Element::Kind::kEnd) {
      if (parent == kRootParent) {
        out.complete = true;
        return;
      }
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
    const Seen key{pos, parent, count};
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) return;
    seen_.push_back(key);
    if (el.kind == Element::Kind::kBytes) {
      out.tops.push_back(push(pos, parent));
      return;
    }
    if (el.kind == Element::Kind::kLoop) {
      const Loop& loop = g_->loops[static_cast<size_t>(el.index)];
      if (loop.max == kUnbounded || count < loop.max) {
        const int32_t again = push(pos, parent, count + 1);
        for (const int32_t start : g_->rules[static_cast<size_t>(loop.body_rule)]) expand(start, again, 0, out);
      }
      if (count < loop.min) return;
      pos += 1;
      count = 0;
      continue;
    }
    const Element& next = g_->elements[static_cast<size_t>(pos) + 1];
    const int32_t ret = next.kind == Element::Kind::kEnd ? parent : push(pos + 1, parent);
    for (const int32_t start : g_->rules[static_cast<size_t>(el.index)]) expand(start, ret, 0, out);
    return;
  }
}

void StackArena::start(int32_t rule, int32_t parent, StackSet& out) {
  out.clear();
  seen_.clear();
  for (const int32_t s : g_->rules[static_cast<size_t>(rule)]) expand(s, parent, 0, out);
}

void StackArena::advance(std::span<const int32_t> tops, uint8_t byte, StackSet& out) {
  out.clear();
  seen_.clear();
  for (const int32_t t : tops) {
    const StackFrame f = frames_[static_cast<size_t>(t)];
    const Element& el = g_->elements[static_cast<size_t>(f.pos)];
    if (!g_->byte_sets[static_cast<size_t>(el.index)].test(byte)) continue;
    expand(f.pos + 1, f.parent, 0, out);
  }
}

bool StackArena::advance_bytes(std::span<const int32_t> tops, std::string_view bytes, StackSet& out) {
  out.clear();
  if (bytes.empty()) {
    out.tops.assign(tops.begin(), tops.end());
    return true;
  }
  std::span<const int32_t> cur = tops;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const bool last = i + 1 == bytes.size();
    StackSet& dst = last ? out : scratch_[i % 2];
    advance(cur, static_cast<uint8_t>(bytes[i]), dst);
    if (!last && dst.tops.empty()) {
      out.clear();
      return false;
    }
    cur = dst.tops;
  }
  return !out.tops.empty() || out.complete;
}

}  // namespace longbow::structured
