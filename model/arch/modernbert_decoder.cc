// ModernBERT-decoder (DESIGN §3): LayerNorms (bias with norm_bias), multi-head attention with global
// and local (sliding) layers, each with its RoPE theta, a fused Wi gated-GELU MLP and a prediction
// head:
//   h = LayerNorm(embed(ids))   (model.embeddings.norm)
//   layer l: x = attn_norm(h) (layer 0: none); h += Wo(attn(x)); h += mlp.Wo(act(Wi_a x) · Wi_b x),
//            the MLP after mlp_norm; Wi's rows [0, I) are the activated half, [I, 2I) the gate
//   logits = decoder(LayerNorm(act(dense(final_norm(h))))) + decoder.bias; decoder tied to the
//   embedding table unless the checkpoint has decoder.weight.
#include "model/arch/architecture.h"

namespace longbow {

StatusOr<ModelPlan> make_modernbert_decoder_plan(const ModelConfig& c, const std::vector<bool>& dsa_layers) {
  (void)dsa_layers;
  if (c.dsa) return unimplemented("modernbert-decoder: a DSA indexer (index_*) is not supported");
  const int64_t hidden = c.hidden_size, d = c.head_dim, inter = c.intermediate_size;
  const int64_t q_dim = int64_t{c.num_attention_heads} * d, kv_dim = int64_t{c.num_key_value_heads} * d;
  ASSIGN_OR_RETURN(Activation act, plan::activation(c.hidden_activation));
  ASSIGN_OR_RETURN(Activation head_act, plan::activation(c.classifier_activation));
  const double eps = c.rms_norm_eps;
  ModelPlan p;
  p.embed = "model.embeddings.tok_embeddings.weight";
  p.vocab_size = c.vocab_size;
  p.hidden_size = hidden;
  p.embed_norm = plan::layer_norm("model.embeddings.norm", hidden, eps, c.norm_bias);
  p.ropes = {c.rope, c.rope_local};
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    auto name = [l](const std::string& suffix) { return layer_tensor_name(l, suffix); };
    LayerPlan layer;
    if (l > 0) layer.attn_norm = plan::layer_norm(name("attn_norm"), hidden, eps, c.norm_bias);
    AttentionPlan& a = layer.attention;
    a.num_heads = c.num_attention_heads;
    a.num_kv_heads = c.num_key_value_heads;
    a.head_dim = c.head_dim;
    a.q = plan::linear(name("attn.q_proj"), q_dim, hidden, c.qkv_bias);
    a.k = plan::linear(name("attn.k_proj"), kv_dim, hidden, c.qkv_bias);
    a.v = plan::linear(name("attn.v_proj"), kv_dim, hidden, c.qkv_bias);
    a.o = plan::linear(name("attn.Wo"), hidden, q_dim, c.o_bias);
    a.window = plan::layer_window(c, l);
    a.rope = a.window > 0 ? 1 : 0;
    a.scale = plan::inverse_sqrt(static_cast<double>(d));
    layer.mlp_norm = plan::layer_norm(name("mlp_norm"), hidden, eps, c.norm_bias);
    layer.mlp.activation = act;
    LinearPlan wi = plan::linear(name("mlp.Wi"), inter, hidden, c.mlp_bias);
    wi.rows = 2 * inter;
    layer.mlp.gate = wi;
    layer.mlp.up = wi;
    layer.mlp.up.row_begin = inter;
    layer.mlp.down = plan::linear(name("mlp.Wo"), hidden, inter, c.mlp_bias);
    p.layers.push_back(std::move(layer));
  }
  p.head.final_norm = plan::layer_norm("model.final_norm", hidden, eps, c.norm_bias);
  p.head.dense = plan::linear("lm_head.dense", hidden, hidden, c.classifier_bias);
  p.head.dense_activation = head_act;
  p.head.dense_norm = plan::layer_norm("lm_head.norm", hidden, eps, c.norm_bias);
  p.head.lm_head = plan::linear("decoder", c.vocab_size, hidden, c.decoder_bias);
  if (c.tie_word_embeddings) p.head.lm_head.weight = p.embed;
  return p;
}

}  // namespace longbow
