// libFuzzer target: config.json text -> parse_json (depth limit) -> parse_model_config (field
// checks, plausibility limits, RoPE). Any crash, sanitizer report or exception escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/bounded_json.h"
#include "model/config/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  longbow::StatusOr<nlohmann::json> doc = longbow::parse_json(text, "config.json");
  if (!doc.ok()) return 0;
  longbow::StatusOr<longbow::ModelConfig> config = longbow::parse_model_config(*doc);
  if (config.ok()) {
    // Every accepted config has sizes that later arithmetic can use.
    if (config->num_hidden_layers < 1 || config->head_dim < 1 || config->num_key_value_heads < 1) __builtin_trap();
  }
  return 0;
}
