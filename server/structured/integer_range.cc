#include "server/structured/integer_range.h"

#include <algorithm>
#include <string>
#include <vector>

namespace longbow::structured {

namespace {

ExprPtr digits(char lo, char hi) {
  ByteSet set;
  for (char c = lo; c <= hi; ++c) set.set(static_cast<uint8_t>(c));
  return bytes_expr(set);
}

bool all_of(const std::string& s, size_t from, char c) {
  return std::all_of(s.begin() + static_cast<std::ptrdiff_t>(from), s.end(), [c](char x) { return x == c; });
}

// Digit strings of x's length from x to y inclusive (x <= y, equal lengths), from position i on.
ExprPtr same_length(const std::string& x, const std::string& y, size_t i) {
  const size_t n = x.size();
  if (i == n) return epsilon();
  if (x[i] == y[i]) return seq({digits(x[i], x[i]), same_length(x, y, i + 1)});
  const size_t rest = n - i - 1;
  auto any_digits = [&](ExprPtr head) {
    return seq({std::move(head), repeat(digits('0', '9'), static_cast<int>(rest), static_cast<int>(rest))});
  };
  const bool low_full = all_of(x, i + 1, '0');
  const bool high_full = all_of(y, i + 1, '9');
  std::vector<ExprPtr> options;
  char mid_lo = x[i];
  char mid_hi = y[i];
  if (!low_full) {
    options.push_back(seq({digits(x[i], x[i]), same_length(x, std::string(x.substr(0, i + 1)) + std::string(rest, '9'), i + 1)}));
    ++mid_lo;
  }
  if (!high_full) {
    options.push_back(seq({digits(y[i], y[i]), same_length(std::string(y.substr(0, i + 1)) + std::string(rest, '0'), y, i + 1)}));
    --mid_hi;
  }
  if (mid_lo <= mid_hi) options.push_back(any_digits(digits(mid_lo, mid_hi)));
  return alt(std::move(options));
}

uint64_t pow10(size_t k) {
  uint64_t v = 1;
  for (size_t i = 0; i < k; ++i) v *= 10;
  return v;
}

// Canonical spellings of [lo, hi], 0 <= lo <= hi.
ExprPtr unsigned_range(uint64_t lo, uint64_t hi) {
  std::vector<ExprPtr> options;
  const size_t len_lo = std::to_string(lo).size();
  const size_t len_hi = std::to_string(hi).size();
  for (size_t len = len_lo; len <= len_hi; ++len) {
    const uint64_t a = std::max(lo, len == 1 ? 0 : pow10(len - 1));
    const uint64_t b = std::min(hi, pow10(len) - 1);
    if (a > b) continue;
    options.push_back(same_length(std::to_string(a), std::to_string(b), 0));
  }
  return alt(std::move(options));
}

}  // namespace

ExprPtr integer_range(int64_t lo, int64_t hi) {
  std::vector<ExprPtr> options;
  if (hi >= 0) options.push_back(unsigned_range(static_cast<uint64_t>(std::max<int64_t>(lo, 0)), static_cast<uint64_t>(hi)));
  if (lo < 0) {
    const int64_t neg_hi = std::min<int64_t>(hi, -1);
    options.push_back(seq({literal("-"), unsigned_range(static_cast<uint64_t>(-neg_hi), static_cast<uint64_t>(-lo))}));
  }
  return alt(std::move(options));
}

}  // namespace longbow::structured
