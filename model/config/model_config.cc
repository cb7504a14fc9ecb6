// Parsing follows transformers 5.17: the per-model config classes (LlamaConfig, MistralConfig,
// Qwen2Config, Qwen3Config) for defaults, and RotaryEmbeddingConfigMixin.convert_rope_params_to_dict /
// standardize_rope_params for where RoPE fields may live. Where transformers would silently run a
// config we cannot honour (per-layer mixes of window sizes), we reject it instead.
#include "model/config/model_config.h"

#include <cmath>
#include <limits>
#include <string_view>

#include "common/bounded_json.h"
#include "common/json_file.h"
#include "model/config/config_limits.h"

namespace longbow {
namespace {

using nlohmann::json;

const char* json_type_name(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

// "a string "abc"" — the type and a short rendering of the value, for error messages (never
// serializes a container: describe_json does not recurse).
std::string describe(const json& value) {
  if (value.is_structured()) return describe_json(value);
  return std::string(json_type_name(value)) + " " + describe_json(value, 37);
}

// Typed access to the fields of one JSON object. Every error names the field by its full path
// (e.g. "rope_scaling.factor"). "Absent" means missing or null: transformers treats both alike.
class Fields {
 public:
  Fields(const json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return prefix_ + std::string(key); }

  bool has(std::string_view key) const {
    auto it = object_.find(key);
    return it != object_.end() && !it->is_null();
  }
  bool contains(std::string_view key) const { return object_.contains(key); }
  const json& at(std::string_view key) const { return *object_.find(key); }

  Status type_error(std::string_view key, std::string_view expected) const {
    return invalid_argument(path(key) + ": expected " + std::string(expected) + ", got " + describe(at(key)));
  }

  StatusOr<std::optional<int64_t>> optional_int64(std::string_view key) const {
    if (!has(key)) return std::optional<int64_t>();
    const json& value = at(key);
    if (value.is_number_unsigned()) {
      if (value.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return invalid_argument(path(key) + ": " + value.dump() + " is out of range");
      }
      return std::optional<int64_t>(static_cast<int64_t>(value.get<uint64_t>()));
    }
    if (!value.is_number_integer()) return type_error(key, "an integer");
    return std::optional<int64_t>(value.get<int64_t>());
  }

  // An int in [min_value, INT_MAX], or nullopt when absent.
  StatusOr<std::optional<int>> optional_int(std::string_view key, int64_t min_value) const {
    ASSIGN_OR_RETURN(std::optional<int64_t> value, optional_int64(key));
    if (!value) return std::optional<int>();
    if (*value < min_value || *value > std::numeric_limits<int>::max()) {
      return invalid_argument(path(key) + ": " + std::to_string(*value) + " is out of range (expected " +
                              std::to_string(min_value) + ".." + std::to_string(std::numeric_limits<int>::max()) +
                              ")");
    }
    return std::optional<int>(static_cast<int>(*value));
  }

  StatusOr<int> required_int(std::string_view key, int64_t min_value) const {
    if (!has(key)) return missing(key);
    ASSIGN_OR_RETURN(std::optional<int> value, optional_int(key, min_value));
    return *value;
  }

  StatusOr<int> int_or(std::string_view key, int64_t min_value, int fallback) const {
    ASSIGN_OR_RETURN(std::optional<int> value, optional_int(key, min_value));
    return value.value_or(fallback);
  }

  StatusOr<std::optional<double>> optional_double(std::string_view key) const {
    if (!has(key)) return std::optional<double>();
    const json& value = at(key);
    if (!value.is_number()) return type_error(key, "a number");
    double out = value.get<double>();
    if (!std::isfinite(out)) return invalid_argument(path(key) + ": " + value.dump() + " is not finite");
    return std::optional<double>(out);
  }

  StatusOr<double> required_double(std::string_view key) const {
    if (!has(key)) return missing(key);
    ASSIGN_OR_RETURN(std::optional<double> value, optional_double(key));
    return *value;
  }

  StatusOr<double> double_or(std::string_view key, double fallback) const {
    ASSIGN_OR_RETURN(std::optional<double> value, optional_double(key));
    return value.value_or(fallback);
  }

  StatusOr<bool> bool_or(std::string_view key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!at(key).is_boolean()) return type_error(key, "a boolean");
    return at(key).get<bool>();
  }

  StatusOr<std::optional<std::string>> optional_string(std::string_view key) const {
    if (!has(key)) return std::optional<std::string>();
    if (!at(key).is_string()) return type_error(key, "a string");
    return std::optional<std::string>(at(key).get<std::string>());
  }

  Status missing(std::string_view key) const { return invalid_argument(path(key) + ": required field is missing"); }

 private:
  const json& object_;
  std::string prefix_;
};

Status require_positive(std::string_view field, double value) {
  if (value > 0.0) return Status::Ok();
  return invalid_argument(std::string(field) + ": must be positive, got " + json(value).dump());
}

// The DSA indexer keys: all of index_n_heads, index_head_dim, index_topk, or none of them.
Status parse_dsa_indexer(const Fields& fields, ModelConfig& config) {
  const bool any = fields.has("index_n_heads") || fields.has("index_head_dim") || fields.has("index_topk") ||
                   fields.has("index_rope_dim");
  if (!any) return Status::Ok();
  DsaIndexerConfig dsa;
  ASSIGN_OR_RETURN(dsa.n_heads, fields.required_int("index_n_heads", 1));
  ASSIGN_OR_RETURN(dsa.head_dim, fields.required_int("index_head_dim", 2));
  ASSIGN_OR_RETURN(dsa.topk, fields.required_int("index_topk", 1));
  ASSIGN_OR_RETURN(dsa.rope_dim, fields.int_or("index_rope_dim", 0, 64));
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

// Transformers' per-model defaults for fields a config.json may leave out.
struct FamilyDefaults {
  std::optional<int> num_key_value_heads;  // nullopt: num_attention_heads
  std::optional<int> head_dim;             // nullopt: hidden_size / num_attention_heads
  std::optional<int> bos_token_id;
  std::optional<int> eos_token_id;
  std::optional<int> sliding_window;       // mistral: 4096 unless the key says otherwise
};

std::optional<FamilyDefaults> family_defaults(std::string_view model_type) {
  if (model_type == "llama") return FamilyDefaults{std::nullopt, std::nullopt, 1, 2, std::nullopt};
  if (model_type == "mistral") return FamilyDefaults{8, std::nullopt, 1, 2, 4096};
  if (model_type == "qwen2") return FamilyDefaults{32, std::nullopt, std::nullopt, std::nullopt, 4096};
  if (model_type == "qwen3") return FamilyDefaults{32, 128, std::nullopt, std::nullopt, 4096};
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
  if (type == "llama") return Status::Ok();

  std::optional<int> window = defaults.sliding_window;
  if (fields.contains("sliding_window")) {
    ASSIGN_OR_RETURN(window, fields.optional_int("sliding_window", 1));
  }
  if (type == "mistral") {
    config.sliding_window = window;
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
    return Status::Ok();
  }
  return unimplemented(source + " with use_sliding_window makes " + std::to_string(num_windowed) + " of " +
                       std::to_string(windowed.size()) +
                       " layers sliding-window and the rest full attention; mixed layer types are not supported");
}

// RoPE fields live either in `rope_scaling` (+ top-level rope_theta / partial_rotary_factor) or, from
// transformers 5 on, in `rope_parameters`. Keys inside the dict win over top-level ones, as in
// standardize_rope_params; `original_max_position_embeddings` at top level wins over the dict's.
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
  for (const char* layer_type : {"full_attention", "sliding_attention"}) {
    if (dict->contains(layer_type)) {
      return unimplemented(dict_name + "." + layer_type + ": per-layer-type RoPE parameters are not supported");
    }
  }
  Fields rope(*dict, dict_name + ".");
  RopeConfig& out = config.rope;

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
    ASSIGN_OR_RETURN(out.theta, fields.double_or("rope_theta", 10000.0));
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
                         "\" is not supported (supported: llama, mistral, qwen2, qwen3)");
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

  ASSIGN_OR_RETURN(config.rms_norm_eps, fields.double_or("rms_norm_eps", 1e-6));
  RETURN_IF_ERROR(require_positive("rms_norm_eps", config.rms_norm_eps));
  ASSIGN_OR_RETURN(config.tie_word_embeddings, fields.bool_or("tie_word_embeddings", false));

  ASSIGN_OR_RETURN(std::optional<std::string> hidden_act, fields.optional_string("hidden_act"));
  if (hidden_act && *hidden_act != "silu") {
    return unimplemented("hidden_act: \"" + *hidden_act + "\" is not supported (supported: silu)");
  }

  RETURN_IF_ERROR(parse_layer_options(fields, config));
  RETURN_IF_ERROR(parse_sliding_window(fields, *defaults, config));
  RETURN_IF_ERROR(parse_dsa_indexer(fields, config));
  RETURN_IF_ERROR(parse_token_ids(fields, *defaults, config));
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
