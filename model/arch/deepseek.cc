// DeepSeek V3 and V3.2 (model_type "deepseek_v3", "deepseek_v32"; transformers' DeepseekV3ForCausalLM,
// DeepseekV32ForCausalLM; DESIGN §3): multi-head latent attention and DeepSeek's MoE.
//   Attention (model/layers/mla_attention.h): q = q_b(RMSNorm(q_a(x))) (or q_proj(x)), per head
//     [nope | rope]; kv_a_proj_with_mqa(x) = [c | k_r], c RMSNorm'd, k_r RoPE'd and shared by every
//     head; kv_b_proj expands c into each head's [k_nope | v]. q_a/kv_a norms use eps 1e-6 (the module
//     default, whatever rms_norm_eps says). RoPE over the rope dims, interleaved pairs (2i, 2i + 1) when
//     rope_interleave: the q and kv_a rows are reordered at load so that the half-split RoPE op gives
//     transformers' values (it writes the rotated evens, then the odds). Softmax scale
//     (nope + rope)^-0.5, times mscale(factor, mscale_all_dim)² under YaRN when mscale_all_dim is set.
//   v32: a DSA indexer on every layer whose q is wq_b over the q latent (self_attn.indexer.*).
//   FFN: layers marked dense run a SwiGLU MLP of intermediate_size; the others DeepSeek's MoE: sigmoid
//     router (mlp.gate, fp32 e_score_correction_bias for the choice only, group-limited), per-expert
//     mlp.experts.N.{gate,up,down}_proj merged at load into the stacked layout, plus the shared experts.
#include <cmath>
#include <numeric>

#include "model/arch/architecture.h"

namespace longbow {
namespace {

// transformers' yarn_get_mscale.
double yarn_mscale(double scale, double mscale) { return scale <= 1.0 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

// The softmax scale of DeepseekV3Attention (yarn_apply_mscale).
float mla_softmax_scale(const ModelConfig& c) {
  const double base = 1.0 / std::sqrt(static_cast<double>(c.mla->nope_dim + c.mla->rope_dim));
  double scale = base;
  if (c.rope.type != RopeType::kDefault && c.rope.mscale_all_dim.value_or(0.0) != 0.0) {
    const double m = yarn_mscale(c.rope.factor, *c.rope.mscale_all_dim);
    scale = base * m * m;
  }
  return static_cast<float>(scale);
}

// The rope rows of one head in the order the half-split RoPE op needs them: interleaved pairs
// (2i, 2i + 1) become (i, i + rope/2).
std::vector<int64_t> rope_rows(int64_t first, int rope_dim, bool interleaved) {
  std::vector<int64_t> rows;
  for (int i = 0; i < rope_dim; ++i) {
    const int from = !interleaved ? i : i < rope_dim / 2 ? 2 * i : 2 * (i - rope_dim / 2) + 1;
    rows.push_back(first + from);
  }
  return rows;
}

LinearPlan row_view(LinearPlan whole, int64_t row_begin, int64_t out) {
  whole.row_begin = row_begin;
  whole.out = out;
  return whole;
}

MlaPlan make_mla(const ModelConfig& c, int l, ModelPlan& p) {
  const MlaConfig& m = *c.mla;
  auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
  const int64_t hidden = c.hidden_size, heads = c.num_attention_heads, qk = m.nope_dim + m.rope_dim;
  MlaPlan a;
  a.num_heads = c.num_attention_heads;
  a.nope_dim = m.nope_dim;
  a.rope_dim = m.rope_dim;
  a.v_dim = m.v_dim;
  a.kv_lora_rank = m.kv_lora_rank;
  a.q_lora_rank = m.q_lora_rank;
  LinearPlan q;
  if (m.q_lora_rank > 0) {
    a.q_a = plan::linear(name("self_attn.q_a_proj"), m.q_lora_rank, hidden, m.attention_bias);
    a.q_a_norm = plan::rms_norm(name("self_attn.q_a_layernorm.weight"), m.q_lora_rank, 1e-6);
    q = plan::linear(name("self_attn.q_b_proj"), heads * qk, m.q_lora_rank, false);
  } else {
    q = plan::linear(name("self_attn.q_proj"), heads * qk, hidden, false);
  }
  a.q_rope = row_view(q, 0, heads * m.rope_dim);
  a.q_nope = row_view(q, heads * m.rope_dim, heads * m.nope_dim);
  RowOrder q_order{q.weight, {}};
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t r : rope_rows(h * qk + m.nope_dim, m.rope_dim, m.rope_interleave)) q_order.rows.push_back(r);
  }
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < m.nope_dim; ++i) q_order.rows.push_back(h * qk + i);
  }
  p.row_orders.push_back(std::move(q_order));

  const LinearPlan kv_a =
      plan::linear(name("self_attn.kv_a_proj_with_mqa"), m.kv_lora_rank + m.rope_dim, hidden, m.attention_bias);
  a.kv_latent = row_view(kv_a, 0, m.kv_lora_rank);
  a.kv_rope = row_view(kv_a, m.kv_lora_rank, m.rope_dim);
  if (m.rope_interleave) {
    RowOrder kv_order{kv_a.weight, std::vector<int64_t>(static_cast<size_t>(m.kv_lora_rank))};
    std::iota(kv_order.rows.begin(), kv_order.rows.end(), 0);
    for (int64_t r : rope_rows(m.kv_lora_rank, m.rope_dim, true)) kv_order.rows.push_back(r);
    if (m.attention_bias) p.row_orders.push_back(RowOrder{kv_a.bias, kv_order.rows});
    p.row_orders.push_back(std::move(kv_order));
  }
  a.kv_norm = plan::rms_norm(name("self_attn.kv_a_layernorm.weight"), m.kv_lora_rank, 1e-6);
  a.kv_b = name("self_attn.kv_b_proj.weight");
  a.o = plan::linear(name("self_attn.o_proj"), hidden, heads * m.v_dim, m.attention_bias);
  a.scale = mla_softmax_scale(c);
  return a;
}

MoePlan make_moe(const ModelConfig& c, int l, ModelPlan& p) {
  const MoeConfig& m = *c.moe;
  auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
  MoePlan moe;
  moe.router = plan::linear(name("mlp.gate"), m.num_experts, c.hidden_size, false);
  moe.gate_up = name("mlp.experts.gate_up_proj");
  moe.down = name("mlp.experts.down_proj");
  moe.num_experts = m.num_experts;
  moe.top_k = m.top_k;
  moe.intermediate = m.intermediate_size;
  moe.hidden = c.hidden_size;
  moe.scoring = MoeScoring::kSigmoid;
  moe.correction_bias = name("mlp.gate.e_score_correction_bias");
  moe.num_groups = m.num_groups;
  moe.topk_groups = m.topk_groups;
  moe.renormalize = m.renormalize;
  moe.scaling = static_cast<float>(m.scaling);
  if (m.num_shared_experts > 0) {
    const int64_t inter = int64_t{m.intermediate_size} * m.num_shared_experts;
    MlpPlan shared;
    shared.gate = plan::linear(name("mlp.shared_experts.gate_proj"), inter, c.hidden_size, false);
    shared.up = plan::linear(name("mlp.shared_experts.up_proj"), inter, c.hidden_size, false);
    shared.down = plan::linear(name("mlp.shared_experts.down_proj"), c.hidden_size, inter, false);
    moe.shared = std::move(shared);
  }
  // transformers writes (and the hub stores) one tensor per expert and projection.
  TensorParts gate_up{moe.gate_up, {}}, down{moe.down, {}};
  for (int e = 0; e < m.num_experts; ++e) {
    gate_up.parts.push_back(name(fmt::format("mlp.experts.{}.gate_proj.weight", e)));
    gate_up.parts.push_back(name(fmt::format("mlp.experts.{}.up_proj.weight", e)));
    down.parts.push_back(name(fmt::format("mlp.experts.{}.down_proj.weight", e)));
  }
  p.legacy_parts.push_back(std::move(gate_up));
  p.legacy_parts.push_back(std::move(down));
  return moe;
}

}  // namespace

StatusOr<ModelPlan> make_deepseek_plan(const ModelConfig& c, const std::vector<bool>& dsa_layers) {
  if (!c.mla || !c.moe) return invalid_argument("deepseek: the config has no MLA/MoE settings");
  const int64_t hidden = c.hidden_size;
  ModelPlan p;
  p.embed = "model.embed_tokens.weight";
  p.vocab_size = c.vocab_size;
  p.hidden_size = hidden;
  p.ropes = {c.rope};
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
    LayerPlan layer;
    layer.attn_norm = plan::rms_norm(name("input_layernorm.weight"), hidden, c.rms_norm_eps);
    layer.mla = make_mla(c, l, p);
    if (c.dsa && static_cast<size_t>(l) < dsa_layers.size() && dsa_layers[static_cast<size_t>(l)]) {
      layer.mla->indexer = name("self_attn.indexer.");
      p.dsa = c.dsa;
    }
    layer.mlp_norm = plan::rms_norm(name("post_attention_layernorm.weight"), hidden, c.rms_norm_eps);
    const std::vector<bool>& dense = c.moe->dense_layers;
    if (static_cast<size_t>(l) < dense.size() && dense[static_cast<size_t>(l)]) {
      layer.mlp.gate = plan::linear(name("mlp.gate_proj"), c.intermediate_size, hidden, false);
      layer.mlp.up = plan::linear(name("mlp.up_proj"), c.intermediate_size, hidden, false);
      layer.mlp.down = plan::linear(name("mlp.down_proj"), hidden, c.intermediate_size, false);
    } else {
      layer.moe = make_moe(c, l, p);
    }
    p.layers.push_back(std::move(layer));
  }
  p.head.final_norm = plan::rms_norm("model.norm.weight", hidden, c.rms_norm_eps);
  p.head.lm_head = plan::linear("lm_head", c.vocab_size, hidden, false);
  if (c.tie_word_embeddings) p.head.lm_head.weight = p.embed;
  return p;
}

}  // namespace longbow
