// Plausibility limits on config.json, checked by field name before anything is sized from it.
//
// A config is operator input, but a wrong or hostile one must fail with a message naming the field,
// not allocate until memory runs out (num_hidden_layers: 1e9) or wrap a byte count (heads =
// head_dim = 2^28). Each limit is far above every published model (noted per field in the .cc), so
// only nonsense is rejected.
#pragma once

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace longbow {

struct ModelConfig;

// Checks every known size field of `config_json` (top level and the rope dicts) that holds a
// number: it must be at most the field's limit. INVALID_ARGUMENT names the field, the value and the
// limit. Type errors are left to the parser.
Status check_config_limits(const nlohmann::json& config_json);

// Checks the parsed shape: the element count of each weight matrix and of the whole model, computed
// with overflow checks, stays below 2^40 per tensor and 2^42 in all, so every later size in bytes
// fits in 64 bits with room to spare. INVALID_ARGUMENT names the fields whose product is too large.
Status check_config_sizes(const ModelConfig& config);

}  // namespace longbow
