#include "model/runtime/dummy_weights.h"

#include <cmath>

namespace longbow {

DummyInit dummy_init(const TensorSpec& spec) {
  constexpr float kVectorStd = 0.02f;
  if (spec.shape.size() >= 2) {
    const auto fan_in = static_cast<double>(spec.shape.back());
    return {0.0f, static_cast<float>(1.0 / std::sqrt(fan_in > 0 ? fan_in : 1.0))};
  }
  if (spec.name.ends_with("norm.weight")) return {1.0f, kVectorStd};
  return {0.0f, kVectorStd};
}

uint64_t dummy_tensor_seed(uint64_t seed, std::string_view tensor_name) {
  // FNV-1a over the name, started from the seed's bits.
  uint64_t hash = 0xcbf29ce484222325ull ^ seed;
  for (char c : tensor_name) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

}  // namespace longbow
