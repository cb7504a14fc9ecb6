#include "model/tokenizer/hf/known_split.h"

#include <oniguruma.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace longbow::hf {
namespace {

// The regexes, byte for byte as their tokenizer.json files spell them (DeepSeek-V3's third one
// holds a raw CR and LF inside its classes where the others write \r and \n).
constexpr std::string_view kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kQwen =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kO200k =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr std::string_view kDigits3 = "\\p{N}{1,3}";
constexpr std::string_view kDeepSeekCjk =
    "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+";
constexpr std::string_view kDeepSeekWords =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

// The character classes the known patterns use, as bits. They come from Oniguruma's own Unicode
// tables (not utf8proc's, whose newer Unicode version assigns characters that Oniguruma's regexes
// still see as unassigned), so a class here is exactly the regex's \p{...} or \s.
enum ClassBit : uint16_t {
  kLu = 1 << 0, kLl = 1 << 1, kLt = 1 << 2, kLm = 1 << 3, kLo = 1 << 4,
  kMark = 1 << 5, kNumber = 1 << 6, kPunctuation = 1 << 7, kSymbol = 1 << 8, kSpace = 1 << 9,
};
constexpr uint16_t kLetter = kLu | kLl | kLt | kLm | kLo;

class ClassTable {
 public:
  ClassTable() {
    OnigEncoding encoding = ONIG_ENCODING_UTF8;
    const std::pair<const char*, uint16_t> properties[] = {
        {"Lu", kLu}, {"Ll", kLl}, {"Lt", kLt}, {"Lm", kLm}, {"Lo", kLo},
        {"M", kMark}, {"N", kNumber}, {"P", kPunctuation}, {"S", kSymbol}};
    for (const auto& [name, bit] : properties) {
      auto* begin = reinterpret_cast<OnigUChar*>(const_cast<char*>(name));
      add(ONIGENC_PROPERTY_NAME_TO_CTYPE(encoding, begin, begin + std::strlen(name)), bit);
    }
    add(ONIGENC_CTYPE_SPACE, kSpace);
  }

  uint16_t classes(char32_t cp) const {
    if (cp < bmp_.size()) return bmp_[cp];
    uint16_t mask = 0;
    for (const auto& [ranges, bit] : ranges_) {
      // ranges[0] is the count n, then n inclusive [first, last] pairs in order.
      size_t lo = 0, hi = ranges[0];
      while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (ranges[1 + 2 * mid + 1] < cp) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (lo < ranges[0] && ranges[1 + 2 * lo] <= cp) mask |= bit;
    }
    return mask;
  }

 private:
  void add(int ctype, uint16_t bit) {
    OnigCodePoint single_byte_end;
    const OnigCodePoint* ranges = nullptr;
    if (ctype < 0 ||
        ONIGENC_GET_CTYPE_CODE_RANGE(ONIG_ENCODING_UTF8, static_cast<OnigCtype>(ctype), &single_byte_end, &ranges) != 0 ||
        ranges == nullptr) {
      std::abort();  // Oniguruma without Unicode property tables cannot run these regexes either
    }
    ranges_.emplace_back(ranges, bit);
    for (OnigCodePoint i = 0; i < ranges[0]; ++i) {
      for (OnigCodePoint cp = ranges[1 + 2 * i]; cp <= ranges[2 + 2 * i] && cp < bmp_.size(); ++cp) bmp_[cp] |= bit;
    }
  }

  std::array<uint16_t, 0x10000> bmp_{};
  std::vector<std::pair<const OnigCodePoint*, uint16_t>> ranges_;
};

const ClassTable& class_table() {
  static const auto* table = new ClassTable();
  return *table;
}

// One character of the text: code point, classes, byte length.
struct Char {
  char32_t cp;
  uint16_t classes;
  size_t length;

  bool letter() const { return (classes & kLetter) != 0; }
  bool number() const { return (classes & kNumber) != 0; }
  bool mark() const { return (classes & kMark) != 0; }
  bool punctuation() const { return (classes & kPunctuation) != 0; }
  bool symbol() const { return (classes & kSymbol) != 0; }
  bool space() const { return (classes & kSpace) != 0; }
  bool line_break() const { return cp == '\r' || cp == '\n'; }
  // gpt-oss's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] ("upper") and [\p{Ll}\p{Lm}\p{Lo}\p{M}] ("lower").
  bool upper() const { return (classes & (kLu | kLt | kLm | kLo | kMark)) != 0; }
  bool lower() const { return (classes & (kLl | kLm | kLo | kMark)) != 0; }
};

// The character at `pos` < text.size() of valid UTF-8 (a truncated sequence reads as U+FFFD of
// one byte, so a caller can never run past the end).
Char char_at(std::string_view text, size_t pos) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data()) + pos;
  const size_t left = text.size() - pos;
  char32_t cp;
  size_t length;
  if (s[0] < 0x80) {
    cp = s[0];
    length = 1;
  } else if (s[0] < 0xE0 && left >= 2) {
    cp = (static_cast<char32_t>(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    length = 2;
  } else if (s[0] < 0xF0 && left >= 3) {
    cp = (static_cast<char32_t>(s[0] & 0x0F) << 12) | (static_cast<char32_t>(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    length = 3;
  } else if (left >= 4) {
    cp = (static_cast<char32_t>(s[0] & 0x07) << 18) | (static_cast<char32_t>(s[1] & 0x3F) << 12) |
         (static_cast<char32_t>(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    length = 4;
  } else {
    cp = 0xFFFD;
    length = 1;
  }
  return Char{cp, class_table().classes(cp), length};
}

// The end of the longest run of characters satisfying `pred` from `pos`.
template <typename Pred>
size_t run(std::string_view text, size_t pos, const Pred& pred) {
  while (pos < text.size()) {
    const Char c = char_at(text, pos);
    if (!pred(c)) break;
    pos += c.length;
  }
  return pos;
}

// Like run() but at most `limit` characters.
template <typename Pred>
size_t run_at_most(std::string_view text, size_t pos, int limit, const Pred& pred) {
  for (int i = 0; i < limit && pos < text.size(); ++i) {
    const Char c = char_at(text, pos);
    if (!pred(c)) break;
    pos += c.length;
  }
  return pos;
}

// The start of the character that ends at `end` (> 0).
size_t previous_start(std::string_view text, size_t end) {
  size_t pos = end - 1;
  while (pos > 0 && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) --pos;
  return pos;
}

bool ascii_letter(char32_t cp) { return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'); }

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at `pos`: its end, or `pos`. Under Oniguruma's Unicode case
// folding 's' also matches U+017F (long s); no other letter of these has a non-ASCII fold.
size_t contraction(std::string_view text, size_t pos) {
  if (pos >= text.size() || text[pos] != '\'' || pos + 1 >= text.size()) return pos;
  const Char c = char_at(text, pos + 1);
  const size_t after = pos + 1 + c.length;
  auto next_is = [&](char lower) {
    return after < text.size() && (text[after] == lower || text[after] == lower - ('a' - 'A'));
  };
  switch (c.cp) {
    case 's': case 'S': case 0x17F: case 't': case 'T': case 'm': case 'M': case 'd': case 'D':
      return after;
    case 'r': case 'R': case 'v': case 'V':
      return next_is('e') ? after + 1 : pos;
    case 'l': case 'L':
      return next_is('l') ? after + 1 : pos;
    default:
      return pos;
  }
}

// The last three alternatives every known pattern ends with, \s*[\r\n]+|\s+(?!\S)|\s+, at `pos`
// (with the set of line breaks \r\n).
size_t whitespace_tail(std::string_view text, size_t pos) {
  size_t end = pos, last_break_end = pos, last_start = pos;
  int count = 0;
  while (end < text.size()) {
    const Char c = char_at(text, end);
    if (!c.space()) break;
    last_start = end;
    end += c.length;
    ++count;
    if (c.line_break()) last_break_end = end;
  }
  if (count == 0) return pos;
  if (last_break_end > pos) return last_break_end;            // \s*[\r\n]+ backs off to the last break
  if (end == text.size() || count == 1) return end;           // \s+(?!\S) at the end, or \s+
  return last_start;                                          // \s+(?!\S) gives the last space back
}

// Llama 3 and Qwen: (?i:contractions)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
// ?[^\s\p{L}\p{N}]+[\r\n]*|whitespace tail.
template <int kMaxDigits>
size_t match_llama3(std::string_view text, size_t pos) {
  const Char c = char_at(text, pos);
  if (c.cp == '\'') {
    if (const size_t end = contraction(text, pos); end != pos) return end;
  }
  auto letter = [](const Char& x) { return x.letter(); };
  if (c.letter()) return run(text, pos, letter);
  if (!c.line_break() && !c.number()) {
    const size_t next = pos + c.length;
    if (next < text.size() && char_at(text, next).letter()) return run(text, next, letter);
  }
  if (c.number()) return run_at_most(text, pos, kMaxDigits, [](const Char& x) { return x.number(); });
  auto other = [](const Char& x) { return !x.space() && !x.letter() && !x.number(); };
  const size_t start = c.cp == ' ' ? pos + 1 : pos;
  if (start < text.size() && other(char_at(text, start))) {
    return run(text, run(text, start, other), [](const Char& x) { return x.line_break(); });
  }
  return whitespace_tail(text, pos);
}

// gpt-oss's first alternative after the optional prefix: [upper]*[lower]+ at `start`; its end or
// `start`. The greedy [upper]* gives characters back until a [lower] follows.
size_t upper_then_lower(std::string_view text, size_t start) {
  const size_t upper_end = run(text, start, [](const Char& x) { return x.upper(); });
  if (upper_end < text.size() && char_at(text, upper_end).lower()) {
    return run(text, upper_end, [](const Char& x) { return x.lower(); });
  }
  // Every character in (q, upper_end) is not [lower], so [lower]+ from q stops at its end.
  for (size_t end = upper_end; end > start;) {
    const size_t q = previous_start(text, end);
    const Char c = char_at(text, q);
    if (c.lower()) return q + c.length;
    end = q;
  }
  return start;
}

// gpt-oss (o200k): two letter-word alternatives with an optional prefix and an optional
// contraction, \p{N}{1,3}, ?[^\s\p{L}\p{N}]+[\r\n/]*, whitespace tail.
size_t match_o200k(std::string_view text, size_t pos) {
  const Char c = char_at(text, pos);
  const bool prefix = !c.line_break() && !c.letter() && !c.number();
  // Tried in the regex's order: with the prefix, then without.
  const size_t starts[2] = {prefix ? pos + c.length : pos, pos};
  for (const size_t start : starts) {
    if (start >= text.size()) continue;
    const size_t end = upper_then_lower(text, start);
    if (end != start) return contraction(text, end);
  }
  for (const size_t start : starts) {
    if (start >= text.size()) continue;
    const size_t upper_end = run(text, start, [](const Char& x) { return x.upper(); });
    if (upper_end != start) return contraction(text, run(text, upper_end, [](const Char& x) { return x.lower(); }));
  }
  if (c.number()) return run_at_most(text, pos, 3, [](const Char& x) { return x.number(); });
  auto other = [](const Char& x) { return !x.space() && !x.letter() && !x.number(); };
  const size_t start = c.cp == ' ' ? pos + 1 : pos;
  if (start < text.size() && other(char_at(text, start))) {
    return run(text, run(text, start, other), [](const Char& x) { return x.line_break() || x.cp == '/'; });
  }
  return whitespace_tail(text, pos);
}

size_t match_digits3(std::string_view text, size_t pos) {
  return run_at_most(text, pos, 3, [](const Char& x) { return x.number(); });
}

size_t match_deepseek_cjk(std::string_view text, size_t pos) {
  return run(text, pos, [](const Char& x) {
    return (x.cp >= 0x4E00 && x.cp <= 0x9FA5) || (x.cp >= 0x3040 && x.cp <= 0x30FF);
  });
}

// DeepSeek-V3's words: ASCII punctuation + ASCII letters, [^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+,
// ?[\p{P}\p{S}]+[\r\n]*, whitespace tail.
size_t match_deepseek_words(std::string_view text, size_t pos) {
  const Char c = char_at(text, pos);
  const bool ascii_punctuation = (c.cp >= 0x21 && c.cp <= 0x2F) || (c.cp >= 0x3A && c.cp <= 0x40) ||
                                 (c.cp >= 0x5B && c.cp <= 0x60) || (c.cp >= 0x7B && c.cp <= 0x7E);
  if (ascii_punctuation && pos + 1 < text.size() && ascii_letter(static_cast<unsigned char>(text[pos + 1]))) {
    size_t end = pos + 1;
    while (end < text.size() && ascii_letter(static_cast<unsigned char>(text[end]))) ++end;
    return end;
  }
  auto word = [](const Char& x) { return x.letter() || x.mark(); };
  if (!c.line_break() && !c.letter() && !c.punctuation() && !c.symbol()) {
    const size_t next = pos + c.length;
    if (next < text.size() && word(char_at(text, next))) return run(text, next, word);
  }
  if (word(c)) return run(text, pos, word);
  auto mark = [](const Char& x) { return x.punctuation() || x.symbol(); };
  const size_t start = c.cp == ' ' ? pos + 1 : pos;
  if (start < text.size() && mark(char_at(text, start))) {
    return run(text, run(text, start, mark), [](const Char& x) { return x.line_break(); });
  }
  return whitespace_tail(text, pos);
}

}  // namespace

std::optional<KnownSplit> KnownSplit::find(std::string_view regex) {
  if (regex == kLlama3) return KnownSplit(&match_llama3<3>);
  if (regex == kQwen) return KnownSplit(&match_llama3<1>);
  if (regex == kO200k) return KnownSplit(&match_o200k);
  if (regex == kDigits3) return KnownSplit(&match_digits3);
  if (regex == kDeepSeekCjk) return KnownSplit(&match_deepseek_cjk);
  if (regex == kDeepSeekWords) return KnownSplit(&match_deepseek_words);
  return std::nullopt;
}

std::vector<std::string_view> KnownSplit::patterns() {
  return {kLlama3, kQwen, kO200k, kDigits3, kDeepSeekCjk, kDeepSeekWords};
}

std::vector<std::pair<size_t, size_t>> KnownSplit::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = match_at_(text, pos);
    if (end == pos) {
      pos += char_at(text, pos).length;
      continue;
    }
    matches.emplace_back(pos, end);
    pos = end;
  }
  return matches;
}

}  // namespace longbow::hf
