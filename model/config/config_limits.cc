#include "model/config/config_limits.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <string_view>

#include "common/bounded_json.h"
#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;

struct FieldLimit {
  std::string_view name;
  double max;  // inclusive
};

// Largest published values (2026) for scale: vocab 262,144 (Gemma 3); hidden 16,384 and 126 layers
// (Llama 3.1 405B); intermediate 53,248; 128 heads; head_dim 256 (MLA q/k 192, latent 512); context
// 10M (Llama 4 Scout); 384 routed experts (Kimi K2). Limits sit 4x-16x above.
constexpr FieldLimit kLimits[] = {
    {"vocab_size", 1 << 22},
    {"hidden_size", 1 << 16},
    {"intermediate_size", 1 << 18},
    {"moe_intermediate_size", 1 << 18},
    {"num_hidden_layers", 1024},
    {"num_attention_heads", 1024},
    {"num_key_value_heads", 1024},
    {"head_dim", 2048},
    {"max_position_embeddings", 1 << 26},
    {"original_max_position_embeddings", 1 << 26},
    {"sliding_window", 1 << 26},
    {"max_window_layers", 1 << 20},
    {"index_n_heads", 1024},
    {"index_head_dim", 2048},
    {"index_topk", 1 << 26},
    {"index_rope_dim", 2048},
    {"n_routed_experts", 1 << 14},
    {"num_experts", 1 << 14},
    {"num_local_experts", 1 << 14},
    {"n_shared_experts", 1024},
    {"num_experts_per_tok", 1024},
    {"first_k_dense_replace", 1024},
    {"n_group", 1024},
    {"topk_group", 1024},
    {"kv_lora_rank", 1 << 16},
    {"q_lora_rank", 1 << 16},
    {"qk_rope_head_dim", 2048},
    {"qk_nope_head_dim", 2048},
    {"v_head_dim", 2048},
};

Status check_object(const json& object, std::string_view prefix) {
  for (const FieldLimit& limit : kLimits) {
    auto it = object.find(limit.name);
    if (it == object.end() || !it->is_number()) continue;
    const double value = it->get<double>();
    if (std::isfinite(value) && value <= limit.max) continue;
    return invalid_argument(fmt::format("{}{}: {} is not a plausible value (at most {})", prefix, limit.name,
                                        describe_json(*it), limit.max));
  }
  return Status::Ok();
}

// a·b·... without overflow, or nullopt.
std::optional<int64_t> product(std::initializer_list<int64_t> factors) {
  int64_t out = 1;
  for (int64_t f : factors) {
    if (f < 0 || __builtin_mul_overflow(out, f, &out)) return std::nullopt;
  }
  return out;
}

}  // namespace

Status check_config_limits(const json& config_json) {
  if (!config_json.is_object()) return Status::Ok();  // the parser names the type error
  RETURN_IF_ERROR(check_object(config_json, ""));
  for (const char* dict : {"rope_scaling", "rope_parameters"}) {
    auto it = config_json.find(dict);
    if (it != config_json.end() && it->is_object()) RETURN_IF_ERROR(check_object(*it, std::string(dict) + "."));
  }
  return Status::Ok();
}

Status check_config_sizes(const ModelConfig& c) {
  constexpr int64_t kMaxTensorElements = int64_t{1} << 40;
  constexpr int64_t kMaxModelElements = int64_t{1} << 42;
  struct Matrix {
    const char* fields;
    std::optional<int64_t> elements;
  };
  const Matrix matrices[] = {
      {"vocab_size x hidden_size", product({c.vocab_size, c.hidden_size})},
      {"num_attention_heads x head_dim x hidden_size", product({c.num_attention_heads, c.head_dim, c.hidden_size})},
      {"num_key_value_heads x head_dim x hidden_size", product({c.num_key_value_heads, c.head_dim, c.hidden_size})},
      {"intermediate_size x hidden_size", product({c.intermediate_size, c.hidden_size})},
      {"num_local_experts x intermediate_size x hidden_size",
       product({c.moe ? c.moe->num_experts : 1, c.intermediate_size, c.hidden_size})},
      {"max_position_embeddings x head_dim", product({c.max_position_embeddings, c.head_dim})},  // RoPE tables
  };
  int64_t per_layer = 0;
  for (const Matrix& m : matrices) {
    if (!m.elements || *m.elements > kMaxTensorElements) {
      return invalid_argument(fmt::format("{}: the product is more than 2^40 elements; the config is not plausible",
                                          m.fields));
    }
    per_layer += *m.elements;  // at most 6 · 2^40: no overflow
  }
  std::optional<int64_t> total = product({per_layer, int64_t{c.num_hidden_layers} + 1});
  if (!total || *total > kMaxModelElements) {
    return invalid_argument(
        fmt::format("num_hidden_layers: {} layers of this shape are more than 2^42 elements; the config is not plausible",
                    c.num_hidden_layers));
  }
  return Status::Ok();
}

}  // namespace longbow
