// parse_model_config and the plan for DeepSeek's MLA + MoE models (model_type deepseek_v3, deepseek_v32):
// DeepSeek-V3's own config.json (as on the hub) with transformers 5.17's reading of it (YaRN, the
// softmax scale with mscale², the dense first layers, sigmoid group routing), V3.2's indexer defaults,
// the FP8 quantization_config, and errors that name the field.
#include <gtest/gtest.h>

#include "model/arch/architecture.h"
#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;

// deepseek-ai/DeepSeek-V3's config.json (the keys transformers reads).
json deepseek_v3() {
  return json{{"model_type", "deepseek_v3"}, {"vocab_size", 129280}, {"hidden_size", 7168},
              {"intermediate_size", 18432}, {"moe_intermediate_size", 2048}, {"num_hidden_layers", 61},
              {"num_attention_heads", 128}, {"num_key_value_heads", 128}, {"n_shared_experts", 1},
              {"n_routed_experts", 256}, {"routed_scaling_factor", 2.5}, {"kv_lora_rank", 512},
              {"q_lora_rank", 1536}, {"qk_rope_head_dim", 64}, {"v_head_dim", 128}, {"qk_nope_head_dim", 128},
              {"topk_method", "noaux_tc"}, {"n_group", 8}, {"topk_group", 4}, {"num_experts_per_tok", 8},
              {"moe_layer_freq", 1}, {"first_k_dense_replace", 3}, {"norm_topk_prob", true},
              {"scoring_func", "sigmoid"}, {"hidden_act", "silu"}, {"max_position_embeddings", 163840},
              {"rms_norm_eps", 1e-6}, {"rope_theta", 10000}, {"tie_word_embeddings", false},
              {"bos_token_id", 0}, {"eos_token_id", 1},
              {"rope_scaling", {{"beta_fast", 32}, {"beta_slow", 1}, {"factor", 40}, {"mscale", 1.0},
                                {"mscale_all_dim", 1.0}, {"original_max_position_embeddings", 4096},
                                {"type", "yarn"}}},
              {"quantization_config", {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                                       {"weight_block_size", {128, 128}}}}};
}

TEST(DeepseekConfig, DeepSeekV3AsTransformersReadsIt) {
  StatusOr<ModelConfig> c = parse_model_config(deepseek_v3());
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE(c->mla.has_value());
  EXPECT_EQ(c->mla->q_lora_rank, 1536);
  EXPECT_EQ(c->mla->kv_lora_rank, 512);
  EXPECT_TRUE(c->mla->rope_interleave);
  EXPECT_EQ(c->head_dim, 64);  // the rotary table's dims
  EXPECT_EQ(c->rope.type, RopeType::kYarn);
  ASSERT_TRUE(c->moe.has_value());
  EXPECT_TRUE(c->moe->sigmoid_routing);
  EXPECT_EQ(c->moe->num_experts, 256);
  EXPECT_EQ(c->moe->num_groups, 8);
  EXPECT_EQ(c->moe->intermediate_size, 2048);
  ASSERT_EQ(c->moe->dense_layers.size(), 61u);
  EXPECT_TRUE(c->moe->dense_layers[2]);
  EXPECT_FALSE(c->moe->dense_layers[3]);
  ASSERT_TRUE(c->fp8.has_value());
  EXPECT_EQ(c->fp8->block_rows, 128);
  EXPECT_FALSE(c->dsa.has_value());

  StatusOr<ModelPlan> plan = make_model_plan(*c, {});
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_TRUE(plan->layers[0].mla.has_value());
  // 192^-0.5 · (0.1 · ln 40 + 1)² (transformers' yarn_apply_mscale).
  EXPECT_NEAR(plan->layers[0].mla->scale, 0.13523377886, 1e-7);
  EXPECT_FALSE(plan->layers[2].moe.has_value());
  ASSERT_TRUE(plan->layers[3].moe.has_value());
  EXPECT_EQ(plan->layers[3].moe->shared->gate.out, 2048);
  EXPECT_EQ(plan->layers[3].moe->correction_bias, "model.layers.3.mlp.gate.e_score_correction_bias");
  EXPECT_FLOAT_EQ(plan->layers[3].moe->scaling, 2.5f);
  ASSERT_TRUE(plan->fp8.has_value());
}

TEST(DeepseekConfig, V32HasAnIndexerOnTheQLatent) {
  json j = deepseek_v3();
  j["model_type"] = "deepseek_v32";
  j.erase("quantization_config");
  StatusOr<ModelConfig> c = parse_model_config(j);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE(c->dsa.has_value());
  EXPECT_EQ(c->dsa->n_heads, 64);
  EXPECT_EQ(c->dsa->head_dim, 128);
  EXPECT_EQ(c->dsa->topk, 2048);
  EXPECT_EQ(c->dsa->rope_dim, 64);
  StatusOr<ModelPlan> plan = make_model_plan(*c, std::vector<bool>(61, true));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  bool has_wq_b = false;
  for (const TensorSpec& spec : plan_tensors(*plan)) {
    if (spec.name == "model.layers.0.self_attn.indexer.wq_b.weight") {
      has_wq_b = true;
      EXPECT_EQ(spec.shape, (std::vector<int64_t>{64 * 128, 1536}));
    }
  }
  EXPECT_TRUE(has_wq_b);
}

TEST(DeepseekConfig, ErrorsNameTheField) {
  auto error = [](json j) {
    StatusOr<ModelConfig> c = parse_model_config(j);
    return c.ok() ? std::string("ok") : c.status().to_string();
  };
  json j = deepseek_v3();
  j["n_group"] = 7;
  EXPECT_NE(error(j).find("n_group"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["topk_group"] = 9;
  EXPECT_NE(error(j).find("topk_group"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["quantization_config"]["quant_method"] = "awq";
  EXPECT_NE(error(j).find("quantization_config.quant_method"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["quantization_config"]["weight_block_size"] = {128};
  EXPECT_NE(error(j).find("quantization_config.weight_block_size"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["quantization_config"]["activation_scheme"] = "static";
  EXPECT_NE(error(j).find("activation_scheme"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["model_type"] = "deepseek_v32";
  j["q_lora_rank"] = nullptr;
  EXPECT_NE(error(j).find("q_lora_rank"), std::string::npos) << error(j);
  j = deepseek_v3();
  j["index_n_heads"] = 4;  // an indexer needs model_type deepseek_v32
  j["index_head_dim"] = 128;
  j["index_topk"] = 16;
  EXPECT_NE(error(j).find("index_n_heads"), std::string::npos) << error(j);
}

}  // namespace
}  // namespace longbow
