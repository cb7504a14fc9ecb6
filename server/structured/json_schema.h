// JSON Schema (the subset structured outputs use) to a Grammar whose sentences are JSON texts that
// validate against the schema. Objects list their properties in schema order; optional ones may be
// left out. Supported: type (one or a list), properties, required, additionalProperties,
// items, minItems, maxItems, enum, const, minLength, maxLength, pattern, integer minimum/maximum
// (and the exclusive forms), anyOf; annotations (title, description, default, examples, $schema,
// $id, $comment) are ignored. Any other keyword is an error naming it and where it is.
// Whitespace between tokens is at most max_whitespace characters of [ \t\n] (0: compact JSON), so
// a schema whose strings, arrays and numbers are bounded has a finite language.
#pragma once

#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "server/structured/grammar.h"

namespace longbow::structured {

struct JsonGrammarOptions {
  int max_whitespace = 0;
};

// `schema_text` is parsed preserving key order (properties are emitted in schema order).
StatusOr<Grammar> json_schema_to_grammar(std::string_view schema_text, const JsonGrammarOptions& options = {});
StatusOr<Grammar> json_schema_value_to_grammar(const nlohmann::ordered_json& schema, const JsonGrammarOptions& options = {});

// Any JSON object (response_format {"type": "json_object"}).
StatusOr<Grammar> json_object_grammar(const JsonGrammarOptions& options = {});

}  // namespace longbow::structured
