// Skinny GEMM launch parameters: out[m][n] = x[m][k] · w[n][k]ᵀ (+ bias[n]) for the few rows of a
// decode step, where the product is bound by reading w once and cuBLAS's tiles are mostly idle.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

// Rows (m) the skinny kernel takes; larger products go to cuBLAS. Measured on the H100 against
// cuBLAS on the 8B projections (docs/benchmarks.md): 1.00-1.97x at m = 1, 0.97-1.41x at m = 2,
// 0.83-1.04x at m = 4 and 0.59-0.86x at m = 8, where cuBLAS's tiles already stream w once.
inline constexpr int kSkinnyGemmMaxRows = 2;

struct SkinnyGemmParams {
  const void* x = nullptr;     // [m, k] bf16, rows contiguous
  const void* w = nullptr;     // [n, k] bf16, rows contiguous
  const void* bias = nullptr;  // [n] bf16, or null
  void* out = nullptr;         // [m, n], bf16 or fp32 (out_f32)
  int m = 0;                   // 1 <= m <= kSkinnyGemmMaxRows
  int n = 0;
  int k = 0;                   // a multiple of 8; x and w 16-byte aligned
  bool out_f32 = false;
};

// True when the skinny kernel takes this product (shape and alignment); the launch rejects the rest
// with cudaErrorInvalidValue.
bool skinny_gemm_supported(const SkinnyGemmParams& params);

// fp32 accumulation; the output is rounded once (bias added in fp32 before the rounding).
cudaError_t launch_skinny_gemm(const SkinnyGemmParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
