// Gated-MLP activation launch parameters: out = act(gate) · up.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

// The activation applied to the gate (model/backend/backend.h's Activation, same order).
enum class GatedActivation : int {
  kSilu = 0,      // x · sigmoid(x)
  kGeluTanh = 1,  // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
  kGelu = 2,      // 0.5 · x · (1 + erf(x / √2))
  kSigmoid = 3,   // 1 / (1 + exp(−x))
};

struct GatedActivationParams {
  const void* gate = nullptr;  // [count] bf16
  const void* up = nullptr;    // [count] bf16
  void* out = nullptr;         // [count] bf16; may alias gate or up
  int64_t count = 0;
  GatedActivation act = GatedActivation::kSilu;
};

// out = act(gate) · up, in fp32, rounded once to bf16.
cudaError_t launch_gated_activation(const GatedActivationParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
