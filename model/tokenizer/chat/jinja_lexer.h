// Jinja lexing in two levels. split_template() cuts the source into text, {{ expression }} and
// {% statement %} segments (comments dropped), applying the whitespace control transformers
// renders chat templates with: trim_blocks, lstrip_blocks and the "-"/"+" tag modifiers; raw blocks
// become text. tokenize_expression() then splits a tag's inside into tokens.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace longbow::jinja {

struct Segment {
  enum class Kind { kText, kExpression, kStatement };
  Kind kind;
  std::string text;  // the literal text, or the inside of the tag
  int line;          // 1-based line of the segment's start, for error messages
};

// TemplateError on an unterminated tag, comment or raw block.
std::vector<Segment> split_template(std::string_view source);

struct Token {
  enum class Kind { kName, kString, kInt, kFloat, kOperator, kEnd };
  Kind kind;
  std::string text;  // name, operator, or the string literal's value (escapes resolved)
};

// TemplateError on an unknown character or an unterminated string.
std::vector<Token> tokenize_expression(std::string_view text, int line);

}  // namespace longbow::jinja
