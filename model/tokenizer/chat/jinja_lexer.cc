#include "model/tokenizer/chat/jinja_lexer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "model/tokenizer/chat/jinja_value.h"

namespace longbow::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int count_lines(std::string_view s, size_t end) {
  return 1 + static_cast<int>(std::count(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
}

// End of the tag whose inside starts at `pos` (the offset of `close`), skipping string literals
// and balanced brackets (as jinja2's lexer: "{{ {'a': {}} }}" ends at the last "}}").
size_t find_tag_end(std::string_view source, size_t pos, std::string_view close) {
  char quote = 0;
  int depth = 0;
  for (size_t i = pos; i < source.size(); ++i) {
    const char c = source[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (depth == 0 && source.compare(i, close.size(), close) == 0) {
      return i;
    } else if (c == '{' || c == '[' || c == '(') {
      ++depth;
    } else if ((c == '}' || c == ']' || c == ')') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

void strip_trailing_space(std::string* text) {
  size_t end = text->size();
  while (end > 0 && is_space((*text)[end - 1])) --end;
  text->resize(end);
}

// lstrip_blocks: when only spaces and tabs stand between the line's start (in the source) and the
// tag at `tag`, they are dropped from the pending text.
void lstrip_line(std::string_view source, size_t tag, std::string* text) {
  size_t n = 0;
  while (n < tag && (source[tag - 1 - n] == ' ' || source[tag - 1 - n] == '\t')) ++n;
  if (n < tag && source[tag - 1 - n] != '\n') return;
  text->resize(text->size() - std::min(n, text->size()));
}

}  // namespace

std::vector<Segment> split_template(std::string_view source) {
  std::vector<Segment> segments;
  std::string text;          // pending text
  bool strip_next = false;   // the previous tag ended with "-": drop leading whitespace
  bool trim_newline = false; // the previous block/comment tag: drop one newline (trim_blocks)
  size_t pos = 0;
  auto flush_text = [&](int line) {
    if (!text.empty()) segments.push_back(Segment{Segment::Kind::kText, text, line});
    text.clear();
  };
  while (pos <= source.size()) {
    const size_t open = source.find('{', pos);
    size_t tag = std::string_view::npos;
    for (size_t at = open; at != std::string_view::npos && at + 1 < source.size(); at = source.find('{', at + 1)) {
      const char next = source[at + 1];
      if (next == '{' || next == '%' || next == '#') {
        tag = at;
        break;
      }
    }
    std::string chunk(source.substr(pos, tag == std::string_view::npos ? std::string_view::npos : tag - pos));
    if (strip_next) {
      size_t i = 0;
      while (i < chunk.size() && is_space(chunk[i])) ++i;
      chunk.erase(0, i);
    } else if (trim_newline) {
      if (chunk.compare(0, 1, "\n") == 0) {
        chunk.erase(0, 1);
      } else if (chunk.compare(0, 2, "\r\n") == 0) {
        chunk.erase(0, 2);
      }
    }
    strip_next = trim_newline = false;
    text += chunk;
    if (tag == std::string_view::npos) break;

    const char type = source[tag + 1];
    size_t inner = tag + 2;
    const char modifier = inner < source.size() ? source[inner] : 0;
    if (modifier == '-') {
      strip_trailing_space(&text);
      ++inner;
    } else if (modifier == '+') {
      ++inner;
    } else if (type != '{') {
      lstrip_line(source, tag, &text);
    }
    const int line = count_lines(source, tag);
    const std::string_view close = type == '{' ? "}}" : type == '%' ? "%}" : "#}";
    size_t end = type == '#' ? source.find(close, inner) : find_tag_end(source, inner, close);
    if (end == std::string_view::npos) {
      throw TemplateError(fmt::format("line {}: unterminated '{{{}' tag", line, type));
    }
    size_t inner_end = end;
    if (end > inner && source[end - 1] == '-') {
      strip_next = true;
      --inner_end;
    } else if (end > inner && source[end - 1] == '+') {
      --inner_end;
    } else if (type != '{') {
      trim_newline = true;
    }
    std::string body(source.substr(inner, inner_end - inner));
    pos = end + 2;
    if (type == '#') continue;
    if (type == '{') {
      flush_text(line);
      segments.push_back(Segment{Segment::Kind::kExpression, std::move(body), line});
      continue;
    }
    // A raw block: everything up to {% endraw %} is text.
    size_t first = 0;
    while (first < body.size() && is_space(body[first])) ++first;
    size_t last = body.size();
    while (last > first && is_space(body[last - 1])) --last;
    if (body.substr(first, last - first) == "raw") {
      size_t search = pos;
      while (true) {
        const size_t candidate = source.find("{%", search);
        if (candidate == std::string_view::npos) throw TemplateError(fmt::format("line {}: unterminated raw block", line));
        size_t k = candidate + 2;
        const bool strip_before = k < source.size() && source[k] == '-';
        if (strip_before || (k < source.size() && source[k] == '+')) ++k;
        while (k < source.size() && is_space(source[k])) ++k;
        if (source.compare(k, 6, "endraw") == 0) {
          std::string raw(source.substr(pos, candidate - pos));
          if (strip_next) {
            size_t i = 0;
            while (i < raw.size() && is_space(raw[i])) ++i;
            raw.erase(0, i);
          } else if (trim_newline && raw.compare(0, 1, "\n") == 0) {
            raw.erase(0, 1);
          }
          if (strip_before) strip_trailing_space(&raw);
          text += raw;
          const size_t close_at = source.find("%}", k);
          if (close_at == std::string_view::npos) throw TemplateError(fmt::format("line {}: unterminated endraw", line));
          strip_next = close_at > 0 && source[close_at - 1] == '-';
          trim_newline = !strip_next && source[close_at - 1] != '+';
          pos = close_at + 2;
          break;
        }
        search = candidate + 2;
      }
      continue;
    }
    flush_text(line);
    segments.push_back(Segment{Segment::Kind::kStatement, std::move(body), line});
  }
  flush_text(count_lines(source, source.size()));
  return segments;
}

std::vector<Token> tokenize_expression(std::string_view text, int line) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < text.size() && (std::isalnum(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
      tokens.push_back(Token{Token::Kind::kName, std::string(text.substr(i, j - i))});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      bool is_float = false;
      while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '_')) ++j;
      if (j + 1 < text.size() && text[j] == '.' && std::isdigit(static_cast<unsigned char>(text[j + 1]))) {
        is_float = true;
        ++j;
        while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
      }
      if (j < text.size() && (text[j] == 'e' || text[j] == 'E')) {
        size_t k = j + 1;
        if (k < text.size() && (text[k] == '+' || text[k] == '-')) ++k;
        if (k < text.size() && std::isdigit(static_cast<unsigned char>(text[k]))) {
          is_float = true;
          j = k;
          while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
        }
      }
      std::string number(text.substr(i, j - i));
      number.erase(std::remove(number.begin(), number.end(), '_'), number.end());
      tokens.push_back(Token{is_float ? Token::Kind::kFloat : Token::Kind::kInt, number});
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string value;
      size_t j = i + 1;
      bool closed = false;
      while (j < text.size()) {
        const char d = text[j];
        if (d == c) {
          closed = true;
          ++j;
          break;
        }
        if (d == '\\' && j + 1 < text.size()) {
          const char e = text[j + 1];
          j += 2;
          switch (e) {
            case 'n': value += '\n'; break;
            case 't': value += '\t'; break;
            case 'r': value += '\r'; break;
            case '\\': value += '\\'; break;
            case '\'': value += '\''; break;
            case '"': value += '"'; break;
            case '0': value += '\0'; break;
            case 'b': value += '\b'; break;
            case 'f': value += '\f'; break;
            case '\n': break;  // a line continuation
            default:
              value += '\\';
              value += e;
          }
          continue;
        }
        value += d;
        ++j;
      }
      if (!closed) throw TemplateError(fmt::format("line {}: unterminated string literal", line));
      tokens.push_back(Token{Token::Kind::kString, std::move(value)});
      i = j;
      continue;
    }
    static constexpr std::string_view kTwo[] = {"==", "!=", "<=", ">=", "//", "**"};
    bool matched = false;
    for (std::string_view op : kTwo) {
      if (text.compare(i, 2, op) == 0) {
        tokens.push_back(Token{Token::Kind::kOperator, std::string(op)});
        i += 2;
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (std::string_view("+-*/%~<>=()[]{}.,:|").find(c) != std::string_view::npos) {
      tokens.push_back(Token{Token::Kind::kOperator, std::string(1, c)});
      ++i;
      continue;
    }
    throw TemplateError(fmt::format("line {}: unexpected character '{}' in an expression", line, c));
  }
  tokens.push_back(Token{Token::Kind::kEnd, ""});
  return tokens;
}

}  // namespace longbow::jinja
