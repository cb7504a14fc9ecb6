// make_model_plan on the committed parity configs: per-layer windows, RoPE tables and scales, Gemma's
// (1 + w) norms and embedding scale, ModernBERT's fused Wi and prediction head, the tensor list; and
// the cache groups the layer kinds' specs form.
#include <gtest/gtest.h>

#include <cmath>

#include "model/arch/architecture.h"
#include "model/kv_cache/cache_spec.h"

namespace longbow {
namespace {

ModelConfig fixture_config(const std::string& name) {
  StatusOr<ModelConfig> c = load_model_config(std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity/" + name);
  EXPECT_TRUE(c.ok()) << c.status().to_string();
  return c.ok() ? *c : ModelConfig{};
}

TEST(ModelPlan, Gemma3LocalGlobal) {
  const ModelConfig c = fixture_config("gemma3_text");
  StatusOr<ModelPlan> p = make_model_plan(c, {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  ASSERT_EQ(p->layers.size(), 7u);
  ASSERT_EQ(p->ropes.size(), 2u);
  EXPECT_EQ(p->ropes[0].type, RopeType::kLinear);
  EXPECT_DOUBLE_EQ(p->ropes[1].theta, 20000.0);
  for (size_t l = 0; l < 7; ++l) {
    const AttentionPlan& a = p->layers[l].attention;
    EXPECT_EQ(a.window, l == 5 ? 0 : 24) << l;
    EXPECT_EQ(a.rope, l == 5 ? 0 : 1) << l;
    EXPECT_FLOAT_EQ(a.scale, 1.0f / 12.0f);  // query_pre_attn_scalar 144
    EXPECT_EQ(a.q_norm.kind, NormKind::kRms);
    EXPECT_TRUE(a.q_norm.unit_offset);
    EXPECT_EQ(p->layers[l].mlp.activation, Activation::kGeluTanh);
    EXPECT_EQ(p->layers[l].attn_post_norm.weight, layer_tensor_name(static_cast<int>(l),
                                                                     "post_attention_layernorm.weight"));
  }
  EXPECT_FLOAT_EQ(p->embed_scale, std::sqrt(64.0f));
  EXPECT_EQ(p->head.lm_head.weight, p->embed);  // tied
  // 6 norms per layer (4 + q/k) and the final one get 1 + w.
  EXPECT_EQ(unit_offset_tensors(*p).size(), 7u * 6 + 1);
  EXPECT_EQ(plan_tensors(*p).size(), 1 + 7u * 13 + 1);

  // Every layer's cache: K and V of one 256-dim head in fp32; two groups by window.
  std::vector<CacheSpec> specs;
  for (const LayerPlan& layer : p->layers) {
    specs.push_back(PagedSpec{2 * layer.attention.num_kv_heads * layer.attention.head_dim * 4,
                              layer.attention.window});
  }
  const std::vector<CacheGroup> groups = group_cache_specs(specs, 64);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].window, 24);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 1, 2, 3, 4, 6}));
  EXPECT_EQ(groups[1].layers, (std::vector<int>{5}));
}

TEST(ModelPlan, Gemma2SoftCaps) {
  StatusOr<ModelPlan> p = make_model_plan(fixture_config("gemma2"), {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_FLOAT_EQ(p->layers[0].attention.softcap, 5.0f);
  EXPECT_FLOAT_EQ(p->head.final_softcap, 3.0f);
  EXPECT_EQ(p->layers[0].attention.window, 24);
  EXPECT_EQ(p->layers[1].attention.window, 0);
  EXPECT_EQ(p->layers[0].attention.q_norm.kind, NormKind::kNone);
}

TEST(ModelPlan, ModernBertDecoderFusedWiAndHead) {
  StatusOr<ModelPlan> p = make_model_plan(fixture_config("modernbert-decoder"), {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  EXPECT_EQ(p->embed_norm.kind, NormKind::kLayer);
  EXPECT_EQ(p->layers[0].attn_norm.kind, NormKind::kNone);
  EXPECT_EQ(p->layers[1].attn_norm.kind, NormKind::kLayer);
  const MlpPlan& mlp = p->layers[0].mlp;
  EXPECT_EQ(mlp.gate.weight, mlp.up.weight);
  EXPECT_EQ(mlp.gate.row_begin, 0);
  EXPECT_EQ(mlp.up.row_begin, 160);
  EXPECT_EQ(mlp.up.rows, 320);
  EXPECT_EQ(mlp.activation, Activation::kGelu);
  EXPECT_EQ(p->head.dense.weight, "lm_head.dense.weight");
  EXPECT_EQ(p->head.lm_head.bias, "decoder.bias");
  EXPECT_EQ(p->layers[0].attention.window, 0);  // layer 0 is global
  EXPECT_EQ(p->layers[1].attention.window, 24);
  EXPECT_EQ(p->layers[1].attention.rope, 1);
  EXPECT_FLOAT_EQ(p->layers[0].attention.scale, 1.0f / std::sqrt(32.0f));
}

TEST(ModelPlan, UnknownModelTypeIsUnimplemented) {
  ModelConfig c = fixture_config("llama");
  c.model_type = "gpt2";
  EXPECT_EQ(make_model_plan(c, {}).status().code(), StatusCode::kUnimplemented);
  EXPECT_EQ(find_architecture("qwen3")->name, "llama");
  EXPECT_EQ(find_architecture("gemma3_text")->name, "gemma");
}

// MiniMax: lightning layers with transformers' slope schedule, a softmax layer, the stacked MoE
// tensors with their Mixtral-style per-expert alternatives, and the scaled residuals.
TEST(ModelPlan, MinimaxLightningHybrid) {
  const nlohmann::json j = {{"model_type", "minimax"}, {"vocab_size", 100}, {"hidden_size", 64},
                            {"intermediate_size", 48}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
                            {"num_key_value_heads", 2}, {"max_position_embeddings", 256},
                            {"layer_types", {"linear_attention", "full_attention", "linear_attention"}},
                            {"num_local_experts", 3}, {"linear_attn_alpha_factor", 2.0}, {"mlp_beta_factor", 0.5}};
  StatusOr<ModelConfig> c = parse_model_config(j);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  StatusOr<ModelPlan> p = make_model_plan(*c, {});
  ASSERT_TRUE(p.ok()) << p.status().to_string();
  ASSERT_EQ(p->layers.size(), 3u);
  ASSERT_TRUE(p->layers[0].lightning.has_value());
  EXPECT_FALSE(p->layers[1].lightning.has_value());
  const LightningPlan& l0 = *p->layers[0].lightning;
  EXPECT_EQ(l0.qkv.out, 3 * 4 * 16);
  EXPECT_EQ(l0.norm.size, 64);
  EXPECT_FLOAT_EQ(l0.norm.eps, 1e-6f);  // the module's default, not rms_norm_eps
  // slope_h = 2^(−8(h+1)/H) · (1 − l/(L − 1 + 1e-5) + 1e-5): layer 0 ≈ 1, the last layer ≈ 0.
  for (int h = 0; h < 4; ++h) {
    const double base = std::pow(2.0, -8.0 * (h + 1) / 4);
    EXPECT_NEAR(l0.slopes[static_cast<size_t>(h)], base * (1.0 + 1e-5), 1e-7 * base) << h;
    EXPECT_NEAR(p->layers[2].lightning->slopes[static_cast<size_t>(h)], base * (1.0 - 2.0 / (2.0 + 1e-5) + 1e-5),
                1e-6 * base) << h;
  }
  EXPECT_FLOAT_EQ(p->layers[0].attn_residual->alpha, 2.0f);
  EXPECT_FLOAT_EQ(p->layers[1].attn_residual->alpha, 1.0f);
  EXPECT_FLOAT_EQ(p->layers[2].mlp_residual->beta, 0.5f);
  const std::vector<TensorSpec> specs = plan_tensors(*p);
  auto shape_of = [&specs](const std::string& name) {
    for (const TensorSpec& s : specs) {
      if (s.name == name) return s.shape;
    }
    return std::vector<int64_t>{};
  };
  EXPECT_EQ(shape_of("model.layers.0.self_attn.qkv_proj.weight"), (std::vector<int64_t>{192, 64}));
  EXPECT_EQ(shape_of("model.layers.0.self_attn.output_gate.weight"), (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(shape_of("model.layers.1.self_attn.k_proj.weight"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(shape_of("model.layers.2.mlp.experts.gate_up_proj"), (std::vector<int64_t>{3, 96, 64}));
  EXPECT_EQ(shape_of("model.layers.2.mlp.experts.down_proj"), (std::vector<int64_t>{3, 64, 48}));
  EXPECT_EQ(shape_of("model.layers.2.mlp.gate.weight"), (std::vector<int64_t>{3, 64}));
  EXPECT_TRUE(shape_of("model.layers.0.self_attn.q_proj.weight").empty());
  ASSERT_EQ(p->legacy_parts.size(), 9u);  // gate_up, down, router per layer
  EXPECT_EQ(p->legacy_parts[0].name, "model.layers.0.mlp.experts.gate_up_proj");
  EXPECT_EQ(p->legacy_parts[0].parts[1], "model.layers.0.block_sparse_moe.experts.0.w3.weight");
  std::vector<CacheSpec> per_layer = {StateSpec{4 * 16 * 16 * 4}, PagedSpec{2 * 32 * 2, 0}, StateSpec{4 * 16 * 16 * 4}};
  const std::vector<CacheGroup> groups = group_cache_specs(per_layer, 64);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].is_state);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 2}));
}

}  // namespace
}  // namespace longbow
