// parse_model_config for the local/global families (gemma2, gemma3_text, modernbert-decoder): both
// config styles (transformers 5's layer_types + per-layer-type rope_parameters, and the older
// sliding_window_pattern / rope_local_base_freq / local_attention / *_rope_theta keys), the
// families' defaults, and errors that name the field.
#include <gtest/gtest.h>

#include "common/json_file.h"
#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;
constexpr LayerAttention kFull = LayerAttention::kFull;
constexpr LayerAttention kSliding = LayerAttention::kSliding;

json minimal(const std::string& model_type, int layers) {
  return json{{"model_type", model_type},  {"vocab_size", 1000},          {"hidden_size", 256},
              {"intermediate_size", 512},  {"num_hidden_layers", layers}, {"num_attention_heads", 4},
              {"max_position_embeddings", 8192}};
}

TEST(LocalGlobalConfig, Gemma3LegacyKeys) {
  json j = minimal("gemma3_text", 7);
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  j["rope_local_base_freq"] = 10000.0;
  j["sliding_window"] = 1024;
  StatusOr<ModelConfig> c = parse_model_config(j);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  // sliding_window_pattern 6: layer 5 is global.
  EXPECT_EQ(c->layer_types, (std::vector<LayerAttention>{kSliding, kSliding, kSliding, kSliding, kSliding, kFull,
                                                         kSliding}));
  EXPECT_EQ(c->sliding_window, std::optional<int>(1024));
  EXPECT_EQ(c->uniform_sliding_window(), 0);
  EXPECT_EQ(c->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);  // Gemma 3's default global theta
  EXPECT_EQ(c->rope_local.type, RopeType::kDefault);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_EQ(c->rope_local.rotary_dim, 256);
  EXPECT_EQ(c->head_dim, 256);
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->query_pre_attn_scalar, std::optional<double>(256.0));
  EXPECT_FALSE(c->attn_logit_softcapping || c->final_logit_softcapping);
  EXPECT_TRUE(c->qk_norm);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_EQ(c->hidden_activation, "gelu_pytorch_tanh");
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{1}));
}

TEST(LocalGlobalConfig, Gemma3Fixture) {
  StatusOr<ModelConfig> c = load_model_config(std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity/gemma3_text");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->layer_types[5], kFull);
  EXPECT_EQ(c->sliding_window, std::optional<int>(24));
  EXPECT_EQ(c->rope.type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 20000.0);
  EXPECT_EQ(c->query_pre_attn_scalar, std::optional<double>(144.0));
}

TEST(LocalGlobalConfig, Gemma2Defaults) {
  StatusOr<ModelConfig> c = parse_model_config(minimal("gemma2", 4));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->layer_types, (std::vector<LayerAttention>{kSliding, kFull, kSliding, kFull}));
  EXPECT_EQ(c->sliding_window, std::optional<int>(4096));
  EXPECT_EQ(c->attn_logit_softcapping, std::optional<double>(50.0));
  EXPECT_EQ(c->final_logit_softcapping, std::optional<double>(30.0));
  EXPECT_FALSE(c->qk_norm);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, c->rope.theta);
  json no_caps = minimal("gemma2", 4);
  no_caps["attn_logit_softcapping"] = nullptr;
  no_caps["final_logit_softcapping"] = nullptr;
  c = parse_model_config(no_caps);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_FALSE(c->attn_logit_softcapping || c->final_logit_softcapping);
}

TEST(LocalGlobalConfig, ModernBertDecoderLegacyKeys) {
  json j = minimal("modernbert-decoder", 6);
  j["local_attention"] = 128;
  j["global_rope_theta"] = 160000.0;
  j["local_rope_theta"] = 10000.0;
  j["norm_eps"] = 1e-5;
  StatusOr<ModelConfig> c = parse_model_config(j);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->layer_types, (std::vector<LayerAttention>{kFull, kSliding, kSliding, kFull, kSliding, kSliding}));
  EXPECT_EQ(c->sliding_window, std::optional<int>(64));  // local_attention / 2
  EXPECT_DOUBLE_EQ(c->rope.theta, 160000.0);
  EXPECT_DOUBLE_EQ(c->rope_local.theta, 10000.0);
  EXPECT_EQ(c->num_key_value_heads, 4);  // multi-head attention
  EXPECT_EQ(c->head_dim, 64);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_FALSE(c->norm_bias || c->mlp_bias || c->qkv_bias || c->classifier_bias);
  EXPECT_TRUE(c->decoder_bias);
  EXPECT_EQ(c->hidden_activation, "gelu");
  EXPECT_EQ(c->classifier_activation, "gelu");
}

TEST(LocalGlobalConfig, ErrorsNameTheField) {
  json j = minimal("gemma2", 4);
  j["hidden_activation"] = "relu";
  StatusOr<ModelConfig> c = parse_model_config(j);
  EXPECT_EQ(c.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(c.status().message().find("hidden_activation: \"relu\" is not supported"), std::string::npos);
  j = minimal("gemma3_text", 4);
  j["layer_types"] = {"full_attention"};
  c = parse_model_config(j);
  EXPECT_NE(c.status().message().find("layer_types: has 1 entries, expected 4"), std::string::npos);
  j = minimal("gemma2", 2);
  j["sliding_window"] = nullptr;
  c = parse_model_config(j);
  EXPECT_NE(c.status().message().find("layer_types[0]: sliding_attention needs sliding_window"), std::string::npos)
      << c.status().to_string();
  j = minimal("gemma2", 2);
  j["final_logit_softcapping"] = -1.0;
  c = parse_model_config(j);
  EXPECT_NE(c.status().message().find("final_logit_softcapping: must be positive"), std::string::npos);
}

}  // namespace
}  // namespace longbow
