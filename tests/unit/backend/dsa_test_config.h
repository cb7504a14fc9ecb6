// A DSA model config whose every shape the CUDA kernels run, for tests of check_cuda_supported
// (tests/unit/backend/cuda_support_test.cc on the CPU, tests/kernels/cuda_support_kernels_test.cc
// against the kernels): Llama-3.1-8B's attention (32 query heads over 8 KV heads of 128) with
// DeepSeek-V3.2's indexer (64 heads of 128, 64 rotated dims, top-2048).
#pragma once

#include "model/config/model_config.h"

namespace longbow::testing {

inline ModelConfig supported_dsa_config() {
  ModelConfig c;
  c.model_type = "llama";
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.head_dim = 128;
  c.rope.rotary_dim = 128;
  c.dsa = DsaIndexerConfig{64, 128, 2048, 64};
  return c;
}

}  // namespace longbow::testing
