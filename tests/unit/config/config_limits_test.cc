// Implausible config values are rejected by field name before anything is sized from them; every
// committed real config passes; errors from config.json name the file and the field.
#include "model/config/config_limits.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/json_file.h"
#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;

json minimal() {
  return json{{"model_type", "llama"},    {"vocab_size", 1000},      {"hidden_size", 1024},
              {"intermediate_size", 512}, {"num_hidden_layers", 4},  {"num_attention_heads", 32},
              {"max_position_embeddings", 4096}};
}

void expect_rejected(const json& config, const std::string& text) {
  StatusOr<ModelConfig> parsed = parse_model_config(config);
  ASSERT_FALSE(parsed.ok()) << "expected an error containing: " << text;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << parsed.status().to_string();
  EXPECT_NE(parsed.status().message().find(text), std::string::npos) << parsed.status().message();
}

TEST(ConfigLimits, EveryCommittedConfigIsPlausible) {
  const std::string dir = std::string(LONGBOW_SOURCE_DIR) + "/tests/data/configs";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    StatusOr<json> doc = read_json_file(entry.path().string());
    ASSERT_TRUE(doc.ok()) << doc.status().to_string();
    EXPECT_TRUE(check_config_limits(*doc).ok()) << entry.path() << ": " << check_config_limits(*doc).to_string();
    ++checked;
  }
  EXPECT_GT(checked, 0);
  EXPECT_TRUE(parse_model_config(minimal()).ok());
}

TEST(ConfigLimits, ImplausibleFieldsAreNamedBeforeAnyAllocation) {
  json layers = minimal();
  layers["num_hidden_layers"] = 1000000000;  // was: allocated until memory ran out
  expect_rejected(layers, "num_hidden_layers: 1000000000 is not a plausible value (at most 1024)");
  layers["num_hidden_layers"] = 1e9;  // a float is named too, not "expected an integer" after allocating
  expect_rejected(layers, "num_hidden_layers: 1000000000.0 is not a plausible value");

  // heads = head_dim = 2^28: the byte count of q_proj wrapped around 64 bits.
  json heads = minimal();
  heads["num_attention_heads"] = 1 << 28;
  heads["num_key_value_heads"] = 1 << 28;
  heads["head_dim"] = 1 << 28;
  expect_rejected(heads, "num_attention_heads: 268435456 is not a plausible value");

  json vocab = minimal();
  vocab["vocab_size"] = int64_t{1} << 40;
  expect_rejected(vocab, "vocab_size:");
  json rope = minimal();
  rope["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"original_max_position_embeddings", 1LL << 40}};
  expect_rejected(rope, "rope_scaling.original_max_position_embeddings:");
  json window = minimal();
  window["model_type"] = "mistral";
  window["sliding_window"] = 1LL << 40;
  expect_rejected(window, "sliding_window:");
}

TEST(ConfigLimits, ProductsOfPlausibleFieldsAreBoundedToo) {
  // Each field within its limit, the embedding matrix 2^22 x 2^16 = 2^38 elements: allowed; but
  // 1024 layers of 2^16 x 2^18 MLPs are 2^44 elements.
  json big = minimal();
  big["hidden_size"] = 1 << 16;
  big["intermediate_size"] = 1 << 18;
  big["num_hidden_layers"] = 1024;
  big["num_attention_heads"] = 512;
  expect_rejected(big, "num_hidden_layers: 1024 layers of this shape are more than 2^42 elements");
  ModelConfig ok;
  ok.vocab_size = 1 << 22;
  ok.hidden_size = 1 << 16;
  ok.intermediate_size = 1 << 10;
  ok.num_hidden_layers = 1;
  ok.num_attention_heads = 1;
  ok.num_key_value_heads = 1;
  ok.head_dim = 128;
  ok.max_position_embeddings = 4096;
  EXPECT_TRUE(check_config_sizes(ok).ok()) << check_config_sizes(ok).to_string();
}

TEST(ConfigLimits, ConfigFileErrorsNameTheFileAndTheField) {
  std::string pattern = (std::filesystem::temp_directory_path() / "longbow_config_XXXXXX").string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  const std::string dir = pattern;
  {
    std::ofstream out(dir + "/config.json");
    out << R"({"model_type": "llama", "vocab_size": 1000, "hidden_size": 1024, "intermediate_size": 512,
              "num_hidden_layers": 4, "num_attention_heads": 32, "max_position_embeddings": 4096,
              "rope_theta": 1e400})";
  }
  Status overflow = load_model_config(dir).status();
  EXPECT_EQ(overflow.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(overflow.message().find("config.json: invalid JSON in field \"rope_theta\""), std::string::npos)
      << overflow.message();
  {
    std::ofstream out(dir + "/config.json");
    out << R"({"model_type": "llama", "num_hidden_layers": )" << std::string(100000, '[')
        << std::string(100000, ']') << "}";
  }
  Status deep = load_model_config(dir).status();  // was: a stack overflow in describe()
  EXPECT_EQ(deep.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deep.message().find("config.json: JSON nested deeper than"), std::string::npos) << deep.message();
  {
    std::ofstream out(dir + "/config.json");
    out << R"({"model_type": "qwen2", "vocab_size": 1000, "hidden_size": 1024, "intermediate_size": 512,
              "num_hidden_layers": 2, "num_attention_heads": 32, "max_position_embeddings": 4096,
              "use_sliding_window": true, "layer_types": [[[[1]]], "full_attention"]})";
  }
  Status entry = load_model_config(dir).status();
  EXPECT_NE(entry.message().find("layer_types[0]: an array of 1 elements is not supported"), std::string::npos)
      << entry.message();
  std::error_code error;
  std::filesystem::remove_all(dir, error);
}

}  // namespace
}  // namespace longbow
