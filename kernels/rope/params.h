// Rotary position embedding launch parameters (half-split pairs, every RoPE variant: the variant
// lives entirely in the host-computed inv_freq table and attention_scaling).
#pragma once

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct RopeParams {
  void* q = nullptr;                // [tokens, num_q_heads, head_dim] bf16, rotated in place
  void* k = nullptr;                // [tokens, num_kv_heads, head_dim] bf16, rotated in place
  const int* positions = nullptr;   // [tokens]
  const float* inv_freq = nullptr;  // [rotary_dim / 2]
  int tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;  // even, <= head_dim; dims past it are left as they are
  float attention_scaling = 1.0f;
};

// For pair (i, i + rotary_dim/2) at angle = position · inv_freq[i] (fp32, full-range sincos):
// x0' = x0·c − x1·s, x1' = x1·c + x0·s with c, s = cos, sin · attention_scaling.
cudaError_t launch_rope(const RopeParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
