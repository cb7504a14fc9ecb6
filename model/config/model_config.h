// ModelConfig: what the runtime needs from a Hugging Face config.json, parsed and validated once.
//
// Supported model_type values: llama, mistral, qwen2, qwen3 (DESIGN §3, family 1). Anything the
// runtime cannot honour is rejected by parse_model_config with a message naming the field and value.
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

struct ModelConfig {
  std::string model_type;  // "llama", "mistral", "qwen2", "qwen3"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // GQA: num_attention_heads % num_key_value_heads == 0
  int head_dim = 0;             // explicit head_dim, else hidden_size / num_attention_heads
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool qk_norm = false;       // qwen3: RMSNorm over each q and k head before RoPE
  bool qkv_bias = false;      // bias on q_proj, k_proj, v_proj (qwen2 always; llama attention_bias)
  bool o_bias = false;        // bias on o_proj (llama attention_bias)
  bool mlp_bias = false;      // bias on gate/up/down_proj (llama mlp_bias)
  std::optional<int> sliding_window;  // every layer attends to the last W tokens (itself included)
  std::optional<DsaIndexerConfig> dsa;  // set when the index_* keys are present
  RopeConfig rope;
  std::optional<int> bos_token_id;
  std::vector<int> eos_token_ids;

  int num_query_groups() const { return num_attention_heads / num_key_value_heads; }
};

// Parses a config.json document. INVALID_ARGUMENT / UNIMPLEMENTED name the offending field and value.
StatusOr<ModelConfig> parse_model_config(const nlohmann::json& config_json);

// Reads `<model_dir>/config.json` and parses it; errors are prefixed with the file path.
StatusOr<ModelConfig> load_model_config(const std::string& model_dir);

}  // namespace longbow
