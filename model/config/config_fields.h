// Typed access to the fields of a config.json object, shared by the config parsers of model/config.
// Every error names the field by its full path (e.g. "rope_scaling.factor").
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/bounded_json.h"
#include "common/status.h"
#include "model/config/model_config.h"

namespace longbow::config_fields {

using nlohmann::json;

inline const char* json_type_name(const json& value) {
  if (value.is_null()) return "null";
  if (value.is_boolean()) return "a boolean";
  if (value.is_number_integer()) return "an integer";
  if (value.is_number()) return "a number";
  if (value.is_string()) return "a string";
  if (value.is_array()) return "an array";
  return "an object";
}

// "a string "abc"" — the type and a short rendering of the value, for error messages (never
// serializes a container: describe_json does not recurse, so a deeply nested value cannot overflow
// the stack).
inline std::string describe(const json& value) {
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

inline Status require_positive(std::string_view field, double value) {
  if (value > 0.0) return Status::Ok();
  return invalid_argument(std::string(field) + ": must be positive, got " + json(value).dump());
}

// gemma2, gemma3_text, modernbert-decoder: layer_types (or the family's pattern), sliding_window
// (default `default_window`), query scale, soft-caps, activations, norms and biases
// (local_global_config.cc). Needs num_hidden_layers, head_dim and the model_type parsed.
Status parse_local_global(const Fields& fields, std::optional<int> default_window, ModelConfig& config);
// minimax_config.cc: layer_types (linear/full), block_size, the residual factors, the MoE.
Status parse_minimax(const Fields& fields, ModelConfig& config);
// deepseek_config.cc: MLA, DeepSeek's MoE and dense layers, v32's indexer defaults. Runs after the
// index_* keys are parsed.
Status parse_deepseek(const Fields& fields, ModelConfig& config);

// The RoPE fields (rope_scaling / rope_parameters, per layer type too) into config.rope and
// config.rope_local; needs head_dim, max_position_embeddings and layer_types already parsed.
Status parse_rope(const Fields& fields, ModelConfig& config);

}  // namespace longbow::config_fields
