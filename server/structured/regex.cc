#include "server/structured/regex.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "server/structured/char_class.h"

namespace longbow::structured {

namespace {

CharClass range_class(uint32_t lo, uint32_t hi) {
  CharClass c;
  c.add(lo, hi);
  return c;
}

CharClass digit_class() { return range_class('0', '9'); }

CharClass word_class() {
  CharClass c = range_class('0', '9');
  c.add('A', 'Z');
  c.add('a', 'z');
  c.add('_', '_');
  return c;
}

CharClass space_class() {
  CharClass c = range_class('\t', '\r');  // \t \n \v \f \r
  c.add(' ', ' ');
  return c;
}

std::string json_escape(uint32_t cp) {
  switch (cp) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    case '\b': return "\\b";
    case '\f': return "\\f";
    default: return fmt::format("\\u{:04x}", cp);
  }
}

class RegexParser {
 public:
  RegexParser(std::string_view p, const RegexOptions& o) : p_(p), opt_(o) {}

  StatusOr<ExprPtr> parse() {
    bool anchored_start = false;
    bool anchored_end = false;
    if (!p_.empty() && p_[0] == '^') {
      anchored_start = true;
      ++i_;
    }
    if (p_.size() > i_ && p_.back() == '$' && !escaped_at(p_.size() - 1)) {
      anchored_end = true;
      p_.remove_suffix(1);
    }
    StatusOr<ExprPtr> body = parse_alternation();
    if (!body.ok()) return body.status();
    if (i_ != p_.size()) return error(fmt::format("unexpected '{}'", p_[i_]));
    if (!opt_.search) return body;
    std::vector<ExprPtr> parts;
    if (!anchored_start) parts.push_back(any_text());
    parts.push_back(std::move(body).value());
    if (!anchored_end) parts.push_back(any_text());
    return seq(std::move(parts));
  }

 private:
  // Whether the character at `pos` is preceded by an odd number of backslashes.
  bool escaped_at(size_t pos) const {
    size_t n = 0;
    while (pos > n && p_[pos - n - 1] == '\\') ++n;
    return n % 2 == 1;
  }

  Status error(const std::string& what) const {
    return invalid_argument(fmt::format("regex '{}': {} at offset {}", std::string(p_), what, i_));
  }
  Status unsupported(const std::string& what) const {
    return unimplemented(fmt::format("regex '{}': {} is not supported", std::string(p_), what));
  }

  ExprPtr chars(const CharClass& c) const {
    if (!opt_.json_string) return c.to_utf8_expr();
    CharClass special = range_class(0, 0x1F);
    special.add('"', '"');
    special.add('\\', '\\');
    std::vector<ExprPtr> options{c.minus(special).to_utf8_expr()};
    for (const auto& [lo, hi] : c.ranges()) {
      for (uint32_t cp = lo; cp <= hi && cp <= '\\'; ++cp) {
        if (special.contains(cp)) options.push_back(literal(json_escape(cp)));
      }
    }
    return alt(std::move(options));
  }

  ExprPtr any_text() const { return repeat(chars(CharClass::any()), 0, opt_.max_repeat < 0 ? kUnbounded : opt_.max_repeat); }

  StatusOr<ExprPtr> parse_alternation() {
    std::vector<ExprPtr> options;
    for (;;) {
      StatusOr<ExprPtr> c = parse_concat();
      if (!c.ok()) return c.status();
      options.push_back(std::move(c).value());
      if (i_ < p_.size() && p_[i_] == '|') {
        ++i_;
        continue;
      }
      break;
    }
    return alt(std::move(options));
  }

  StatusOr<ExprPtr> parse_concat() {
    std::vector<ExprPtr> parts;
    while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') {
      StatusOr<ExprPtr> atom = parse_atom();
      if (!atom.ok()) return atom.status();
      ExprPtr e = std::move(atom).value();
      for (;;) {
        int lo = 0;
        int hi = 0;
        const size_t before = i_;
        if (!parse_quantifier(lo, hi)) {
          i_ = before;
          break;
        }
        if (hi != kUnbounded && hi < lo) return error("repetition {m,n} with n < m");
        if (hi == kUnbounded && opt_.max_repeat >= 0) hi = std::max(lo, opt_.max_repeat);
        if (i_ < p_.size() && p_[i_] == '?') ++i_;  // lazy: same language
        if (i_ < p_.size() && p_[i_] == '+') return unsupported("a possessive quantifier");
        e = repeat(e, lo, hi);
      }
      parts.push_back(std::move(e));
    }
    return seq(std::move(parts));
  }

  bool parse_number(int& out) {
    const size_t start = i_;
    long v = 0;
    while (i_ < p_.size() && p_[i_] >= '0' && p_[i_] <= '9') {
      v = v * 10 + (p_[i_] - '0');
      if (v > 100000) return false;
      ++i_;
    }
    out = static_cast<int>(v);
    return i_ > start;
  }

  // ? * + {m} {m,} {m,n}; false (input position unspecified) when none is here.
  bool parse_quantifier(int& lo, int& hi) {
    if (i_ >= p_.size()) return false;
    const char c = p_[i_];
    if (c == '?' || c == '*' || c == '+') {
      ++i_;
      lo = c == '+' ? 1 : 0;
      hi = c == '?' ? 1 : kUnbounded;
      return true;
    }
    if (c != '{') return false;
    ++i_;
    if (!parse_number(lo)) return false;
    hi = lo;
    if (i_ < p_.size() && p_[i_] == ',') {
      ++i_;
      if (!parse_number(hi)) hi = kUnbounded;
    }
    if (i_ >= p_.size() || p_[i_] != '}') return false;
    ++i_;
    return true;
  }

  bool decode_utf8(uint32_t& cp) {
    const auto b0 = static_cast<uint8_t>(p_[i_]);
    int n = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    if (n == 0 || i_ + static_cast<size_t>(n) > p_.size()) return false;
    cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1F) : n == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < n; ++k) {
      const auto b = static_cast<uint8_t>(p_[i_ + static_cast<size_t>(k)]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    i_ += static_cast<size_t>(n);
    return true;
  }

  bool parse_hex(size_t digits, uint32_t& out) {
    if (i_ + digits > p_.size()) return false;
    out = 0;
    for (size_t k = 0; k < digits; ++k) {
      const char h = p_[i_ + k];
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) return false;
      out = out * 16 + static_cast<uint32_t>(d);
    }
    i_ += digits;
    return true;
  }

  // After a backslash: a class (\d, \w, \s and negations) or one character.
  Status parse_escape(CharClass& out, bool in_class) {
    if (i_ >= p_.size()) return error("trailing backslash");
    const char c = p_[i_++];
    switch (c) {
      case 'd': out = digit_class(); return Status::Ok();
      case 'D': out = digit_class().complement(); return Status::Ok();
      case 'w': out = word_class(); return Status::Ok();
      case 'W': out = word_class().complement(); return Status::Ok();
      case 's': out = space_class(); return Status::Ok();
      case 'S': out = space_class().complement(); return Status::Ok();
      case 'n': out = range_class('\n', '\n'); return Status::Ok();
      case 't': out = range_class('\t', '\t'); return Status::Ok();
      case 'r': out = range_class('\r', '\r'); return Status::Ok();
      case 'f': out = range_class('\f', '\f'); return Status::Ok();
      case 'v': out = range_class('\v', '\v'); return Status::Ok();
      case '0': out = range_class(0, 0); return Status::Ok();
      case 'x':
      case 'u': {
        uint32_t cp = 0;
        if (c == 'u' && i_ < p_.size() && p_[i_] == '{') {
          ++i_;
          const size_t start = i_;
          while (i_ < p_.size() && p_[i_] != '}') ++i_;
          const size_t end = i_;
          i_ = start;
          if (end == start || end - start > 6 || !parse_hex(end - start, cp)) return error("bad \\u{...} escape");
          ++i_;
        } else if (!parse_hex(c == 'x' ? 2 : 4, cp)) {
          return error(fmt::format("bad \\{} escape", c));
        }
        if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) return error("escape is not a Unicode scalar value");
        out = range_class(cp, cp);
        return Status::Ok();
      }
      case 'b':
        if (in_class) {
          out = range_class('\b', '\b');
          return Status::Ok();
        }
        return unsupported("the word boundary \\b");
      case 'B': return unsupported("the non-boundary \\B");
      case 'p':
      case 'P': return unsupported("the Unicode property escape \\p");
      default:
        if (c >= '1' && c <= '9') return unsupported("a backreference");
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return unsupported(fmt::format("the escape \\{}", c));
        --i_;
        uint32_t cp = 0;
        if (!decode_utf8(cp)) return error("invalid UTF-8");
        out = range_class(cp, cp);
        return Status::Ok();
    }
  }

  StatusOr<ExprPtr> parse_class() {
    bool negate = false;
    if (i_ < p_.size() && p_[i_] == '^') {
      negate = true;
      ++i_;
    }
    CharClass set;
    bool first = true;
    for (;;) {
      if (i_ >= p_.size()) return error("unterminated character class");
      if (p_[i_] == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      CharClass item;
      uint32_t lo = 0;
      bool single = true;
      if (p_[i_] == '[' && i_ + 1 < p_.size() && p_[i_ + 1] == ':') return unsupported("a POSIX class [:name:]");
      if (p_[i_] == '\\') {
        ++i_;
        if (Status s = parse_escape(item, true); !s.ok()) return s;
        single = item.ranges().size() == 1 && item.ranges()[0].first == item.ranges()[0].second;
        if (single) lo = item.ranges()[0].first;
      } else {
        if (!decode_utf8(lo)) return error("invalid UTF-8");
        item = range_class(lo, lo);
      }
      // a range lo-hi (a '-' before ']' is a literal)
      if (single && i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
        ++i_;
        uint32_t hi = 0;
        if (p_[i_] == '\\') {
          ++i_;
          CharClass h;
          if (Status s = parse_escape(h, true); !s.ok()) return s;
          if (h.ranges().size() != 1 || h.ranges()[0].first != h.ranges()[0].second) return error("bad class range");
          hi = h.ranges()[0].first;
        } else if (!decode_utf8(hi)) {
          return error("invalid UTF-8");
        }
        if (hi < lo) return error("class range out of order");
        item = range_class(lo, hi);
      }
      set.add(item);
    }
    return chars(negate ? set.complement() : set);
  }

  StatusOr<ExprPtr> parse_atom() {
    const char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (i_ < p_.size() && p_[i_] == '?') {
        ++i_;
        if (i_ < p_.size() && p_[i_] == ':') {
          ++i_;
        } else if (i_ < p_.size() && (p_[i_] == '<' || p_[i_] == 'P')) {
          if (p_[i_] == 'P') ++i_;
          if (i_ < p_.size() && p_[i_] == '<' && i_ + 1 < p_.size() && (p_[i_ + 1] == '=' || p_[i_ + 1] == '!')) {
            return unsupported("lookbehind");
          }
          while (i_ < p_.size() && p_[i_] != '>') ++i_;
          if (i_ >= p_.size()) return error("unterminated group name");
          ++i_;
        } else if (i_ < p_.size() && (p_[i_] == '=' || p_[i_] == '!')) {
          return unsupported("lookahead");
        } else {
          return unsupported("this group syntax (?");
        }
      }
      StatusOr<ExprPtr> inner = parse_alternation();
      if (!inner.ok()) return inner.status();
      if (i_ >= p_.size() || p_[i_] != ')') return error("missing ')'");
      ++i_;
      return inner;
    }
    if (c == '[') {
      ++i_;
      return parse_class();
    }
    if (c == '.') {
      ++i_;
      return chars(CharClass::any().minus(range_class('\n', '\n')));
    }
    if (c == '\\') {
      ++i_;
      CharClass cls;
      if (Status s = parse_escape(cls, false); !s.ok()) return s;
      return chars(cls);
    }
    if (c == '^' || c == '$') return unsupported(fmt::format("the anchor '{}' away from the pattern's ends", c));
    if (c == '*' || c == '+' || c == '?') return error("nothing to repeat");
    if (c == ')') return error("unbalanced ')'");
    uint32_t cp = 0;
    if (!decode_utf8(cp)) return error("invalid UTF-8");
    return chars(range_class(cp, cp));
  }

  std::string_view p_;
  RegexOptions opt_;
  size_t i_ = 0;
};

}  // namespace

StatusOr<ExprPtr> regex_to_expr(std::string_view pattern, const RegexOptions& options) {
  return RegexParser(pattern, options).parse();
}

}  // namespace longbow::structured
