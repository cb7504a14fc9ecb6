#include "server/structured/char_class.h"

#include <algorithm>
#include <array>

namespace longbow::structured {

CharClass CharClass::any() {
  CharClass c;
  c.add(0, 0xD7FF);
  c.add(0xE000, kMaxCodePoint);
  return c;
}

void CharClass::add(uint32_t lo, uint32_t hi) {
  if (lo > hi) return;
  ranges_.emplace_back(lo, std::min(hi, kMaxCodePoint));
  normalize();
}

void CharClass::add(const CharClass& other) {
  ranges_.insert(ranges_.end(), other.ranges_.begin(), other.ranges_.end());
  normalize();
}

void CharClass::normalize() {
  std::sort(ranges_.begin(), ranges_.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (const auto& r : ranges_) {
    if (!merged.empty() && r.first <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  ranges_ = std::move(merged);
}

bool CharClass::contains(uint32_t cp) const {
  for (const auto& r : ranges_) {
    if (cp >= r.first && cp <= r.second) return true;
  }
  return false;
}

CharClass CharClass::minus(const CharClass& other) const {
  CharClass out;
  for (const auto& r : ranges_) {
    uint32_t lo = r.first;
    bool done = false;
    for (const auto& o : other.ranges_) {
      if (o.second < lo || o.first > r.second) continue;
      if (o.first > lo) out.ranges_.emplace_back(lo, o.first - 1);
      if (o.second >= r.second) {
        done = true;
        break;
      }
      lo = o.second + 1;
    }
    if (!done) out.ranges_.emplace_back(lo, r.second);
  }
  out.normalize();
  return out;
}

CharClass CharClass::complement() const { return any().minus(*this); }

namespace {

int utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

std::array<uint8_t, 4> utf8_bytes(uint32_t cp, int n) {
  std::array<uint8_t, 4> b{};
  if (n == 1) {
    b[0] = static_cast<uint8_t>(cp);
  } else if (n == 2) {
    b[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    b[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  } else if (n == 3) {
    b[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    b[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    b[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  } else {
    b[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
    b[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
    b[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    b[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  }
  return b;
}

ExprPtr byte_range(uint8_t lo, uint8_t hi) {
  ByteSet set;
  for (int b = lo; b <= hi; ++b) set.set(static_cast<size_t>(b));
  return bytes_expr(set);
}

// Byte sequences from lo[i..n) to hi[i..n) inclusive (lexicographic order equals code point order
// for equal-length UTF-8); continuation bytes span 0x80..0xBF.
ExprPtr sequences(const std::array<uint8_t, 4>& lo, const std::array<uint8_t, 4>& hi, int i, int n) {
  if (i == n - 1) return byte_range(lo[static_cast<size_t>(i)], hi[static_cast<size_t>(i)]);
  const uint8_t a = lo[static_cast<size_t>(i)];
  const uint8_t b = hi[static_cast<size_t>(i)];
  if (a == b) return seq({byte_range(a, a), sequences(lo, hi, i + 1, n)});
  bool lo_min = true;
  bool hi_max = true;
  for (int k = i + 1; k < n; ++k) {
    lo_min = lo_min && lo[static_cast<size_t>(k)] == 0x80;
    hi_max = hi_max && hi[static_cast<size_t>(k)] == 0xBF;
  }
  std::array<uint8_t, 4> top{};
  std::array<uint8_t, 4> bottom{};
  for (int k = 0; k < 4; ++k) {
    top[static_cast<size_t>(k)] = 0xBF;
    bottom[static_cast<size_t>(k)] = 0x80;
  }
  std::vector<ExprPtr> options;
  uint8_t mid_lo = a;
  uint8_t mid_hi = b;
  if (!lo_min) {
    options.push_back(seq({byte_range(a, a), sequences(lo, top, i + 1, n)}));
    mid_lo = static_cast<uint8_t>(a + 1);
  }
  if (!hi_max) {
    options.push_back(seq({byte_range(b, b), sequences(bottom, hi, i + 1, n)}));
    mid_hi = static_cast<uint8_t>(b - 1);
  }
  if (mid_lo <= mid_hi) {
    std::vector<ExprPtr> parts{byte_range(mid_lo, mid_hi)};
    for (int k = i + 1; k < n; ++k) parts.push_back(byte_range(0x80, 0xBF));
    options.push_back(seq(std::move(parts)));
  }
  return alt(std::move(options));
}

}  // namespace

ExprPtr CharClass::to_utf8_expr() const {
  std::vector<ExprPtr> options;
  ByteSet ascii;
  for (const auto& [first, last] : ranges_) {
    uint32_t lo = first;
    while (lo <= last) {
      const int n = utf8_length(lo);
      const uint32_t len_max = n == 1 ? 0x7F : n == 2 ? 0x7FF : n == 3 ? 0xFFFF : kMaxCodePoint;
      const uint32_t hi = std::min(last, len_max);
      if (n == 1) {
        for (uint32_t c = lo; c <= hi; ++c) ascii.set(c);
      } else {
        options.push_back(sequences(utf8_bytes(lo, n), utf8_bytes(hi, n), 0, n));
      }
      lo = hi + 1;
    }
  }
  if (ascii.any()) options.insert(options.begin(), bytes_expr(ascii));
  return alt(std::move(options));
}

}  // namespace longbow::structured
