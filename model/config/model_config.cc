// Parsing follows transformers 5.17: the per-model config classes (LlamaConfig, MistralConfig,
// Qwen2Config, Qwen3Config; the local/global families in local_global_config.cc) for defaults, and RotaryEmbeddingConfigMixin.convert_rope_params_to_dict /
// standardize_rope_params for where RoPE fields may live. Where transformers would silently run a
// config we cannot honour (per-layer mixes of window sizes), we reject it instead.
#include "model/config/model_config.h"

#include <cmath>
#include <limits>
#include <string_view>

#include "common/bounded_json.h"
#include "common/json_file.h"
#include "model/config/config_limits.h"
#include "model/config/config_fields.h"

namespace longbow {

namespace {

using namespace config_fields;  // NOLINT(google-build-using-namespace): the parsers' shared helpers

// The DSA indexer keys: all of index_n_heads, index_head_dim, index_topk, or none of them;
// index_rope_dim defaults to `default_rope_dim` (64; DeepSeek-V3.2: qk_rope_head_dim).
Status parse_dsa_indexer(const Fields& fields, int default_rope_dim, ModelConfig& config) {
  const bool any = fields.has("index_n_heads") || fields.has("index_head_dim") || fields.has("index_topk") ||
                   fields.has("index_rope_dim");
  if (!any) return Status::Ok();
  DsaIndexerConfig dsa;
  ASSIGN_OR_RETURN(dsa.n_heads, fields.required_int("index_n_heads", 1));
  ASSIGN_OR_RETURN(dsa.head_dim, fields.required_int("index_head_dim", 2));
  ASSIGN_OR_RETURN(dsa.topk, fields.required_int("index_topk", 1));
  ASSIGN_OR_RETURN(dsa.rope_dim, fields.int_or("index_rope_dim", 0, default_rope_dim));
  if ((dsa.head_dim & (dsa.head_dim - 1)) != 0) {
    return invalid_argument("index_head_dim: " + std::to_string(dsa.head_dim) +
                            " must be a power of two (the indexer's Hadamard transform)");
  }
  if (dsa.rope_dim % 2 != 0 || dsa.rope_dim > dsa.head_dim) {
    return invalid_argument("index_rope_dim: " + std::to_string(dsa.rope_dim) +
                            " must be even and at most index_head_dim (" + std::to_string(dsa.head_dim) + ")");
  }
  config.dsa = dsa;
  return Status::Ok();
}

// quantization_config: only transformers' fine-grained FP8 ("fp8", dynamic activations), whose weights
// the loader dequantizes (Fp8Config).
Status parse_quantization(const Fields& top, ModelConfig& config) {
  if (!top.has("quantization_config")) return Status::Ok();
  if (!top.at("quantization_config").is_object()) return top.type_error("quantization_config", "an object");
  Fields fields(top.at("quantization_config"), "quantization_config.");
  ASSIGN_OR_RETURN(std::optional<std::string> method, fields.optional_string("quant_method"));
  if (!method) return fields.missing("quant_method");
  if (*method != "fp8") {
    return unimplemented(fmt::format("quantization_config.quant_method: \"{}\" is not supported (supported: fp8, "
                                     "block-scaled e4m3 weights)", *method));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> scheme, fields.optional_string("activation_scheme"));
  if (scheme && *scheme != "dynamic") {
    return unimplemented(fmt::format("quantization_config.activation_scheme: \"{}\" is not supported (supported: "
                                     "dynamic)", *scheme));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> fmt_name, fields.optional_string("fmt"));
  if (fmt_name && *fmt_name != "e4m3") {
    return unimplemented(fmt::format("quantization_config.fmt: \"{}\" is not supported (supported: e4m3)", *fmt_name));
  }
  Fp8Config fp8;
  if (fields.has("weight_block_size")) {
    const json& block = fields.at("weight_block_size");
    if (!block.is_array() || block.size() != 2 || !block[0].is_number_integer() || !block[1].is_number_integer() ||
        block[0].get<int64_t>() < 1 || block[1].get<int64_t>() < 1 || block[0].get<int64_t>() > (1 << 20) ||
        block[1].get<int64_t>() > (1 << 20)) {
      return fields.type_error("weight_block_size", "two positive integers [rows, cols]");
    }
    fp8.block_rows = block[0].get<int>();
    fp8.block_cols = block[1].get<int>();
  }
  config.fp8 = fp8;
  return Status::Ok();
}

// Transformers' per-model defaults for fields a config.json may leave out.
struct FamilyDefaults {
  std::optional<int> num_key_value_heads;  // nullopt: num_attention_heads
  std::optional<int> head_dim;             // nullopt: hidden_size / num_attention_heads
  std::optional<int> bos_token_id;
  std::optional<int> eos_token_id;
  std::optional<int> sliding_window;       // mistral: 4096 unless the key says otherwise
  bool tie_word_embeddings = false;
  bool local_global = false;               // gemma2, gemma3_text, modernbert-decoder
  double rms_norm_eps = 1e-6;
  bool minimax = false;
  bool deepseek = false;  // deepseek_v3, deepseek_v32
};

std::optional<FamilyDefaults> family_defaults(std::string_view model_type) {
  if (model_type == "llama") return FamilyDefaults{std::nullopt, std::nullopt, 1, 2, std::nullopt};
  if (model_type == "mistral") return FamilyDefaults{8, std::nullopt, 1, 2, 4096};
  if (model_type == "qwen2") return FamilyDefaults{32, std::nullopt, std::nullopt, std::nullopt, 4096};
  if (model_type == "qwen3") return FamilyDefaults{32, 128, std::nullopt, std::nullopt, 4096};
  if (model_type == "gemma2" || model_type == "gemma3_text") return FamilyDefaults{4, 256, 2, 1, 4096, true, true};
  if (model_type == "modernbert-decoder") {
    return FamilyDefaults{std::nullopt, std::nullopt, 50281, 50282, 64, true, true};
  }
  if (model_type == "minimax") {
    return FamilyDefaults{8, std::nullopt, 1, 2, std::nullopt, false, false, 1e-5, true};
  }
  if (model_type == "deepseek_v3" || model_type == "deepseek_v32") {
    FamilyDefaults d{std::nullopt, std::nullopt, 0, 1, std::nullopt};
    d.deepseek = true;
    return d;
  }
  return std::nullopt;
}

Status parse_token_ids(const Fields& fields, const FamilyDefaults& defaults, ModelConfig& config) {
  if (!fields.contains("bos_token_id")) {
    config.bos_token_id = defaults.bos_token_id;
  } else {
    ASSIGN_OR_RETURN(config.bos_token_id, fields.optional_int("bos_token_id", 0));
  }

  if (!fields.contains("eos_token_id")) {
    if (defaults.eos_token_id) config.eos_token_ids = {*defaults.eos_token_id};
    return Status::Ok();
  }
  if (!fields.has("eos_token_id")) return Status::Ok();  // null: no EOS
  const json& eos = fields.at("eos_token_id");
  if (eos.is_array()) {
    for (size_t i = 0; i < eos.size(); ++i) {
      if (!eos[i].is_number_integer() || eos[i].get<int64_t>() < 0 ||
          eos[i].get<int64_t>() > std::numeric_limits<int>::max()) {
        return invalid_argument("eos_token_id[" + std::to_string(i) + "]: expected a non-negative integer, got " +
                                describe(eos[i]));
      }
      config.eos_token_ids.push_back(eos[i].get<int>());
    }
    return Status::Ok();
  }
  if (!eos.is_number_integer()) return fields.type_error("eos_token_id", "an integer or a list of integers");
  ASSIGN_OR_RETURN(std::optional<int> id, fields.optional_int("eos_token_id", 0));
  config.eos_token_ids = {*id};
  return Status::Ok();
}

// Biases and q/k norm, by family (the modeling_<type>.py layer definitions).
Status parse_layer_options(const Fields& fields, ModelConfig& config) {
  const std::string& type = config.model_type;
  if (type == "llama" || type == "qwen3") {
    ASSIGN_OR_RETURN(bool attention_bias, fields.bool_or("attention_bias", false));
    config.qkv_bias = attention_bias;
    config.o_bias = attention_bias;
  }
  if (type == "llama") {
    ASSIGN_OR_RETURN(config.mlp_bias, fields.bool_or("mlp_bias", false));
  }
  if (type == "qwen2") {  // Qwen2Attention: q/k/v always have a bias, o_proj never.
    config.qkv_bias = true;
    config.o_bias = false;
  }
  config.qk_norm = type == "qwen3";
  return Status::Ok();
}

// mistral: one window for every layer. qwen2/qwen3: a window only with use_sliding_window, and then
// only on the layers layer_types (or max_window_layers) marks "sliding_attention".
Status parse_sliding_window(const Fields& fields, const FamilyDefaults& defaults, ModelConfig& config) {
  const std::string& type = config.model_type;
  config.layer_types.assign(static_cast<size_t>(config.num_hidden_layers), LayerAttention::kFull);
  if (type == "llama") return Status::Ok();

  std::optional<int> window = defaults.sliding_window;
  if (fields.contains("sliding_window")) {
    ASSIGN_OR_RETURN(window, fields.optional_int("sliding_window", 1));
  }
  if (type == "mistral") {
    config.sliding_window = window;
    if (window) config.layer_types.assign(config.layer_types.size(), LayerAttention::kSliding);
    return Status::Ok();
  }

  ASSIGN_OR_RETURN(bool use_sliding_window, fields.bool_or("use_sliding_window", false));
  if (!use_sliding_window || !window) return Status::Ok();

  std::vector<bool> windowed(static_cast<size_t>(config.num_hidden_layers), false);
  std::string source;
  if (fields.has("layer_types")) {
    const json& layer_types = fields.at("layer_types");
    if (!layer_types.is_array()) return fields.type_error("layer_types", "a list of strings");
    if (layer_types.size() != windowed.size()) {
      return invalid_argument("layer_types: has " + std::to_string(layer_types.size()) + " entries, expected " +
                              std::to_string(windowed.size()) + " (num_hidden_layers)");
    }
    for (size_t i = 0; i < layer_types.size(); ++i) {
      const json& entry = layer_types[i];
      if (entry == "sliding_attention") {
        windowed[i] = true;
      } else if (entry != "full_attention") {
        return invalid_argument("layer_types[" + std::to_string(i) + "]: " + describe_json(entry) +
                                " is not supported (supported: full_attention, sliding_attention)");
      }
    }
    source = "layer_types";
  } else {
    ASSIGN_OR_RETURN(int max_window_layers, fields.int_or("max_window_layers", 0, 28));
    for (size_t i = 0; i < windowed.size(); ++i) windowed[i] = static_cast<int>(i) >= max_window_layers;
    source = "max_window_layers: " + std::to_string(max_window_layers);
  }

  size_t num_windowed = 0;
  for (bool w : windowed) num_windowed += w ? 1 : 0;
  if (num_windowed == 0) return Status::Ok();
  if (num_windowed == windowed.size()) {
    config.sliding_window = window;
    config.layer_types.assign(config.layer_types.size(), LayerAttention::kSliding);
    return Status::Ok();
  }
  return unimplemented(source + " with use_sliding_window makes " + std::to_string(num_windowed) + " of " +
                       std::to_string(windowed.size()) +
                       " layers sliding-window and the rest full attention; mixed layer types are not supported");
}


}  // namespace

StatusOr<ModelConfig> parse_model_config(const nlohmann::json& config_json) {
  if (!config_json.is_object()) {
    return invalid_argument("config must be a JSON object, got " + describe(config_json));
  }
  RETURN_IF_ERROR(check_config_limits(config_json));  // before any field sizes anything
  Fields fields(config_json, "");
  ModelConfig config;

  ASSIGN_OR_RETURN(std::optional<std::string> model_type, fields.optional_string("model_type"));
  if (!model_type) return fields.missing("model_type");
  config.model_type = *model_type;
  std::optional<FamilyDefaults> defaults = family_defaults(config.model_type);
  if (!defaults) {
    return unimplemented("model_type: \"" + config.model_type +
                         "\" is not supported (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text, "
                         "modernbert-decoder, minimax, deepseek_v3, deepseek_v32)");
  }

  ASSIGN_OR_RETURN(config.vocab_size, fields.required_int("vocab_size", 1));
  ASSIGN_OR_RETURN(config.hidden_size, fields.required_int("hidden_size", 1));
  ASSIGN_OR_RETURN(config.intermediate_size, fields.required_int("intermediate_size", 1));
  ASSIGN_OR_RETURN(config.num_hidden_layers, fields.required_int("num_hidden_layers", 1));
  ASSIGN_OR_RETURN(config.num_attention_heads, fields.required_int("num_attention_heads", 1));
  ASSIGN_OR_RETURN(config.max_position_embeddings, fields.required_int("max_position_embeddings", 1));

  // Absent: the family default; null: num_attention_heads (the configs' __post_init__).
  if (fields.contains("num_key_value_heads")) {
    ASSIGN_OR_RETURN(config.num_key_value_heads,
                     fields.int_or("num_key_value_heads", 1, config.num_attention_heads));
  } else {
    config.num_key_value_heads = defaults->num_key_value_heads.value_or(config.num_attention_heads);
  }
  if (config.num_attention_heads % config.num_key_value_heads != 0) {
    return invalid_argument("num_key_value_heads: " + std::to_string(config.num_key_value_heads) +
                            " does not divide num_attention_heads (" + std::to_string(config.num_attention_heads) +
                            ")");
  }

  std::optional<int> head_dim = defaults->head_dim;
  if (fields.contains("head_dim")) {
    ASSIGN_OR_RETURN(head_dim, fields.optional_int("head_dim", 1));
  }
  if (head_dim) {
    config.head_dim = *head_dim;
  } else if (defaults->deepseek) {
    config.head_dim = 2;  // qk_rope_head_dim, set by parse_deepseek
  } else {
    if (config.hidden_size % config.num_attention_heads != 0) {
      return invalid_argument("hidden_size: " + std::to_string(config.hidden_size) +
                              " is not a multiple of num_attention_heads (" +
                              std::to_string(config.num_attention_heads) + ") and head_dim is not given");
    }
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  if (config.head_dim % 2 != 0) {
    return invalid_argument("head_dim: " + std::to_string(config.head_dim) + " must be even for RoPE");
  }

  ASSIGN_OR_RETURN(config.rms_norm_eps, fields.double_or("rms_norm_eps", defaults->rms_norm_eps));
  RETURN_IF_ERROR(require_positive("rms_norm_eps", config.rms_norm_eps));
  ASSIGN_OR_RETURN(config.tie_word_embeddings, fields.bool_or("tie_word_embeddings", defaults->tie_word_embeddings));

  if (defaults->local_global) {
    RETURN_IF_ERROR(parse_local_global(fields, defaults->sliding_window, config));
  } else {
    ASSIGN_OR_RETURN(std::optional<std::string> hidden_act, fields.optional_string("hidden_act"));
    if (hidden_act && *hidden_act != "silu") {
      return unimplemented("hidden_act: \"" + *hidden_act + "\" is not supported (supported: silu)");
    }
    if (defaults->minimax) {
      RETURN_IF_ERROR(parse_minimax(fields, config));
    } else if (defaults->deepseek) {
      ASSIGN_OR_RETURN(const int rope_dim, fields.int_or("qk_rope_head_dim", 2, 64));
      RETURN_IF_ERROR(parse_dsa_indexer(fields, rope_dim, config));
      RETURN_IF_ERROR(parse_deepseek(fields, config));
    } else {
      RETURN_IF_ERROR(parse_layer_options(fields, config));
      RETURN_IF_ERROR(parse_sliding_window(fields, *defaults, config));
    }
  }
  if (!defaults->deepseek) RETURN_IF_ERROR(parse_dsa_indexer(fields, 64, config));
  RETURN_IF_ERROR(parse_token_ids(fields, *defaults, config));
  RETURN_IF_ERROR(parse_quantization(fields, config));
  RETURN_IF_ERROR(parse_rope(fields, config));
  RETURN_IF_ERROR(check_config_sizes(config));
  return config;
}

StatusOr<ModelConfig> load_model_config(const std::string& model_dir) {
  const std::string path = model_dir + "/config.json";
  ASSIGN_OR_RETURN(nlohmann::json config_json, read_json_file(path));
  StatusOr<ModelConfig> config = parse_model_config(config_json);
  if (!config.ok()) return config.status().with_context(path);
  return config;
}

}  // namespace longbow
