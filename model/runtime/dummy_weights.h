// The distributions of dummy weights (`--load-format dummy`): chosen so that activations stay finite
// and of order one through any number of layers, which is all a benchmark or a smoke test needs.
//
//  - a matrix [out, in] (projections, the embedding table, lm_head, the DSA indexer's wq/wk/
//    weights_proj): mean 0, std 1/sqrt(in), so x·Wᵀ keeps the variance of a unit-variance x;
//  - a vector whose name ends in "norm.weight" (RMSNorm/LayerNorm gains): mean 1, std 0.02;
//  - any other vector (biases, LayerNorm biases): mean 0, std 0.02.
//
// Each tensor draws from its own seed, a hash of the load's seed and the tensor's name, so a tensor's
// values do not depend on which other tensors the config lists.
#pragma once

#include <cstdint>
#include <string_view>

#include "model/weights/safetensors.h"

namespace longbow {

struct DummyInit {
  float mean = 0.0f;
  float std = 0.0f;
};

DummyInit dummy_init(const TensorSpec& spec);
uint64_t dummy_tensor_seed(uint64_t seed, std::string_view tensor_name);

}  // namespace longbow
