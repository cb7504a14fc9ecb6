// Llama-style GQA (llama, mistral, qwen2, qwen3) and our DSA-on-GQA extension (DESIGN §3):
//   x = RMSNorm(h) → q, k, v (qkv bias: qwen2, llama attention_bias) → per-head q/k RMSNorm (qwen3)
//   → RoPE → attention (window on sliding layers; DSA layers attend to their indexer's selection)
//   → o_proj (bias: llama attention_bias); h += that; SwiGLU MLP (bias: llama mlp_bias) after
//   post_attention_layernorm; model.norm, lm_head (tied: the embedding table).
#include "model/arch/architecture.h"

namespace longbow {

StatusOr<ModelPlan> make_llama_plan(const ModelConfig& c, const std::vector<bool>& dsa_layers) {
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
    AttentionPlan& a = layer.attention;
    a.num_heads = c.num_attention_heads;
    a.num_kv_heads = c.num_key_value_heads;
    a.head_dim = c.head_dim;
    a.q = plan::linear(name("self_attn.q_proj"), q_dim, hidden, c.qkv_bias);
    a.k = plan::linear(name("self_attn.k_proj"), kv_dim, hidden, c.qkv_bias);
    a.v = plan::linear(name("self_attn.v_proj"), kv_dim, hidden, c.qkv_bias);
    a.o = plan::linear(name("self_attn.o_proj"), hidden, q_dim, c.o_bias);
    if (c.qk_norm) {
      a.q_norm = plan::rms_norm(name("self_attn.q_norm.weight"), d, c.rms_norm_eps);
      a.k_norm = plan::rms_norm(name("self_attn.k_norm.weight"), d, c.rms_norm_eps);
    }
    a.window = plan::layer_window(c, l);
    a.scale = plan::inverse_sqrt(static_cast<double>(d));
    if (c.dsa && static_cast<size_t>(l) < dsa_layers.size() && dsa_layers[static_cast<size_t>(l)]) {
      a.indexer = name("self_attn.indexer.");
      p.dsa = c.dsa;
    }
    layer.mlp_norm = plan::rms_norm(name("post_attention_layernorm.weight"), hidden, c.rms_norm_eps);
    layer.mlp.activation = Activation::kSilu;
    layer.mlp.gate = plan::linear(name("mlp.gate_proj"), inter, hidden, c.mlp_bias);
    layer.mlp.up = plan::linear(name("mlp.up_proj"), inter, hidden, c.mlp_bias);
    layer.mlp.down = plan::linear(name("mlp.down_proj"), hidden, inter, c.mlp_bias);
    p.layers.push_back(std::move(layer));
  }
  p.head.final_norm = plan::rms_norm("model.norm.weight", hidden, c.rms_norm_eps);
  p.head.lm_head = plan::linear("lm_head", c.vocab_size, hidden, false);
  if (c.tie_word_embeddings) p.head.lm_head.weight = p.embed;
  return p;
}

}  // namespace longbow
