// parse_model_config / load_model_config: the committed public configs, each family's defaults,
// both RoPE config styles, sliding-window rules, and error messages that name field and value.
#include "model/config/model_config.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "common/json_file.h"

namespace longbow {
namespace {

using nlohmann::json;

ModelConfig load_data_config(const std::string& file) {
  StatusOr<json> doc = read_json_file(std::string(LONGBOW_SOURCE_DIR) + "/tests/data/configs/" + file);
  EXPECT_TRUE(doc.ok()) << doc.status().to_string();
  StatusOr<ModelConfig> config = parse_model_config(*doc);
  EXPECT_TRUE(config.ok()) << file << ": " << config.status().to_string();
  return config.ok() ? *config : ModelConfig{};
}

// The fields every family needs, for small hand-made configs.
json minimal(const std::string& model_type) {
  return json{{"model_type", model_type},       {"vocab_size", 1000},           {"hidden_size", 1024},
              {"intermediate_size", 512},       {"num_hidden_layers", 4},       {"num_attention_heads", 32},
              {"max_position_embeddings", 4096}};
}

// Parses `config`, expects `code` and a message containing `text`.
void expect_error(const json& config, StatusCode code, const std::string& text) {
  StatusOr<ModelConfig> parsed = parse_model_config(config);
  ASSERT_FALSE(parsed.ok()) << "expected an error containing: " << text;
  EXPECT_EQ(parsed.status().code(), code) << parsed.status().to_string();
  EXPECT_NE(parsed.status().message().find(text), std::string::npos) << parsed.status().message();
}

TEST(ModelConfig, Llama31) {
  ModelConfig c = load_data_config("llama-3.1-8b.config.json");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.vocab_size, 128256);
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.intermediate_size, 14336);
  EXPECT_EQ(c.num_hidden_layers, 32);
  EXPECT_EQ(c.num_attention_heads, 32);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.num_query_groups(), 4);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings || c.qk_norm || c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_FALSE(c.sliding_window.has_value());
  EXPECT_EQ(c.bos_token_id, std::optional<int>(128000));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{128001, 128008, 128009}));
  EXPECT_EQ(c.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.rotary_dim, 128);
  EXPECT_DOUBLE_EQ(c.rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c.rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
}

TEST(ModelConfig, Llama2DefaultsAndNullRopeScaling) {
  ModelConfig c = load_data_config("llama-2-7b.config.json");
  EXPECT_EQ(c.num_key_value_heads, 32);  // absent: num_attention_heads
  EXPECT_EQ(c.head_dim, 128);            // hidden_size / num_attention_heads
  EXPECT_EQ(c.rope.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c.rope.theta, 10000.0);  // absent: transformers' default_theta
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{2});
}

TEST(ModelConfig, RopeParametersStyle) {
  ModelConfig c = load_data_config("llama-3.2-1b.rope-parameters.config.json");
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(c.rope.theta, 500000.0);  // from inside rope_parameters
  EXPECT_DOUBLE_EQ(c.rope.factor, 32.0);
  EXPECT_EQ(c.rope.rotary_dim, 64);
}

TEST(ModelConfig, LinearWithOldTypeKey) {
  ModelConfig c = load_data_config("llama-linear-16k.config.json");
  EXPECT_EQ(c.rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c.rope.factor, 4.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
}

TEST(ModelConfig, Mistral) {
  ModelConfig v01 = load_data_config("mistral-7b-v0.1.config.json");
  EXPECT_EQ(v01.sliding_window, std::optional<int>(4096));
  EXPECT_EQ(v01.num_key_value_heads, 8);
  EXPECT_FALSE(v01.qkv_bias || v01.o_bias || v01.mlp_bias || v01.qk_norm);

  ModelConfig v03 = load_data_config("mistral-7b-v0.3.config.json");
  EXPECT_FALSE(v03.sliding_window.has_value());  // "sliding_window": null
  EXPECT_DOUBLE_EQ(v03.rope.theta, 1e6);
  EXPECT_EQ(v03.vocab_size, 32768);

  json absent = minimal("mistral");  // MistralConfig defaults: window 4096, 8 KV heads
  ModelConfig defaults = *parse_model_config(absent);
  EXPECT_EQ(defaults.sliding_window, std::optional<int>(4096));
  EXPECT_EQ(defaults.num_key_value_heads, 8);
  EXPECT_EQ(defaults.bos_token_id, std::optional<int>(1));
}

TEST(ModelConfig, Qwen2) {
  ModelConfig c = load_data_config("qwen2.5-7b.config.json");
  EXPECT_TRUE(c.qkv_bias);  // always, in Qwen2Attention
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.mlp_bias || c.qk_norm);
  EXPECT_FALSE(c.sliding_window.has_value());  // use_sliding_window: false
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.bos_token_id, std::optional<int>(151643));
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{151645});

  ModelConfig yarn = load_data_config("qwen2.5-7b.yarn.config.json");
  EXPECT_EQ(yarn.rope.type, RopeType::kYarn);
  EXPECT_DOUBLE_EQ(yarn.rope.factor, 4.0);
  EXPECT_EQ(yarn.rope.original_max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(yarn.rope.beta_fast, 32.0);
  EXPECT_DOUBLE_EQ(yarn.rope.beta_slow, 1.0);
  EXPECT_TRUE(yarn.rope.truncate);
  EXPECT_FALSE(yarn.rope.attention_factor.has_value());

  ModelConfig defaults = *parse_model_config(minimal("qwen2"));
  EXPECT_EQ(defaults.num_key_value_heads, 32);  // Qwen2Config's default
  EXPECT_FALSE(defaults.bos_token_id.has_value());
  EXPECT_TRUE(defaults.eos_token_ids.empty());
}

TEST(ModelConfig, Qwen3) {
  ModelConfig c = load_data_config("qwen3-8b.config.json");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.num_hidden_layers, 36);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);

  json biased = minimal("qwen3");
  biased["attention_bias"] = true;
  biased["num_key_value_heads"] = 4;
  ModelConfig b = *parse_model_config(biased);
  EXPECT_TRUE(b.qkv_bias && b.o_bias);
  EXPECT_EQ(b.head_dim, 128);  // Qwen3Config's default, not hidden_size / heads
}

TEST(ModelConfig, LlamaBiasFlags) {
  json config = minimal("llama");
  config["attention_bias"] = true;
  config["mlp_bias"] = true;
  ModelConfig c = *parse_model_config(config);
  EXPECT_TRUE(c.qkv_bias && c.o_bias && c.mlp_bias);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.bos_token_id, std::optional<int>(1));
}

TEST(ModelConfig, YarnMscaleAndEosList) {
  ModelConfig c = load_data_config("yarn-mscale.config.json");
  EXPECT_EQ(c.rope.type, RopeType::kYarn);
  EXPECT_EQ(c.rope.mscale, std::optional<double>(1.0));
  EXPECT_EQ(c.rope.mscale_all_dim, std::optional<double>(0.707));
  EXPECT_EQ(c.bos_token_id, std::optional<int>(0));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int>{1, 2}));
}

TEST(ModelConfig, RopeFieldPrecedence) {
  json config = minimal("llama");
  config["rope_theta"] = 1234.0;
  config["partial_rotary_factor"] = 0.5;
  config["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 99999.0}};
  ModelConfig c = *parse_model_config(config);
  EXPECT_DOUBLE_EQ(c.rope.theta, 99999.0);  // the dict wins
  EXPECT_EQ(c.rope.rotary_dim, 16);         // top-level partial_rotary_factor: int(32 · 0.5)

  // An empty rope_scaling is ignored in favour of rope_parameters.
  config["rope_scaling"] = json::object();
  config["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"partial_rotary_factor", 0.25}};
  c = *parse_model_config(config);
  EXPECT_EQ(c.rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1234.0);  // from the top level
  EXPECT_EQ(c.rope.rotary_dim, 8);         // the dict's partial_rotary_factor

  // "rope_type" wins over the older "type"; a top-level original_max_position_embeddings wins
  // over the dict's (standardize_rope_params).
  config["rope_scaling"] = {{"type", "linear"}, {"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                            {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 1024}};
  config["original_max_position_embeddings"] = 2048;
  c = *parse_model_config(config);
  EXPECT_EQ(c.rope.type, RopeType::kLlama3);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 2048);
}

TEST(ModelConfig, YarnDefaults) {
  json config = minimal("qwen2");
  config["max_position_embeddings"] = 131072;
  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", nullptr}, {"original_max_position_embeddings", 32768},
                            {"beta_fast", 0}, {"truncate", false}};
  ModelConfig c = *parse_model_config(config);
  EXPECT_DOUBLE_EQ(c.rope.factor, 4.0);      // null: max_position_embeddings / original
  EXPECT_DOUBLE_EQ(c.rope.beta_fast, 32.0);  // `or 32`
  EXPECT_FALSE(c.rope.truncate);

  config["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 2.0}};
  c = *parse_model_config(config);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 131072);  // absent: max_position_embeddings
}

TEST(ModelConfig, QwenSlidingWindow) {
  json config = minimal("qwen2");
  config["use_sliding_window"] = true;
  config["sliding_window"] = 1024;
  config["max_window_layers"] = 0;  // every layer from 0 on is windowed
  EXPECT_EQ(parse_model_config(config)->sliding_window, std::optional<int>(1024));

  config["max_window_layers"] = 4;  // none is
  EXPECT_FALSE(parse_model_config(config)->sliding_window.has_value());

  config["max_window_layers"] = 2;
  expect_error(config, StatusCode::kUnimplemented, "max_window_layers: 2 with use_sliding_window makes 2 of 4 layers");

  config.erase("max_window_layers");
  config["layer_types"] = {"sliding_attention", "sliding_attention", "sliding_attention", "sliding_attention"};
  EXPECT_EQ(parse_model_config(config)->sliding_window, std::optional<int>(1024));
  config["layer_types"][0] = "full_attention";
  expect_error(config, StatusCode::kUnimplemented, "layer_types with use_sliding_window makes 3 of 4 layers");
  config["layer_types"][0] = "chunked_attention";
  expect_error(config, StatusCode::kInvalidArgument, "layer_types[0]: \"chunked_attention\" is not supported");
  config["layer_types"] = {"full_attention"};
  expect_error(config, StatusCode::kInvalidArgument, "layer_types: has 1 entries, expected 4");

  config["use_sliding_window"] = false;  // without it nothing is windowed, whatever layer_types says
  EXPECT_FALSE(parse_model_config(config)->sliding_window.has_value());
}

TEST(ModelConfig, ErrorsNameTheField) {
  expect_error(json::array(), StatusCode::kInvalidArgument, "config must be a JSON object");
  json no_type = minimal("llama");
  no_type.erase("model_type");
  expect_error(no_type, StatusCode::kInvalidArgument, "model_type: required field is missing");
  expect_error(minimal("gpt2"), StatusCode::kUnimplemented,
               "model_type: \"gpt2\" is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text, "
               "modernbert-decoder, minimax, deepseek_v3, deepseek_v32)");

  for (const char* field : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                            "num_attention_heads", "max_position_embeddings"}) {
    json config = minimal("llama");
    config.erase(field);
    expect_error(config, StatusCode::kInvalidArgument, std::string(field) + ": required field is missing");
  }

  struct Case {
    const char* field;
    json value;
    StatusCode code;
    const char* message;
  };
  const Case cases[] = {
      {"hidden_size", "4096", StatusCode::kInvalidArgument, "hidden_size: expected an integer, got a string \"4096\""},
      {"hidden_size", 4096.0, StatusCode::kInvalidArgument, "hidden_size: expected an integer, got a number 4096.0"},
      {"num_hidden_layers", -2, StatusCode::kInvalidArgument, "num_hidden_layers: -2 is out of range"},
      {"vocab_size", 5000000000LL, StatusCode::kInvalidArgument, "vocab_size: 5000000000 is not a plausible value"},
      {"rms_norm_eps", "small", StatusCode::kInvalidArgument, "rms_norm_eps: expected a number, got a string"},
      {"rms_norm_eps", 0.0, StatusCode::kInvalidArgument, "rms_norm_eps: must be positive"},
      {"tie_word_embeddings", "yes", StatusCode::kInvalidArgument, "tie_word_embeddings: expected a boolean"},
      {"hidden_act", "gelu", StatusCode::kUnimplemented, "hidden_act: \"gelu\" is not supported (supported: silu)"},
      {"num_key_value_heads", 3, StatusCode::kInvalidArgument, "num_key_value_heads: 3 does not divide num_attention_heads (32)"},
      {"head_dim", 33, StatusCode::kInvalidArgument, "head_dim: 33 must be even"},
      {"eos_token_id", "2", StatusCode::kInvalidArgument, "eos_token_id: expected an integer or a list of integers"},
      {"eos_token_id", json::array({1, "x"}), StatusCode::kInvalidArgument, "eos_token_id[1]: expected a non-negative integer"},
      {"bos_token_id", -1, StatusCode::kInvalidArgument, "bos_token_id: -1 is out of range"},
      {"rope_scaling", "yarn", StatusCode::kInvalidArgument, "rope_scaling: expected an object, got a string"},
      {"rope_theta", -1.0, StatusCode::kInvalidArgument, "rope_theta: must be positive"},
      {"partial_rotary_factor", 1.5, StatusCode::kInvalidArgument, "partial_rotary_factor: must be in (0, 1]"},
      {"rope_scaling", json{{"rope_type", "longrope"}, {"factor", 4.0}}, StatusCode::kUnimplemented,
       "rope_scaling.rope_type: \"longrope\" is not supported (supported: default, linear, llama3, yarn)"},
      {"rope_scaling", json{{"type", "dynamic"}, {"factor", 4.0}}, StatusCode::kUnimplemented,
       "rope_scaling.type: \"dynamic\" is not supported (supported: default, linear, llama3, yarn)"},
      {"rope_parameters", json{{"rope_type", "longrope"}}, StatusCode::kUnimplemented,
       "rope_parameters.rope_type: \"longrope\" is not supported"},
      {"rope_parameters", json{{"full_attention", "default"}}, StatusCode::kInvalidArgument,
       "rope_parameters.full_attention: expected an object, got a string"},
      {"rope_parameters", json{{"sliding_attention", {{"rope_type", "longrope"}}}}, StatusCode::kUnimplemented,
       "rope_parameters.sliding_attention.rope_type: \"longrope\" is not supported"},
      {"rope_scaling", json{{"rope_type", "linear"}}, StatusCode::kInvalidArgument,
       "rope_scaling.factor: required field is missing"},
      {"rope_scaling", json{{"rope_type", "linear"}, {"factor", "4"}}, StatusCode::kInvalidArgument,
       "rope_scaling.factor: expected a number, got a string \"4\""},
      {"rope_scaling", json{{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 4.0}},
       StatusCode::kInvalidArgument, "rope_scaling.low_freq_factor: required field is missing"},
      {"rope_scaling",
       json{{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0}, {"high_freq_factor", 4.0}},
       StatusCode::kInvalidArgument, "rope_scaling.high_freq_factor: must be greater than low_freq_factor"},
      {"rope_parameters", json{{"rope_type", "yarn"}, {"factor", 4.0}, {"truncate", 1}}, StatusCode::kInvalidArgument,
       "rope_parameters.truncate: expected a boolean"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.field) + " = " + c.value.dump());
    json config = minimal("llama");
    config[c.field] = c.value;
    expect_error(config, c.code, c.message);
  }
}

TEST(ModelConfig, LoadPrefixesThePath) {
  std::string dir = (std::filesystem::temp_directory_path() / "longbow_config_XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);

  StatusOr<ModelConfig> missing = load_model_config(dir);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir + "/config.json"), std::string::npos);

  std::ofstream(dir + "/config.json") << "{\"model_type\": ";
  StatusOr<ModelConfig> bad_json = load_model_config(dir);
  EXPECT_EQ(bad_json.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_json.status().message().find("config.json: invalid JSON"), std::string::npos);

  json config = minimal("llama");
  config["hidden_act"] = "relu";
  std::ofstream(dir + "/config.json") << config.dump();
  StatusOr<ModelConfig> unsupported = load_model_config(dir);
  EXPECT_EQ(unsupported.status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(unsupported.status().message(),
            dir + "/config.json: hidden_act: \"relu\" is not supported (supported: silu)");

  config["hidden_act"] = "silu";
  std::ofstream(dir + "/config.json") << config.dump();
  EXPECT_TRUE(load_model_config(dir).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace longbow
