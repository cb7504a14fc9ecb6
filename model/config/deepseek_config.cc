// The config fields of DeepSeek's MLA + MoE models (model_type "deepseek_v3", "deepseek_v32"), with
// transformers 5.17's DeepseekV3Config / DeepseekV32Config defaults:
//  - MLA: q_lora_rank (1536; null: a plain q_proj), kv_lora_rank (512), qk_nope_head_dim (128),
//    qk_rope_head_dim (64, also the RoPE table's dims: head_dim), v_head_dim (128), rope_interleave
//    (true; v32 has no such key and is always interleaved), attention_bias (false).
//  - MoE: n_routed_experts (256), num_experts_per_tok (8), n_group (8), topk_group (4), norm_topk_prob
//    (true), routed_scaling_factor (2.5), n_shared_experts (1), moe_intermediate_size (2048); layers
//    below first_k_dense_replace (3) are dense MLPs of intermediate_size (v32: mlp_layer_types,
//    "dense" / "sparse", defaulting to the same). Routing is sigmoid whatever scoring_func says, as
//    in transformers.
//  - v32: the indexer (index_n_heads 64, index_head_dim 128, index_topk 2048) on every layer, its RoPE
//    over the leading qk_rope_head_dim dims (the index_* keys are parsed before this file runs).
#include "model/config/config_fields.h"

namespace longbow::config_fields {
namespace {

Status parse_mla(const Fields& fields, bool v32, ModelConfig& config) {
  MlaConfig mla;
  if (!fields.contains("q_lora_rank")) {
    mla.q_lora_rank = 1536;
  } else {
    ASSIGN_OR_RETURN(std::optional<int> rank, fields.optional_int("q_lora_rank", 1));
    mla.q_lora_rank = rank.value_or(0);
  }
  if (v32 && mla.q_lora_rank == 0) {
    return unimplemented("q_lora_rank: deepseek_v32 needs a q LoRA (its indexer reads the q latent)");
  }
  ASSIGN_OR_RETURN(mla.kv_lora_rank, fields.int_or("kv_lora_rank", 1, 512));
  ASSIGN_OR_RETURN(mla.nope_dim, fields.int_or("qk_nope_head_dim", 1, 128));
  ASSIGN_OR_RETURN(mla.rope_dim, fields.int_or("qk_rope_head_dim", 2, 64));
  ASSIGN_OR_RETURN(mla.v_dim, fields.int_or("v_head_dim", 1, 128));
  if (mla.rope_dim % 2 != 0) {
    return invalid_argument(fmt::format("qk_rope_head_dim: {} must be even for RoPE", mla.rope_dim));
  }
  mla.rope_interleave = true;
  if (!v32) {
    ASSIGN_OR_RETURN(mla.rope_interleave, fields.bool_or("rope_interleave", true));
  }
  ASSIGN_OR_RETURN(mla.attention_bias, fields.bool_or("attention_bias", false));
  config.head_dim = mla.rope_dim;  // DeepseekV3Config.head_dim: what the rotary table covers
  config.mla = mla;
  return Status::Ok();
}

Status parse_dense_layers(const Fields& fields, bool v32, MoeConfig& moe, int num_layers) {
  ASSIGN_OR_RETURN(int first_dense, fields.int_or("first_k_dense_replace", 0, 3));
  moe.dense_layers.assign(static_cast<size_t>(num_layers), false);
  for (int l = 0; l < std::min(first_dense, num_layers); ++l) moe.dense_layers[static_cast<size_t>(l)] = true;
  if (!v32 || !fields.has("mlp_layer_types")) return Status::Ok();
  const json& types = fields.at("mlp_layer_types");
  if (!types.is_array()) return fields.type_error("mlp_layer_types", "a list of strings");
  if (types.size() != moe.dense_layers.size()) {
    return invalid_argument(fmt::format("mlp_layer_types: has {} entries, expected {} (num_hidden_layers)",
                                        types.size(), num_layers));
  }
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] != "dense" && types[i] != "sparse") {
      return invalid_argument(fmt::format("mlp_layer_types[{}]: {} is not supported (supported: dense, sparse)", i,
                                          describe_json(types[i])));
    }
    moe.dense_layers[i] = types[i] == "dense";
  }
  return Status::Ok();
}

Status parse_deepseek_moe(const Fields& fields, bool v32, ModelConfig& config) {
  MoeConfig moe;
  moe.sigmoid_routing = true;
  ASSIGN_OR_RETURN(moe.num_experts, fields.int_or("n_routed_experts", 1, 256));
  ASSIGN_OR_RETURN(moe.top_k, fields.int_or("num_experts_per_tok", 1, 8));
  ASSIGN_OR_RETURN(moe.num_groups, fields.int_or("n_group", 1, 8));
  ASSIGN_OR_RETURN(moe.topk_groups, fields.int_or("topk_group", 1, 4));
  ASSIGN_OR_RETURN(moe.renormalize, fields.bool_or("norm_topk_prob", true));
  ASSIGN_OR_RETURN(moe.scaling, fields.double_or("routed_scaling_factor", 2.5));
  ASSIGN_OR_RETURN(moe.intermediate_size, fields.int_or("moe_intermediate_size", 1, 2048));
  ASSIGN_OR_RETURN(moe.num_shared_experts, fields.int_or("n_shared_experts", 0, 1));
  if (moe.num_experts % moe.num_groups != 0) {
    return invalid_argument(
        fmt::format("n_group: {} does not divide n_routed_experts ({})", moe.num_groups, moe.num_experts));
  }
  if (moe.num_experts / moe.num_groups < 2) {
    return invalid_argument(fmt::format("n_group: {} groups of n_routed_experts ({}) leave fewer than the two "
                                        "experts a group is scored by", moe.num_groups, moe.num_experts));
  }
  if (moe.topk_groups > moe.num_groups) {
    return invalid_argument(fmt::format("topk_group: {} is more than n_group ({})", moe.topk_groups, moe.num_groups));
  }
  if (moe.top_k > moe.topk_groups * (moe.num_experts / moe.num_groups)) {
    return invalid_argument(fmt::format("num_experts_per_tok: {} is more than the {} experts of topk_group ({}) "
                                        "groups", moe.top_k, moe.topk_groups * (moe.num_experts / moe.num_groups),
                                        moe.topk_groups));
  }
  if (!std::isfinite(moe.scaling) || moe.scaling <= 0.0) {
    return invalid_argument(fmt::format("routed_scaling_factor: {} must be finite and > 0", moe.scaling));
  }
  RETURN_IF_ERROR(parse_dense_layers(fields, v32, moe, config.num_hidden_layers));
  config.moe = std::move(moe);
  return Status::Ok();
}

}  // namespace

Status parse_deepseek(const Fields& fields, ModelConfig& config) {
  const bool v32 = config.model_type == "deepseek_v32";
  if (fields.has("sliding_window")) return unimplemented("sliding_window: a windowed deepseek model is not supported");
  config.layer_types.assign(static_cast<size_t>(config.num_hidden_layers), LayerAttention::kFull);
  RETURN_IF_ERROR(parse_mla(fields, v32, config));
  RETURN_IF_ERROR(parse_deepseek_moe(fields, v32, config));
  if (v32) {
    if (!config.dsa) config.dsa = DsaIndexerConfig{64, 128, 2048, config.mla->rope_dim};
    if (config.dsa->rope_dim > config.dsa->head_dim) {
      return invalid_argument(fmt::format("qk_rope_head_dim: the indexer rotates {} dims of its {} (index_head_dim)",
                                          config.dsa->rope_dim, config.dsa->head_dim));
    }
  } else if (config.dsa) {
    return unimplemented("index_n_heads: a DSA indexer on deepseek_v3 (use model_type deepseek_v32)");
  }
  return Status::Ok();
}

}  // namespace longbow::config_fields
