// Gemma 2 and Gemma 3 text (DESIGN §3): local/global attention with four RMSNorms per layer, each
// (1 + w) (NormPlan::unit_offset):
//   h = embed · √hidden;  a = attn(input_layernorm(h)); h += post_attention_layernorm(a)
//   m = mlp(pre_feedforward_layernorm(h)); h += post_feedforward_layernorm(m)
// Attention: softmax scale query_pre_attn_scalar^-0.5, Gemma 2's score soft-cap, Gemma 3's per-head
// q/k norms; sliding layers use the window and the local RoPE (Gemma 3: rope_local_base_freq or
// rope_parameters.sliding_attention), global layers the global RoPE (Gemma 3: linear-scaled). The
// MLP is GELU-tanh gated; the head is tied, with Gemma 2's final logit soft-cap.
#include "model/arch/architecture.h"

#include <cmath>

namespace longbow {

StatusOr<ModelPlan> make_gemma_plan(const ModelConfig& c, const std::vector<bool>& dsa_layers) {
  (void)dsa_layers;
  if (c.dsa) return unimplemented(fmt::format("{}: a DSA indexer (index_*) is not supported", c.model_type));
  const int64_t hidden = c.hidden_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * d, kv_dim = int64_t{c.num_key_value_heads} * d;
  ASSIGN_OR_RETURN(Activation act, plan::activation(c.hidden_activation));
  const double eps = c.rms_norm_eps;
  ModelPlan p;
  p.embed = "model.embed_tokens.weight";
  p.vocab_size = c.vocab_size;
  p.hidden_size = hidden;
  p.embed_scale = static_cast<float>(std::sqrt(static_cast<double>(hidden)));
  p.ropes = {c.rope, c.rope_local};
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
    LayerPlan layer;
    layer.attn_norm = plan::rms_norm(name("input_layernorm.weight"), hidden, eps, true);
    layer.attn_post_norm = plan::rms_norm(name("post_attention_layernorm.weight"), hidden, eps, true);
    layer.mlp_norm = plan::rms_norm(name("pre_feedforward_layernorm.weight"), hidden, eps, true);
    layer.mlp_post_norm = plan::rms_norm(name("post_feedforward_layernorm.weight"), hidden, eps, true);
    AttentionPlan& a = layer.attention;
    a.num_heads = c.num_attention_heads;
    a.num_kv_heads = c.num_key_value_heads;
    a.head_dim = c.head_dim;
    a.q = plan::linear(name("self_attn.q_proj"), q_dim, hidden, c.qkv_bias);
    a.k = plan::linear(name("self_attn.k_proj"), kv_dim, hidden, c.qkv_bias);
    a.v = plan::linear(name("self_attn.v_proj"), kv_dim, hidden, c.qkv_bias);
    a.o = plan::linear(name("self_attn.o_proj"), hidden, q_dim, c.o_bias);
    if (c.qk_norm) {
      a.q_norm = plan::rms_norm(name("self_attn.q_norm.weight"), d, eps, true);
      a.k_norm = plan::rms_norm(name("self_attn.k_norm.weight"), d, eps, true);
    }
    a.window = plan::layer_window(c, l);
    a.rope = a.window > 0 ? 1 : 0;
    a.scale = plan::inverse_sqrt(c.query_pre_attn_scalar.value_or(static_cast<double>(d)));
    a.softcap = static_cast<float>(c.attn_logit_softcapping.value_or(0.0));
    layer.mlp.activation = act;
    layer.mlp.gate = plan::linear(name("mlp.gate_proj"), inter, hidden, false);
    layer.mlp.up = plan::linear(name("mlp.up_proj"), inter, hidden, false);
    layer.mlp.down = plan::linear(name("mlp.down_proj"), hidden, inter, false);
    p.layers.push_back(std::move(layer));
  }
  p.head.final_norm = plan::rms_norm("model.norm.weight", hidden, eps, true);
  p.head.lm_head = plan::linear("lm_head", c.vocab_size, hidden, false);
  if (c.tie_word_embeddings) p.head.lm_head.weight = p.embed;
  p.head.final_softcap = static_cast<float>(c.final_logit_softcapping.value_or(0.0));
  return p;
}

}  // namespace longbow
