// MiniMax (model_type "minimax", transformers' MiniMaxForCausalLM; DESIGN §3): the lightning hybrid.
//   layer_types[l] == linear_attention: lightning attention (model/layers/lightning_attention.h):
//     qkv_proj → SiLU → per-head decayed linear attention → RMSNorm over all heads (eps 1e-6, the
//     module default) → ⊙ sigmoid(output_gate(x)) → out_proj; decay slope of head h in layer l:
//     2^(−8(h+1)/H) · (1 − l / (L − 1 + 1e-5) + 1e-5)
//   full_attention: Mixtral-style GQA with RoPE (partial when rope_parameters says so), no biases.
//   Residuals from the normed inputs: h = α·x + β·attn(x), then h = α'·y + β'·moe(y), y = norm(h).
//   FFN: softmax top-k MoE, renormalized (router mlp.gate, stacked experts mlp.experts.gate_up_proj /
//   down_proj; Mixtral-style per-expert block_sparse_moe.experts.N.w1/w3/w2 checkpoints are merged).
#include <cmath>

#include "model/arch/architecture.h"

namespace longbow {
namespace {

// transformers' MiniMaxLightningAttention.get_slope_rate, in its fp32 arithmetic.
std::vector<float> slope_rates(int num_heads, int layer, int num_layers) {
  const double base = 1.0 / std::pow(2.0, 8.0 / num_heads);
  const auto factor = static_cast<float>(1.0 - layer / (num_layers - 1 + 1e-5) + 1e-5);
  std::vector<float> slopes(static_cast<size_t>(num_heads));
  for (int h = 0; h < num_heads; ++h) slopes[static_cast<size_t>(h)] = static_cast<float>(std::pow(base, h + 1)) * factor;
  return slopes;
}

void add_legacy_moe_parts(int l, const MoePlan& moe, std::vector<TensorParts>& legacy) {
  auto old_name = [l](int e, const char* w) {
    return layer_tensor_name(l, fmt::format("block_sparse_moe.experts.{}.{}.weight", e, w));
  };
  TensorParts gate_up{moe.gate_up, {}}, down{moe.down, {}};
  for (int e = 0; e < moe.num_experts; ++e) {
    gate_up.parts.push_back(old_name(e, "w1"));  // gate
    gate_up.parts.push_back(old_name(e, "w3"));  // up
    down.parts.push_back(old_name(e, "w2"));
  }
  legacy.push_back(std::move(gate_up));
  legacy.push_back(std::move(down));
  legacy.push_back(TensorParts{moe.router.weight, {layer_tensor_name(l, "block_sparse_moe.gate.weight")}});
}

}  // namespace

StatusOr<ModelPlan> make_minimax_plan(const ModelConfig& c, const std::vector<bool>& dsa_layers) {
  (void)dsa_layers;
  if (c.dsa) return unimplemented("minimax: a DSA indexer (index_*) is not supported");
  if (!c.lightning || !c.moe) return invalid_argument("minimax: the config has no lightning/MoE settings");
  const LightningConfig& lc = *c.lightning;
  const int64_t hidden = c.hidden_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * d, kv_dim = int64_t{c.num_key_value_heads} * d;
  ModelPlan p;
  p.embed = "model.embed_tokens.weight";
  p.vocab_size = c.vocab_size;
  p.hidden_size = hidden;
  p.ropes = {c.rope};
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
    LayerPlan layer;
    layer.attn_norm = plan::rms_norm(name("input_layernorm.weight"), hidden, c.rms_norm_eps);
    const bool linear = c.layer_types[static_cast<size_t>(l)] == LayerAttention::kLinear;
    if (linear) {
      LightningPlan a;
      a.num_heads = c.num_attention_heads;
      a.head_dim = c.head_dim;
      a.qkv = plan::linear(name("self_attn.qkv_proj"), 3 * q_dim, hidden, false);
      a.output_gate = plan::linear(name("self_attn.output_gate"), q_dim, hidden, false);
      a.out = plan::linear(name("self_attn.out_proj"), hidden, q_dim, false);
      a.norm = plan::rms_norm(name("self_attn.norm.weight"), q_dim, 1e-6);
      a.slopes = slope_rates(c.num_attention_heads, l, c.num_hidden_layers);
      a.block_size = lc.block_size;
      layer.lightning = std::move(a);
      layer.attn_residual = ScaledResidual{static_cast<float>(lc.linear_attn_alpha),
                                           static_cast<float>(lc.linear_attn_beta)};
    } else {
      AttentionPlan& a = layer.attention;
      a.num_heads = c.num_attention_heads;
      a.num_kv_heads = c.num_key_value_heads;
      a.head_dim = c.head_dim;
      a.q = plan::linear(name("self_attn.q_proj"), q_dim, hidden, false);
      a.k = plan::linear(name("self_attn.k_proj"), kv_dim, hidden, false);
      a.v = plan::linear(name("self_attn.v_proj"), kv_dim, hidden, false);
      a.o = plan::linear(name("self_attn.o_proj"), hidden, q_dim, false);
      a.scale = plan::inverse_sqrt(static_cast<double>(d));
      layer.attn_residual = ScaledResidual{static_cast<float>(lc.full_attn_alpha), static_cast<float>(lc.full_attn_beta)};
    }
    layer.mlp_norm = plan::rms_norm(name("post_attention_layernorm.weight"), hidden, c.rms_norm_eps);
    MoePlan moe;
    moe.router = plan::linear(name("mlp.gate"), c.moe->num_experts, hidden, false);
    moe.gate_up = name("mlp.experts.gate_up_proj");
    moe.down = name("mlp.experts.down_proj");
    moe.num_experts = c.moe->num_experts;
    moe.top_k = c.moe->top_k;
    moe.intermediate = inter;
    moe.hidden = hidden;
    add_legacy_moe_parts(l, moe, p.legacy_parts);
    layer.moe = std::move(moe);
    layer.mlp_residual = ScaledResidual{static_cast<float>(lc.mlp_alpha), static_cast<float>(lc.mlp_beta)};
    p.layers.push_back(std::move(layer));
  }
  p.head.final_norm = plan::rms_norm("model.norm.weight", hidden, c.rms_norm_eps);
  p.head.lm_head = plan::linear("lm_head", c.vocab_size, hidden, false);
  if (c.tie_word_embeddings) p.head.lm_head.weight = p.embed;
  return p;
}

}  // namespace longbow
