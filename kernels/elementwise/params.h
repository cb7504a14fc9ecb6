// Small elementwise launches: bias add after a GEMM, device-side random fill for dummy weights, and
// in-place scale and soft-cap.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct BiasAddParams {
  void* out = nullptr;         // [rows, cols], bf16 or fp32 (out_f32)
  const void* bias = nullptr;  // [cols] bf16
  int64_t rows = 0;
  int64_t cols = 0;
  bool out_f32 = false;
};

// out[r][c] += bias[c] (fp32 arithmetic, rounded once for bf16 out).
cudaError_t launch_bias_add(const BiasAddParams& params, cudaStream_t stream);

struct FillRandomParams {
  void* out = nullptr;  // [count] bf16 (launch_fill_random_bf16) or fp32 (launch_fill_random_f32)
  int64_t count = 0;
  uint64_t seed = 0;
  float low = -1.0f;    // uniform in [low, high)
  float high = 1.0f;
};

// Counter-based hash RNG: out[i] = low + (high - low) · unit(seed, i), computed in fp32 without FMA
// and rounded once to the output dtype. The same seed gives the same tensor on any GPU and launch
// shape, and the CPU backend's fill_random (model/backend/cpu/cpu_fill_random.cc) computes the same
// function.
cudaError_t launch_fill_random_bf16(const FillRandomParams& params, cudaStream_t stream);
cudaError_t launch_fill_random_f32(const FillRandomParams& params, cudaStream_t stream);

// In-place element-wise maps of a bf16 or fp32 tensor (fp32 arithmetic, rounded once for bf16).
struct ScaleParams {
  void* x = nullptr;  // [count], bf16 or fp32 (x_f32)
  int64_t count = 0;
  bool x_f32 = false;
  float value = 1.0f;  // the factor (launch_scale) or the cap, > 0 (launch_softcap)
};

// x *= value.
cudaError_t launch_scale(const ScaleParams& params, cudaStream_t stream);
// x = value · tanh(x / value).
cudaError_t launch_softcap(const ScaleParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
