// JSON that cannot drive the process off a cliff: every JSON document longbow reads (requests,
// config.json, safetensors headers, tokenizer_config.json, server configs) is parsed here with a
// nesting-depth limit, and error messages describe untrusted values without serializing them.
//
// Why: nlohmann's parser is iterative, but dump() and many consumers recurse; a value nested
// 100,000 deep crashed the server from an error path. With the depth capped at parse time every
// later recursion is bounded, and describe_json() never recurses at all.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace longbow {

// Deeper than any real request, config or header (they nest a handful of levels; an OpenAI JSON
// schema in a request a few dozen).
inline constexpr int kMaxJsonDepth = 64;

// Parses `text` (`what` names the source in messages: a file path, "request body"). INVALID_ARGUMENT
// names `what` and says why: a syntax error with its byte position, nesting deeper than
// `max_depth` (arrays and objects count one level each; the top level is depth 1), or a number
// outside double's range (e.g. 1e400). Never throws.
StatusOr<nlohmann::json> parse_json(std::string_view text, std::string_view what, int max_depth = kMaxJsonDepth);

// A short description of `value` for error messages: scalars as JSON (strings cut to `max_chars`),
// containers as "an array of N elements" / "an object of N members". Does not recurse.
std::string describe_json(const nlohmann::json& value, size_t max_chars = 64);

}  // namespace longbow
