// The config fields of the lightning hybrid (model_type "minimax"), with transformers 5.17's
// MiniMaxConfig defaults:
//  - layer_types: "linear_attention" / "full_attention" per layer; absent, the layers alternate,
//    even layers full (MiniMaxConfig.__post_init__; real checkpoints list them).
//  - block_size (256), the residual factors {full_attn, linear_attn, mlp}_{alpha, beta}_factor (1).
//  - The MoE FFN: num_local_experts (8) experts of intermediate_size, num_experts_per_tok (2).
//  - (hidden_act must be silu: checked by the caller); sliding_window must be null (MiniMax's softmax layers would then be
//    windowed, which this family does not do here).
#include <cmath>

#include "model/config/config_fields.h"

namespace longbow::config_fields {
namespace {

Status parse_hybrid_layer_types(const Fields& fields, ModelConfig& config) {
  const auto n = static_cast<size_t>(config.num_hidden_layers);
  config.layer_types.assign(n, LayerAttention::kFull);
  if (!fields.has("layer_types")) {
    for (size_t i = 0; i < n; ++i) config.layer_types[i] = i % 2 == 0 ? LayerAttention::kFull : LayerAttention::kLinear;
    return Status::Ok();
  }
  const json& types = fields.at("layer_types");
  if (!types.is_array()) return fields.type_error("layer_types", "a list of strings");
  if (types.size() != n) {
    return invalid_argument(fmt::format("layer_types: has {} entries, expected {} (num_hidden_layers)", types.size(), n));
  }
  for (size_t i = 0; i < n; ++i) {
    if (types[i] == "linear_attention") {
      config.layer_types[i] = LayerAttention::kLinear;
    } else if (types[i] != "full_attention") {
      return invalid_argument(fmt::format("layer_types[{}]: {} is not supported (supported: linear_attention, "
                                          "full_attention)", i, describe_json(types[i])));
    }
  }
  return Status::Ok();
}

Status parse_factor(const Fields& fields, const char* key, double* out) {
  ASSIGN_OR_RETURN(*out, fields.double_or(key, 1.0));
  if (!std::isfinite(*out)) return invalid_argument(fmt::format("{}: must be finite", fields.path(key)));
  return Status::Ok();
}

}  // namespace

Status parse_minimax(const Fields& fields, ModelConfig& config) {
  if (fields.has("sliding_window")) {
    return unimplemented("sliding_window: a windowed minimax model is not supported (the key must be null)");
  }
  RETURN_IF_ERROR(parse_hybrid_layer_types(fields, config));
  LightningConfig lightning;
  ASSIGN_OR_RETURN(lightning.block_size, fields.int_or("block_size", 1, 256));
  RETURN_IF_ERROR(parse_factor(fields, "full_attn_alpha_factor", &lightning.full_attn_alpha));
  RETURN_IF_ERROR(parse_factor(fields, "full_attn_beta_factor", &lightning.full_attn_beta));
  RETURN_IF_ERROR(parse_factor(fields, "linear_attn_alpha_factor", &lightning.linear_attn_alpha));
  RETURN_IF_ERROR(parse_factor(fields, "linear_attn_beta_factor", &lightning.linear_attn_beta));
  RETURN_IF_ERROR(parse_factor(fields, "mlp_alpha_factor", &lightning.mlp_alpha));
  RETURN_IF_ERROR(parse_factor(fields, "mlp_beta_factor", &lightning.mlp_beta));
  config.lightning = lightning;
  MoeConfig moe;
  ASSIGN_OR_RETURN(moe.num_experts, fields.int_or("num_local_experts", 1, 8));
  ASSIGN_OR_RETURN(moe.top_k, fields.int_or("num_experts_per_tok", 1, 2));
  if (moe.top_k > moe.num_experts) {
    return invalid_argument(fmt::format("num_experts_per_tok: {} is more than num_local_experts ({})", moe.top_k,
                                        moe.num_experts));
  }
  config.moe = moe;
  return Status::Ok();
}

}  // namespace longbow::config_fields
