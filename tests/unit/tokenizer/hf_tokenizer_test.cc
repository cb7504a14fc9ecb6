// tokenizer.json pieces on small hand-made files (the golden test covers the real ones).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/tokenizer/hf/byte_level.h"
#include "model/tokenizer/hf/regex.h"
#include "model/tokenizer/hf/unicode.h"
#include "model/tokenizer/hf_tokenizer.h"

namespace longbow {
namespace {

using nlohmann::json;

// A byte-level BPE over "a", "b", "ab", "Ġ" and "Ġab" with merges a+b, Ġ+ab.
json tiny_byte_level() {
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b) {
    std::string s;
    hf::append_byte_level(std::string(1, static_cast<char>(b)), &s);
    vocab[s] = id++;
  }
  vocab["ab"] = id++;
  vocab["Ġab"] = id++;
  return json{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", json::array({"Ġ", "ab"})})}}},
              {"added_tokens", json::array({json{{"id", 258}, {"content", "<|end|>"}, {"special", true}}})},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"decoder", {{"type", "ByteLevel"}}},
              {"post_processor",
               {{"type", "TemplateProcessing"},
                {"single", json::array({json{{"Sequence", {{"id", "A"}}}}, json{{"SpecialToken", {{"id", "<|end|>"}}}}})},
                {"special_tokens", {{"<|end|>", {{"id", "<|end|>"}, {"ids", json::array({258})}}}}}}}};
}

TEST(HfTokenizerTest, ByteLevelMapIsABijection) {
  for (int b = 0; b < 256; ++b) {
    const char32_t cp = hf::byte_to_char(static_cast<uint8_t>(b));
    ASSERT_EQ(hf::char_to_byte(cp), std::optional<uint8_t>(static_cast<uint8_t>(b)));
  }
  EXPECT_EQ(hf::byte_to_char(' '), U'\u0120');  // "Ġ"
  EXPECT_EQ(hf::byte_to_char('\n'), U'\u010A');  // "Ċ"
}

TEST(HfTokenizerTest, EncodesMergesAddedTokensAndTemplate) {
  StatusOr<std::unique_ptr<Tokenizer>> tok = parse_hf_tokenizer(tiny_byte_level().dump(), HfSpecialTokens{});
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  const std::vector<TokenId> ids = (*tok)->encode("ab ab<|end|>b");
  EXPECT_EQ(ids, (std::vector<TokenId>{256, 257, 258, 'b'}));
  EXPECT_EQ((*tok)->encode_with_special_tokens("ab"), (std::vector<TokenId>{256, 258}));
  EXPECT_EQ((*tok)->decode_keeping_special(ids), "ab ab<|end|>b");
  EXPECT_EQ((*tok)->decode(ids), "ab abb");
  EXPECT_TRUE((*tok)->is_control(258));
  EXPECT_EQ((*tok)->token_bytes(257), " ab");
  EXPECT_EQ((*tok)->token_bytes(258), "");
  EXPECT_EQ((*tok)->token_to_id("<|end|>"), std::optional<TokenId>(258));
  // A lone byte of a multi-byte character decodes to U+FFFD, as from_utf8_lossy.
  EXPECT_EQ((*tok)->decode(std::vector<TokenId>{0xE4}), "\xEF\xBF\xBD");
  EXPECT_EQ((*tok)->token_bytes(0xE4), "\xE4");
}

TEST(HfTokenizerTest, UnsupportedPartsAreNamed) {
  json doc = tiny_byte_level();
  doc["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
  StatusOr<std::unique_ptr<Tokenizer>> tok = parse_hf_tokenizer(doc.dump(), HfSpecialTokens{});
  ASSERT_FALSE(tok.ok());
  EXPECT_EQ(tok.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(tok.status().message().find("BertPreTokenizer"), std::string::npos);
  doc = tiny_byte_level();
  doc["model"]["type"] = "WordPiece";
  tok = parse_hf_tokenizer(doc.dump(), HfSpecialTokens{});
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("WordPiece"), std::string::npos);
  EXPECT_FALSE(parse_hf_tokenizer("{not json", HfSpecialTokens{}).ok());
  HfSpecialTokens missing;
  missing.bos_token = "<nope>";
  EXPECT_FALSE(parse_hf_tokenizer(tiny_byte_level().dump(), missing).ok());
}

TEST(HfTokenizerTest, RegexIsOniguruma) {
  StatusOr<hf::Regex> re = hf::Regex::compile(R"((?i:'s|'t)|\p{L}+|\p{N}{1,3}|\s+(?!\S)|\s+)");
  ASSERT_TRUE(re.ok()) << re.status().to_string();
  const std::string text = "IT'S 12345 héllo  x";
  std::vector<std::string> pieces;
  for (const auto& [b, e] : re->find_all(text)) pieces.push_back(text.substr(b, e - b));
  EXPECT_EQ(pieces, (std::vector<std::string>{"IT", "'S", " ", "123", "45", " ", "héllo", " ", " ", "x"}));
  EXPECT_FALSE(hf::Regex::compile("(unclosed").ok());
}

TEST(HfTokenizerTest, InvalidUtf8IsReplaced) {
  EXPECT_EQ(hf::to_valid_utf8("a\xC3"), "a\xEF\xBF\xBD");
  EXPECT_EQ(hf::to_valid_utf8("\xE4\xBD"), "\xEF\xBF\xBD");  // one maximal subpart
  EXPECT_EQ(hf::to_valid_utf8("\xFF\xFE"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(hf::normalize("e\xCC\x81", hf::NormalForm::kNfc), "\xC3\xA9");
  EXPECT_EQ(hf::normalize("\xEF\xAC\x81", hf::NormalForm::kNfkc), "fi");
}

// Malformed documents are errors naming the problem, not crashes or allocations of their choosing
// (each case was a fuzzer finding, tests/fuzz/hf_tokenizer_fuzz.cc).
TEST(HfTokenizerTest, HostileDocumentsAreErrors) {
  auto fails_with = [](const json& doc, const std::string& expected) {
    StatusOr<std::unique_ptr<Tokenizer>> tok = parse_hf_tokenizer(doc.dump(), HfSpecialTokens{});
    ASSERT_FALSE(tok.ok());
    EXPECT_NE(tok.status().message().find(expected), std::string::npos) << tok.status().message();
  };
  json doc = tiny_byte_level();
  doc["added_tokens"][0]["id"] = 2147483647;
  fails_with(doc, "added_tokens[0] needs an integer id in [0, 4194304)");
  doc = tiny_byte_level();
  doc["model"]["vocab"]["ab"] = int64_t{1} << 40;
  fails_with(doc, "must be an id in [0, 4194304)");
  doc = tiny_byte_level();
  doc["post_processor"]["special_tokens"]["<|end|>"]["ids"] = json::array({99999});
  fails_with(doc, "must be integers in [0, 259)");
  doc = tiny_byte_level();
  doc["pre_tokenizer"]["add_prefix_space"] = "yes";
  fails_with(doc, "a field of the wrong type");
  std::string deep = "{\"model\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  StatusOr<std::unique_ptr<Tokenizer>> tok = parse_hf_tokenizer(deep, HfSpecialTokens{});
  ASSERT_FALSE(tok.ok());
  EXPECT_NE(tok.status().message().find("nested deeper"), std::string::npos) << tok.status().message();

  // A byte-fallback vocabulary with a "<0x..>" token that is no byte loads; the token is text.
  doc = json{{"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", {{"<0xZZ>", 0}, {"<0x41>", 1}}}}}};
  tok = parse_hf_tokenizer(doc.dump(), HfSpecialTokens{});
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ((*tok)->token_bytes(1), "A");
  EXPECT_EQ((*tok)->token_bytes(0), " <0xZZ>");  // without a decoder, tokens are joined with spaces
}

}  // namespace
}  // namespace longbow
