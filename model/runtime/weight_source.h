// WeightSource: where load_model_weights gets the values of the tensors expected_tensors() lists.
//
// Two sources, named as vLLM's --load-format names them: a safetensors checkpoint ("safetensors";
// "auto" means the same here), or "dummy": every tensor allocated and filled with random values on
// the backend itself (dummy_weights.h), so a model shape can be served and benchmarked from its
// config.json alone.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"
#include "model/weights/safetensors.h"

namespace longbow {

enum class LoadFormat { kAuto, kSafetensors, kDummy };

// "auto", "safetensors" or "dummy"; INVALID_ARGUMENT naming the accepted values otherwise.
StatusOr<LoadFormat> parse_load_format(std::string_view name);
std::string_view load_format_name(LoadFormat format);

class WeightSource {
 public:
  // A checkpoint is a weight source (implicit on purpose: Transformer::load(config, *checkpoint, ...)).
  // The checkpoint must outlive the load; nothing keeps it afterwards.
  WeightSource(const Checkpoint& checkpoint) : checkpoint_(&checkpoint) {}  // NOLINT(google-explicit-constructor)

  // Random weights drawn on the backend from `seed`: the same seed gives the same weights.
  static WeightSource dummy(uint64_t seed) { return WeightSource(seed); }

  // The checkpoint, or nullptr for dummy weights.
  const Checkpoint* checkpoint() const { return checkpoint_; }
  uint64_t dummy_seed() const { return seed_; }

 private:
  explicit WeightSource(uint64_t seed) : seed_(seed) {}

  const Checkpoint* checkpoint_ = nullptr;
  uint64_t seed_ = 0;
};

}  // namespace longbow
