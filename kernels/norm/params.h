// RMSNorm and LayerNorm launch parameters. All floating tensors are bf16, contiguous row-major.
#pragma once

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct RmsNormParams {
  const void* x = nullptr;       // [rows, cols] bf16; ignored by the fused variant (reads residual)
  void* residual = nullptr;      // fused variant: [rows, cols] bf16, updated in place to residual + delta
  const void* delta = nullptr;   // fused variant: [rows, cols] bf16
  const void* weight = nullptr;  // [cols] bf16
  void* out = nullptr;           // [rows, cols] bf16; may alias x (or residual)
  int rows = 0;
  int cols = 0;
  float eps = 1e-6f;
};

// out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight, statistics in fp32.
cudaError_t launch_rms_norm(const RmsNormParams& params, cudaStream_t stream);

// residual = bf16(residual + delta) (sum in fp32, rounded once), then out = rms_norm(residual).
// The norm reads the rounded residual, as a bf16 PyTorch model does.
cudaError_t launch_add_rms_norm(const RmsNormParams& params, cudaStream_t stream);

struct LayerNormParams {
  const void* x = nullptr;       // [rows, cols] bf16; ignored by the fused variant (reads residual)
  void* residual = nullptr;      // fused variant: [rows, cols] bf16, updated in place to residual + delta
  const void* delta = nullptr;   // fused variant: [rows, cols] bf16
  const void* weight = nullptr;  // [cols] bf16
  const void* bias = nullptr;    // [cols] bf16, or nullptr: no bias
  void* out = nullptr;           // [rows, cols] bf16; may alias x (or residual)
  int rows = 0;
  int cols = 0;
  float eps = 1e-5f;
};

// out[r] = (x[r] − mean) / sqrt(var + eps) · weight (+ bias), biased variance, statistics in fp32
// (two passes over the row: the mean, then the squared deviations from it).
cudaError_t launch_layer_norm(const LayerNormParams& params, cudaStream_t stream);

// residual = bf16(residual + delta), then out = layer_norm(residual), as launch_add_rms_norm.
cudaError_t launch_add_layer_norm(const LayerNormParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
