// RoPE frequency tables for every RopeType, computed on the host once at load.
//
// Matches transformers' rope initialisation functions (ROPE_INIT_FUNCTIONS): the rotation angle of
// pair i at position p is p · inv_freq[i], and cos/sin are multiplied by attention_scaling.
#pragma once

#include <vector>

#include "model/config/model_config.h"

namespace longbow {

struct RopeTable {
  std::vector<float> inv_freq;     // [rotary_dim / 2]
  float attention_scaling = 1.0f;  // yarn's mscale; 1 for the other types
};

RopeTable make_rope_table(const RopeConfig& rope);

}  // namespace longbow
