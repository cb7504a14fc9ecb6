// SwiGLU activation launch parameters.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct SiluMulParams {
  const void* gate = nullptr;  // [count] bf16
  const void* up = nullptr;    // [count] bf16
  void* out = nullptr;         // [count] bf16; may alias gate or up
  int64_t count = 0;
};

// out = silu(gate) * up = gate / (1 + exp(-gate)) * up, in fp32, rounded once.
cudaError_t launch_silu_mul(const SiluMulParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
