// ModelConfig: what the runtime needs from a Hugging Face config.json, parsed and validated once.
//
// Supported model_type values: llama, mistral, qwen2, qwen3 (Llama-style GQA), gemma2, gemma3_text and
// modernbert-decoder (local/global), minimax (lightning hybrid with MoE), deepseek_v3 and deepseek_v32
// (MLA + DeepSeek MoE; v32 with a DSA indexer on every layer), DESIGN §3. The fields are the union of what those families'
// config.json files say, parsed with each family's transformers defaults; model/arch/ turns them into
// a per-layer plan. Anything the runtime cannot honour is rejected by parse_model_config with a
// message naming the field and value.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace longbow {

enum class RopeType { kDefault, kLinear, kLlama3, kYarn };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  // Number of leading dims of each head that are rotated (half-split pairs i, i + rotary_dim/2).
  // Equals head_dim unless partial_rotary_factor < 1.
  int rotary_dim = 0;
  double factor = 1.0;                      // linear, llama3, yarn
  double low_freq_factor = 1.0;             // llama3
  double high_freq_factor = 4.0;            // llama3
  int original_max_position_embeddings = 0;  // llama3, yarn
  double beta_fast = 32.0;                  // yarn
  double beta_slow = 1.0;                   // yarn
  std::optional<double> attention_factor;   // yarn; default 0.1·ln(factor) + 1
  // yarn: when attention_factor is unset and both are non-zero, attention_factor =
  // get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim) (DeepSeek style).
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  bool truncate = true;  // yarn: floor/ceil the correction range bounds
};

// DeepSeek Sparse Attention indexer on a GQA model (DESIGN §3, §4): config keys index_n_heads,
// index_head_dim, index_topk and optional index_rope_dim (default 64). A layer is a DSA layer when
// its checkpoint has the self_attn.indexer.* tensors.
struct DsaIndexerConfig {
  int n_heads = 0;
  int head_dim = 0;   // a power of two (the Hadamard transform of the FP8 path)
  int topk = 0;       // tokens attended per query; contexts <= topk attend densely
  int rope_dim = 64;  // leading dims rotated (half-split pairs); even, <= head_dim
};

// A layer's token mixer (transformers' layer_types).
enum class LayerAttention {
  kFull,     // "full_attention": softmax attention over the whole causal prefix
  kSliding,  // "sliding_attention": the last sliding_window tokens, itself included
  kLinear,   // "linear_attention": MiniMax's lightning attention (a fixed state per sequence)
};

// A mixture-of-experts FFN. Mixtral, MiniMax: softmax top-k routing renormalized over the chosen
// experts, num_local_experts experts of intermediate_size, every layer. DeepSeek (deepseek_v3,
// deepseek_v32): sigmoid scores with a selection bias, group-limited top-k (n_group, topk_group),
// norm_topk_prob, routed_scaling_factor, n_routed_experts of moe_intermediate_size plus shared experts
// of n_shared_experts · moe_intermediate_size, and dense MLP layers where `dense_layers` says so.
struct MoeConfig {
  int num_experts = 0;  // num_local_experts / n_routed_experts
  int top_k = 0;        // num_experts_per_tok
  bool sigmoid_routing = false;
  int num_groups = 1, topk_groups = 1;  // n_group, topk_group
  bool renormalize = true;              // norm_topk_prob
  double scaling = 1.0;                 // routed_scaling_factor
  int intermediate_size = 0;            // per expert; 0: the model's intermediate_size
  int num_shared_experts = 0;           // n_shared_experts
  // Per layer: true for a dense MLP of intermediate_size (DeepSeek's first_k_dense_replace layers, or
  // mlp_layer_types "dense"). Empty: every layer is a MoE.
  std::vector<bool> dense_layers;
};

// Multi-head latent attention (deepseek_v3, deepseek_v32; model/arch/model_plan.h MlaPlan).
struct MlaConfig {
  int q_lora_rank = 0;  // 0 (null in config.json): q_proj instead of q_a_proj → norm → q_b_proj
  int kv_lora_rank = 0;
  int nope_dim = 0, rope_dim = 0, v_dim = 0;  // qk_nope_head_dim, qk_rope_head_dim, v_head_dim
  bool rope_interleave = true;  // RoPE pairs (2i, 2i + 1) of the rope dims (DeepSeek's layout)
  bool attention_bias = false;  // q_a_proj, kv_a_proj_with_mqa, o_proj biases
};

// The lightning hybrid (minimax): the prefill block of the linear layers and the residual factors of
// MiniMaxDecoderLayer, h = α · x + β · f(x) where x is the normed input of the block f.
struct LightningConfig {
  int block_size = 256;
  double full_attn_alpha = 1.0, full_attn_beta = 1.0;
  double linear_attn_alpha = 1.0, linear_attn_beta = 1.0;
  double mlp_alpha = 1.0, mlp_beta = 1.0;
};

// Fine-grained FP8 checkpoints (quantization_config quant_method "fp8", DeepSeek-V3's format): a
// weight stored as e4m3 `<name>` with fp32 `<name>_scale_inv` [ceil(N / block_rows), ceil(K / block_cols)]
// (per expert for a stacked [E, N, K]) means w[i][j] = e4m3[i][j] · scale_inv[i / block_rows][j / block_cols].
// The loader dequantizes such tensors into the compute dtype; which tensors are FP8 is read from the
// checkpoint (the router, norms, embeddings and lm_head stay in bf16 there).
struct Fp8Config {
  int block_rows = 128, block_cols = 128;  // weight_block_size
};

struct ModelConfig {
  std::string model_type;  // "llama", ..., "modernbert-decoder", "minimax" (the list above)
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // GQA: num_attention_heads % num_key_value_heads == 0
  int head_dim = 0;             // explicit head_dim, else hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;  // every norm's epsilon (ModernBERT: norm_eps, for its LayerNorms)
  bool tie_word_embeddings = false;
  bool qk_norm = false;       // qwen3: RMSNorm over each q and k head before RoPE
  bool qkv_bias = false;      // bias on q_proj, k_proj, v_proj (qwen2 always; llama attention_bias)
  bool o_bias = false;        // bias on o_proj (llama attention_bias)
  bool mlp_bias = false;      // bias on gate/up/down_proj (llama mlp_bias)
  // The window W of the kSliding layers: a query at position p attends to keys p - W + 1 .. p.
  std::optional<int> sliding_window;
  // One entry per layer. Mistral (and a qwen2/qwen3 config with use_sliding_window): every layer
  // kSliding; llama and qwen without a window: every layer kFull; the local/global families mix them.
  // parse_model_config always fills it; empty (a config built in code): every layer kSliding when
  // sliding_window is set, else kFull.
  std::vector<LayerAttention> layer_types;
  std::optional<DsaIndexerConfig> dsa;  // set when the index_* keys are present
  std::optional<MoeConfig> moe;         // minimax, deepseek: the FFN (dense_layers aside)
  std::optional<MlaConfig> mla;         // deepseek: every layer's attention is MLA
  std::optional<Fp8Config> fp8;         // quantization_config: an FP8-stored checkpoint
  std::optional<LightningConfig> lightning;  // minimax
  RopeConfig rope;        // full-attention layers, and every layer of a model with one RoPE
  RopeConfig rope_local;  // sliding layers: equal to `rope` unless the config gives local RoPE parameters
  // Gemma: the softmax scale is query_pre_attn_scalar^-0.5 instead of head_dim^-0.5.
  std::optional<double> query_pre_attn_scalar;
  std::optional<double> attn_logit_softcapping;   // Gemma 2: cap · tanh(score / cap) before the softmax
  std::optional<double> final_logit_softcapping;  // Gemma 2: cap · tanh(logit / cap)
  // The gated MLP's activation: "silu", "gelu_pytorch_tanh" or "gelu" (hidden_activation / hidden_act).
  std::string hidden_activation = "silu";
  // ModernBERT-decoder: LayerNorm biases, the prediction head's dense bias and activation, the
  // output projection's (decoder.weight) bias.
  bool norm_bias = false;
  bool classifier_bias = false;
  std::string classifier_activation = "gelu";
  bool decoder_bias = false;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;

  int num_query_groups() const { return num_attention_heads / num_key_value_heads; }
  // W when every layer is a sliding layer (then every page behind the window can go), else 0.
  int uniform_sliding_window() const {
    if (!sliding_window) return 0;
    for (LayerAttention t : layer_types) {
      if (t != LayerAttention::kSliding) return 0;
    }
    return *sliding_window;
  }
};

// Parses a config.json document. INVALID_ARGUMENT / UNIMPLEMENTED name the offending field and value.
StatusOr<ModelConfig> parse_model_config(const nlohmann::json& config_json);

// Reads `<model_dir>/config.json` and parses it; errors are prefixed with the file path.
StatusOr<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace longbow
