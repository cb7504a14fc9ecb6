// KnownSplit vs Oniguruma: every hand-written matcher must give exactly the matches of the regex
// it replaces, on every line of the tokenizer test corpus and on many random strings built from
// the characters these patterns tell apart (contractions in all cases, every kind of Unicode
// space, letters of each category, marks, numbers, punctuation, symbols, emoji, the DeepSeek CJK
// ranges' edges, random code points, and raw bytes made valid as the tokenizer makes them).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "model/tokenizer/hf/known_split.h"
#include "model/tokenizer/hf/regex.h"
#include "model/tokenizer/hf/unicode.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The corpus: each line of the sentencepiece corpora, each entry of the tokenizer.json extras,
// and the three files whole.
std::vector<std::string> corpus() {
  const fs::path dir = fs::path(LONGBOW_SOURCE_DIR) / "tests/data/tokenizer";
  std::vector<std::string> texts;
  for (const char* name : {"corpus_train.txt", "corpus_heldout.txt"}) {
    const std::string whole = read_text(dir / name);
    texts.push_back(whole);
    std::istringstream lines(whole);
    for (std::string line; std::getline(lines, line);) texts.push_back(line);
  }
  const std::string extra = read_text(dir / "hf_corpus_extra.json");
  texts.push_back(extra);
  for (const auto& entry : nlohmann::json::parse(extra)) texts.push_back(entry.get<std::string>());
  return texts;
}

void append_code_point(char32_t cp, std::string* out) { hf::append_utf8(cp, out); }

// Random text from pieces the known patterns distinguish, made valid UTF-8 as encode() does.
std::string random_text(std::mt19937_64& rng) {
  static const std::vector<std::string> kPieces = {
      "'", "'s", "'S", "'t", "'T", "'re", "'RE", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL", "'d", "'D",
      "'\xC5\xBF",  // ' + U+017F long s (case-folds to s)
      "'\xE2\x84\xAA", "'r", "'v", "'l", "''", "a", "Z", "hello", "World", "CamelCase", "ALLCAPS", "x", "I",
      " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", " \n", "\n ", "\x0B", "\x0C", "\x1C",
      "\xC2\xA0", "\xC2\x85", "\xE3\x80\x80", "\xE2\x80\x80", "\xE2\x80\x8A", "\xE2\x80\x8B", "\xE2\x80\xA8",
      "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE1\x9A\x80", "\xE1\xA0\x8E",
      "0", "7", "12", "1234", "\xD9\xA0\xD9\xA1", "\xEF\xBC\x91", "\xE2\x85\xAB", "\xC2\xBD", "\xC2\xB2",
      ".", ",", "!", "?", "/", "//", "-", "_", "(", ")", "[", "]", "{", "}", "\"", "#", "$", "%", "&", "*", "+",
      "<", ">", "=", "@", "\\", "^", "`", "|", "~", ":", ";", "\xE2\x82\xAC", "\xC2\xA9", "\xE2\x80\x94",
      "\xE3\x80\x82", "\xEF\xBC\x8C", "\xC2\xBF",
      "\xC3\xA9", "\xC3\x89", "\xC3\x9F", "\xC7\x85", "\xCA\xB0", "\xCE\xB1\xCE\xB2", "\xCE\x91", "\xD0\x96\xD0\xB8",
      "\xD7\x90", "\xD8\xB9\xD8\xB1", "\xE0\xA4\xB9\xE0\xA4\xBF", "\xE0\xB8\x81",
      "\xCC\x81", "\xE0\xA4\x83", "\xE2\x83\x9D", "\xE0\xA5\x8D",
      "\xE4\xB8\x80", "\xE4\xB8\xAD\xE6\x96\x87", "\xE9\xBE\xA5", "\xE9\xBE\xA6", "\xE3\x81\x80", "\xE3\x81\x82",
      "\xE3\x82\x9F", "\xE3\x82\xA0", "\xE3\x82\xAB", "\xE3\x83\xBC", "\xE3\x83\xBF", "\xE3\x84\x80",
      "\xE3\x80\xBF", "\xEA\xB0\x80",
      "\xF0\x9F\x98\x80", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9",
      "\xEF\xB8\x8F", "\xF0\x9D\x90\x80", "\xF0\xA0\x80\x80",
      "\xEF\xBF\xBD", "\x01", "\x7F",
  };
  std::string text;
  const int count = static_cast<int>(rng() % 24);
  for (int i = 0; i < count; ++i) {
    const uint64_t kind = rng() % 100;
    if (kind < 80) {
      text += kPieces[rng() % kPieces.size()];
    } else if (kind < 88) {
      char32_t cp = static_cast<char32_t>(rng() % 0x110000);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41;
      append_code_point(cp, &text);
    } else if (kind < 96) {
      append_code_point(static_cast<char32_t>(0x80 + rng() % 0x3000), &text);
    } else {
      for (int j = static_cast<int>(rng() % 4); j >= 0; --j) text += static_cast<char>(rng() % 256);
    }
  }
  return hf::to_valid_utf8(text);
}

std::string escape(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace); }

std::string show(const std::vector<std::pair<size_t, size_t>>& matches) {
  std::string out;
  for (const auto& [begin, end] : matches) out += "[" + std::to_string(begin) + "," + std::to_string(end) + ")";
  return out;
}

TEST(KnownSplitTest, EveryPatternIsItsOwnKnownMatcher) {
  for (const std::string_view pattern : hf::KnownSplit::patterns()) {
    EXPECT_TRUE(hf::KnownSplit::find(pattern).has_value()) << pattern;
    EXPECT_TRUE(hf::Regex::compile(pattern).ok()) << pattern;
  }
  EXPECT_FALSE(hf::KnownSplit::find("\\p{N}{1,2}").has_value());
}

TEST(KnownSplitTest, MatchesOnigurumaOnCorpusAndRandomText) {
  std::vector<std::string> texts = corpus();
  ASSERT_GT(texts.size(), 2000u);
  std::mt19937_64 rng(20261207);
  constexpr int kRandom = 60000;
  for (int i = 0; i < kRandom; ++i) texts.push_back(random_text(rng));
  for (const std::string_view pattern : hf::KnownSplit::patterns()) {
    const std::optional<hf::KnownSplit> known = hf::KnownSplit::find(pattern);
    StatusOr<hf::Regex> regex = hf::Regex::compile(pattern);
    ASSERT_TRUE(known.has_value() && regex.ok()) << pattern;
    int failures = 0;
    for (const std::string& text : texts) {
      const auto expected = regex->find_all(text);
      const auto actual = known->find_all(text);
      if (expected != actual && ++failures <= 5) {
        ADD_FAILURE() << "pattern " << pattern << "\ntext " << escape(text) << "\noniguruma " << show(expected)
                      << "\nknown     " << show(actual);
      }
    }
    EXPECT_EQ(failures, 0) << pattern;
  }
}

}  // namespace
}  // namespace longbow
