// parse_model_config for the lightning hybrid (model_type minimax): transformers 5.17's MiniMaxConfig
// defaults, the per-layer linear/full types, the residual factors and the MoE, and errors that name
// the field.
#include <gtest/gtest.h>

#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;
constexpr LayerAttention kFull = LayerAttention::kFull;
constexpr LayerAttention kLinear = LayerAttention::kLinear;

json minimal(int layers) {
  return json{{"model_type", "minimax"},  {"vocab_size", 1000},          {"hidden_size", 256},
              {"intermediate_size", 512}, {"num_hidden_layers", layers}, {"num_attention_heads", 8},
              {"max_position_embeddings", 8192}};
}

TEST(MinimaxConfig, Defaults) {
  StatusOr<ModelConfig> c = parse_model_config(minimal(4));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  // MiniMaxConfig.__post_init__: even layers full, odd layers linear.
  EXPECT_EQ(c->layer_types, (std::vector<LayerAttention>{kFull, kLinear, kFull, kLinear}));
  EXPECT_EQ(c->num_key_value_heads, 8);
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(c->rope.theta, 1000000.0);
  ASSERT_TRUE(c->lightning.has_value());
  EXPECT_EQ(c->lightning->block_size, 256);
  EXPECT_DOUBLE_EQ(c->lightning->linear_attn_alpha, 1.0);
  EXPECT_DOUBLE_EQ(c->lightning->mlp_beta, 1.0);
  ASSERT_TRUE(c->moe.has_value());
  EXPECT_EQ(c->moe->num_experts, 8);
  EXPECT_EQ(c->moe->top_k, 2);
  EXPECT_EQ(c->bos_token_id, std::optional<int>(1));
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{2});
}

// MiniMax-Text-01's layout: 7 linear layers, then 1 softmax layer; DeepNorm-style alpha.
TEST(MinimaxConfig, TextZeroOneLayout) {
  json j = minimal(8);
  j["layer_types"] = json::array();
  for (int i = 0; i < 8; ++i) j["layer_types"].push_back(i == 7 ? "full_attention" : "linear_attention");
  j["block_size"] = 64;
  j["num_local_experts"] = 32;
  j["num_experts_per_tok"] = 2;
  j["head_dim"] = 128;
  j["num_key_value_heads"] = 2;
  for (const char* k : {"full_attn_alpha_factor", "linear_attn_alpha_factor", "mlp_alpha_factor"}) j[k] = 3.5565588200778455;
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000000.0}, {"partial_rotary_factor", 0.5}};
  StatusOr<ModelConfig> c = parse_model_config(j);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->layer_types[6], kLinear);
  EXPECT_EQ(c->layer_types[7], kFull);
  EXPECT_EQ(c->lightning->block_size, 64);
  EXPECT_DOUBLE_EQ(c->lightning->full_attn_alpha, 3.5565588200778455);
  EXPECT_DOUBLE_EQ(c->lightning->full_attn_beta, 1.0);
  EXPECT_EQ(c->moe->num_experts, 32);
  EXPECT_EQ(c->rope.rotary_dim, 64);
  EXPECT_DOUBLE_EQ(c->rope.theta, 10000000.0);
}

TEST(MinimaxConfig, ErrorsNameTheField) {
  auto error = [](json j) {
    StatusOr<ModelConfig> c = parse_model_config(j);
    return c.ok() ? std::string("ok") : c.status().message();
  };
  json j = minimal(2);
  j["layer_types"] = {"linear_attention", "sliding_attention"};
  EXPECT_NE(error(j).find("layer_types[1]"), std::string::npos) << error(j);
  j = minimal(2);
  j["layer_types"] = {"linear_attention"};
  EXPECT_NE(error(j).find("layer_types: has 1 entries"), std::string::npos) << error(j);
  j = minimal(2);
  j["num_experts_per_tok"] = 9;
  EXPECT_NE(error(j).find("num_experts_per_tok"), std::string::npos) << error(j);
  j = minimal(2);
  j["block_size"] = 0;
  EXPECT_NE(error(j).find("block_size"), std::string::npos) << error(j);
  j = minimal(2);
  j["sliding_window"] = 4096;
  EXPECT_NE(error(j).find("sliding_window"), std::string::npos) << error(j);
  j = minimal(2);
  j["hidden_act"] = "gelu";
  EXPECT_NE(error(j).find("hidden_act"), std::string::npos) << error(j);
  j = minimal(2);
  j["num_local_experts"] = 1e9;  // implausible: rejected before any allocation
  EXPECT_NE(error(j).find("num_local_experts"), std::string::npos) << error(j);
}

}  // namespace
}  // namespace longbow
