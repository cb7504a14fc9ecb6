// RoPE parameters of a config.json (see model_config.cc for the transformers version followed).
#include <string>

#include "model/config/config_fields.h"

namespace longbow::config_fields {

namespace {

// One RoPE dict (`rope` names it for errors) into `out`. Keys inside the dict win over top-level
// ones, as in standardize_rope_params; `original_max_position_embeddings` at top level wins over the
// dict's. `default_theta`: the family's rope_theta when neither gives one.
Status parse_rope_dict(const Fields& fields, const Fields& rope, const ModelConfig& config, double default_theta,
                       RopeConfig& out) {
  std::string type = "default";
  std::string type_field = "rope_type";
  ASSIGN_OR_RETURN(std::optional<std::string> rope_type, rope.optional_string("rope_type"));
  if (!rope_type) {
    type_field = "type";
    ASSIGN_OR_RETURN(rope_type, rope.optional_string("type"));
  }
  if (rope_type) type = *rope_type;
  if (type == "default") {
    out.type = RopeType::kDefault;
  } else if (type == "linear") {
    out.type = RopeType::kLinear;
  } else if (type == "llama3") {
    out.type = RopeType::kLlama3;
  } else if (type == "yarn") {
    out.type = RopeType::kYarn;
  } else {
    return unimplemented(rope.path(type_field) + ": \"" + type +
                         "\" is not supported (supported: default, linear, llama3, yarn)");
  }

  if (rope.has("rope_theta")) {
    ASSIGN_OR_RETURN(out.theta, rope.required_double("rope_theta"));
    RETURN_IF_ERROR(require_positive(rope.path("rope_theta"), out.theta));
  } else {
    ASSIGN_OR_RETURN(out.theta, fields.double_or("rope_theta", default_theta));
    RETURN_IF_ERROR(require_positive("rope_theta", out.theta));
  }

  const Fields& prf_source = rope.has("partial_rotary_factor") ? rope : fields;
  ASSIGN_OR_RETURN(double partial_rotary_factor, prf_source.double_or("partial_rotary_factor", 1.0));
  if (!(partial_rotary_factor > 0.0 && partial_rotary_factor <= 1.0)) {
    return invalid_argument(prf_source.path("partial_rotary_factor") + ": must be in (0, 1], got " +
                            json(partial_rotary_factor).dump());
  }
  // int(head_dim * partial_rotary_factor), as every rope init function computes `dim`.
  out.rotary_dim = static_cast<int>(config.head_dim * partial_rotary_factor);
  if (out.rotary_dim < 2 || out.rotary_dim % 2 != 0) {
    return invalid_argument(prf_source.path("partial_rotary_factor") + ": " + json(partial_rotary_factor).dump() +
                            " gives " + std::to_string(out.rotary_dim) + " rotary dims of head_dim " +
                            std::to_string(config.head_dim) + "; they must be even and at least 2");
  }
  if (out.type == RopeType::kDefault) return Status::Ok();

  if (out.type == RopeType::kLlama3 || out.type == RopeType::kYarn) {
    if (fields.has("original_max_position_embeddings")) {
      ASSIGN_OR_RETURN(out.original_max_position_embeddings,
                       fields.required_int("original_max_position_embeddings", 1));
    } else {
      ASSIGN_OR_RETURN(out.original_max_position_embeddings,
                       rope.int_or("original_max_position_embeddings", 1, config.max_position_embeddings));
    }
  }

  if (out.type == RopeType::kYarn && !rope.has("factor")) {
    // _compute_yarn_parameters: a null factor is max_position_embeddings / original.
    out.factor = static_cast<double>(config.max_position_embeddings) / out.original_max_position_embeddings;
  } else {
    ASSIGN_OR_RETURN(out.factor, rope.required_double("factor"));
    RETURN_IF_ERROR(require_positive(rope.path("factor"), out.factor));
  }

  if (out.type == RopeType::kLlama3) {
    ASSIGN_OR_RETURN(out.low_freq_factor, rope.required_double("low_freq_factor"));
    ASSIGN_OR_RETURN(out.high_freq_factor, rope.required_double("high_freq_factor"));
    RETURN_IF_ERROR(require_positive(rope.path("low_freq_factor"), out.low_freq_factor));
    if (!(out.high_freq_factor > out.low_freq_factor)) {
      return invalid_argument(rope.path("high_freq_factor") + ": must be greater than low_freq_factor (" +
                              json(out.low_freq_factor).dump() + "), got " + json(out.high_freq_factor).dump());
    }
  }

  if (out.type == RopeType::kYarn) {
    // `rope_parameters.get("beta_fast") or 32`: zero or null falls back to the default too.
    ASSIGN_OR_RETURN(double beta_fast, rope.double_or("beta_fast", 0.0));
    ASSIGN_OR_RETURN(double beta_slow, rope.double_or("beta_slow", 0.0));
    out.beta_fast = beta_fast != 0.0 ? beta_fast : 32.0;
    out.beta_slow = beta_slow != 0.0 ? beta_slow : 1.0;
    ASSIGN_OR_RETURN(out.attention_factor, rope.optional_double("attention_factor"));
    if (out.attention_factor) RETURN_IF_ERROR(require_positive(rope.path("attention_factor"), *out.attention_factor));
    ASSIGN_OR_RETURN(out.mscale, rope.optional_double("mscale"));
    ASSIGN_OR_RETURN(out.mscale_all_dim, rope.optional_double("mscale_all_dim"));
    ASSIGN_OR_RETURN(out.truncate, rope.bool_or("truncate", true));
  }
  return Status::Ok();
}

// The theta a family uses when the config gives none (Gemma 3, MiniMax: 1e6; ModernBERT: global_rope_theta).
double family_theta(const ModelConfig& config) {
  if (config.model_type == "gemma3_text" || config.model_type == "minimax") return 1000000.0;
  if (config.model_type == "modernbert-decoder") return 160000.0;
  return 10000.0;
}

// Configs written before per-layer-type rope_parameters: Gemma 3's rope_local_base_freq and
// ModernBERT's global_rope_theta / local_rope_theta give the local layers a default RoPE of their own.
Status parse_legacy_local_rope(const Fields& fields, ModelConfig& config) {
  config.rope_local = config.rope;
  const char* local_key = config.model_type == "gemma3_text"          ? "rope_local_base_freq"
                          : config.model_type == "modernbert-decoder" ? "local_rope_theta"
                                                                      : nullptr;
  if (local_key == nullptr) return Status::Ok();
  if (config.model_type == "modernbert-decoder" && fields.has("global_rope_theta")) {
    ASSIGN_OR_RETURN(config.rope.theta, fields.required_double("global_rope_theta"));
    RETURN_IF_ERROR(require_positive("global_rope_theta", config.rope.theta));
  }
  config.rope_local = RopeConfig{};
  config.rope_local.rotary_dim = config.rope.rotary_dim;
  ASSIGN_OR_RETURN(config.rope_local.theta, fields.double_or(local_key, 10000.0));
  return require_positive(local_key, config.rope_local.theta);
}

}  // namespace

// RoPE fields live either in `rope_scaling` (+ top-level rope_theta / partial_rotary_factor) or, from
// transformers 5 on, in `rope_parameters`, which may hold one dict per layer type
// ({"full_attention": {...}, "sliding_attention": {...}}: Gemma 3, ModernBERT).
Status parse_rope(const Fields& fields, ModelConfig& config) {
  static const json kEmpty = json::object();
  const json* dict = &kEmpty;
  std::string dict_name = "rope_scaling";
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!fields.has(key)) continue;
    if (!fields.at(key).is_object()) return fields.type_error(key, "an object");
    if (fields.at(key).empty()) continue;  // `rope_scaling or rope_parameters`: an empty dict is falsy
    dict = &fields.at(key);
    dict_name = key;
    break;
  }
  const double theta = family_theta(config);
  if (!dict->contains("full_attention") && !dict->contains("sliding_attention")) {
    RETURN_IF_ERROR(parse_rope_dict(fields, Fields(*dict, dict_name + "."), config, theta, config.rope));
    return parse_legacy_local_rope(fields, config);
  }
  const Fields per_type(*dict, dict_name + ".");
  for (auto [key, out] : {std::pair<const char*, RopeConfig*>{"full_attention", &config.rope},
                          {"sliding_attention", &config.rope_local}}) {
    if (!per_type.has(key)) {
      RETURN_IF_ERROR(parse_rope_dict(fields, Fields(kEmpty, per_type.path(key) + "."), config, theta, *out));
      continue;
    }
    if (!per_type.at(key).is_object()) return per_type.type_error(key, "an object");
    RETURN_IF_ERROR(parse_rope_dict(fields, Fields(per_type.at(key), per_type.path(key) + "."), config, theta, *out));
  }
  if (!per_type.has("sliding_attention")) config.rope_local = config.rope;
  return Status::Ok();
}

}  // namespace longbow::config_fields
