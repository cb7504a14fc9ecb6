// Shared pieces of the structured-output tests: a synthetic byte-level vocabulary, a validator for
// the JSON Schema subset the grammar compiler supports, a seeded random bounded-schema generator,
// and generation by uniform sampling among the allowed tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/structured/grammar.h"
#include "server/structured/token_mask.h"
#include "server/structured/vocabulary.h"

namespace longbow::structured::testing {

// All 256 single bytes, JSON-ish fragments, random short strings, one special token (empty bytes)
// and EOS (the last id, a stop token).
std::shared_ptr<const Vocabulary> synthetic_vocabulary(uint32_t seed, int random_tokens);

// Whether `value` validates against `schema` (the supported subset); `why` gets the first failure.
bool validate(const nlohmann::json& value, const nlohmann::ordered_json& schema, std::string* why);

// A random schema whose language is finite: strings carry maxLength or an anchored bounded
// pattern, arrays maxItems, integers both bounds.
nlohmann::ordered_json random_bounded_schema(std::mt19937& rng, int depth = 0);

struct Generation {
  std::string text;
  bool terminated = false;  // ended by a stop token
  std::string failure;      // non-empty: a dead end (no token allowed) or the step cap
};

// Samples uniformly among the allowed tokens until a stop token (at most max_steps tokens).
Generation generate(const std::shared_ptr<const Grammar>& grammar, TokenMasker& masker, std::mt19937& rng,
                    int max_steps);

}  // namespace longbow::structured::testing
