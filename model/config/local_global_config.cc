// The config fields of the local/global families, with transformers 5.17's defaults:
// Gemma2Config, Gemma3TextConfig and ModernBertDecoderConfig.
//  - layer_types: given per layer, else the family's pattern: gemma2 alternates (even layers local),
//    gemma3_text makes every sliding_window_pattern-th layer global (default 6: 5 local : 1 global),
//    modernbert-decoder every global_attn_every_n_layers-th from layer 0 (default 3).
//  - sliding_window: Gemma's key (default 4096); ModernBERT's sliding_window, else local_attention / 2.
//  - Gemma: query_pre_attn_scalar (default 256), attn/final logit soft-caps (gemma2: 50 / 30; gemma3:
//    none), hidden_activation (default gelu_pytorch_tanh), attention_bias.
//  - ModernBERT: norm_eps, norm_bias, attention_bias, mlp_bias, decoder_bias, classifier_bias,
//    hidden_activation and classifier_activation (default gelu).
#include <string>

#include "model/config/config_fields.h"

namespace longbow::config_fields {
namespace {

Status parse_activation(const Fields& fields, const char* key, const std::string& fallback, std::string* out) {
  ASSIGN_OR_RETURN(std::optional<std::string> name, fields.optional_string(key));
  *out = name.value_or(fallback);
  if (*out != "silu" && *out != "gelu_pytorch_tanh" && *out != "gelu") {
    return unimplemented(fields.path(key) + ": \"" + *out +
                         "\" is not supported (supported: silu, gelu_pytorch_tanh, gelu)");
  }
  return Status::Ok();
}

// An optional soft-cap: absent or null leaves `fallback`; a value must be positive.
Status parse_softcap(const Fields& fields, const char* key, std::optional<double> fallback,
                     std::optional<double>* out) {
  *out = fields.contains(key) ? std::nullopt : fallback;
  ASSIGN_OR_RETURN(std::optional<double> value, fields.optional_double(key));
  if (!value) return Status::Ok();
  RETURN_IF_ERROR(require_positive(fields.path(key), *value));
  *out = value;
  return Status::Ok();
}

Status parse_layer_types(const Fields& fields, ModelConfig& config) {
  const auto n = static_cast<size_t>(config.num_hidden_layers);
  config.layer_types.assign(n, LayerAttention::kFull);
  if (fields.has("layer_types")) {
    const json& types = fields.at("layer_types");
    if (!types.is_array()) return fields.type_error("layer_types", "a list of strings");
    if (types.size() != n) {
      return invalid_argument(fmt::format("layer_types: has {} entries, expected {} (num_hidden_layers)",
                                          types.size(), n));
    }
    for (size_t i = 0; i < n; ++i) {
      if (types[i] == "sliding_attention") {
        config.layer_types[i] = LayerAttention::kSliding;
      } else if (types[i] != "full_attention") {
        return invalid_argument(fmt::format("layer_types[{}]: {} is not supported (supported: full_attention, "
                                            "sliding_attention)", i, describe_json(types[i])));
      }
    }
    return Status::Ok();
  }
  const std::string& type = config.model_type;
  int every = 2;
  if (type == "gemma3_text") {
    const char* key = fields.has("sliding_window_pattern") ? "sliding_window_pattern" : "_sliding_window_pattern";
    ASSIGN_OR_RETURN(every, fields.int_or(key, 1, 6));
  } else if (type == "modernbert-decoder") {
    ASSIGN_OR_RETURN(every, fields.int_or("global_attn_every_n_layers", 1, 3));
  }
  for (size_t i = 0; i < n; ++i) {
    // gemma: layer i is global when (i + 1) % every == 0; ModernBERT: when i % every == 0.
    const bool global = type == "modernbert-decoder" ? i % static_cast<size_t>(every) == 0
                                                     : (i + 1) % static_cast<size_t>(every) == 0;
    config.layer_types[i] = global ? LayerAttention::kFull : LayerAttention::kSliding;
  }
  return Status::Ok();
}

}  // namespace

Status parse_local_global(const Fields& fields, std::optional<int> default_window, ModelConfig& config) {
  const bool gemma = config.model_type != "modernbert-decoder";
  RETURN_IF_ERROR(parse_layer_types(fields, config));

  std::optional<int> window = default_window;
  if (!gemma && !fields.has("sliding_window") && fields.has("local_attention")) {
    ASSIGN_OR_RETURN(int local_attention, fields.required_int("local_attention", 2));
    window = local_attention / 2;
  }
  if (fields.contains("sliding_window")) {
    ASSIGN_OR_RETURN(window, fields.optional_int("sliding_window", 1));
  }
  config.sliding_window = window;
  for (size_t i = 0; i < config.layer_types.size(); ++i) {
    if (config.layer_types[i] == LayerAttention::kSliding && !window) {
      return invalid_argument(fmt::format("layer_types[{}]: sliding_attention needs sliding_window", i));
    }
  }

  ASSIGN_OR_RETURN(bool attention_bias, fields.bool_or("attention_bias", false));
  config.qkv_bias = attention_bias;
  config.o_bias = attention_bias;
  if (gemma) {
    config.qk_norm = config.model_type == "gemma3_text";
    ASSIGN_OR_RETURN(double scalar, fields.double_or("query_pre_attn_scalar", 256.0));
    RETURN_IF_ERROR(require_positive("query_pre_attn_scalar", scalar));
    config.query_pre_attn_scalar = scalar;
    const bool gemma2 = config.model_type == "gemma2";
    RETURN_IF_ERROR(parse_softcap(fields, "attn_logit_softcapping", gemma2 ? std::optional(50.0) : std::nullopt,
                                  &config.attn_logit_softcapping));
    RETURN_IF_ERROR(parse_softcap(fields, "final_logit_softcapping", gemma2 ? std::optional(30.0) : std::nullopt,
                                  &config.final_logit_softcapping));
    const char* key = fields.has("hidden_activation") || !fields.has("hidden_act") ? "hidden_activation" : "hidden_act";
    return parse_activation(fields, key, "gelu_pytorch_tanh", &config.hidden_activation);
  }
  ASSIGN_OR_RETURN(config.rms_norm_eps, fields.double_or("norm_eps", 1e-5));
  RETURN_IF_ERROR(require_positive("norm_eps", config.rms_norm_eps));
  ASSIGN_OR_RETURN(config.norm_bias, fields.bool_or("norm_bias", false));
  ASSIGN_OR_RETURN(config.mlp_bias, fields.bool_or("mlp_bias", false));
  ASSIGN_OR_RETURN(config.decoder_bias, fields.bool_or("decoder_bias", true));
  ASSIGN_OR_RETURN(config.classifier_bias, fields.bool_or("classifier_bias", false));
  RETURN_IF_ERROR(parse_activation(fields, "hidden_activation", "gelu", &config.hidden_activation));
  return parse_activation(fields, "classifier_activation", "gelu", &config.classifier_activation);
}

}  // namespace longbow::config_fields
