// LayerNorm and the fused residual-add + LayerNorm (ModernBERT): one block per row, the row read
// three times (sum, squared deviations, output; it stays in L1/L2 between the passes).
#include <cuda_bf16.h>

#include "kernels/common/device_utils.cuh"
#include "kernels/norm/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 256;

// kFused: residual += delta first (rounded to bf16) and normalise the result.
template <bool kFused>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(LayerNormParams p) {
  __shared__ float scratch[32];
  const int64_t row_offset = static_cast<int64_t>(blockIdx.x) * p.cols;
  const auto* weight = static_cast<const __nv_bfloat16*>(p.weight);
  const auto* bias = static_cast<const __nv_bfloat16*>(p.bias);
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) + row_offset;
  const __nv_bfloat16* x = kFused ? static_cast<const __nv_bfloat16*>(p.residual) + row_offset
                                  : static_cast<const __nv_bfloat16*>(p.x) + row_offset;
  float sum = 0.0f;
  for (int i = threadIdx.x; i < p.cols; i += kThreads) {
    float f = __bfloat162float(x[i]);
    if constexpr (kFused) {
      const __nv_bfloat16 r =
          __float2bfloat16(f + __bfloat162float(static_cast<const __nv_bfloat16*>(p.delta)[row_offset + i]));
      static_cast<__nv_bfloat16*>(p.residual)[row_offset + i] = r;
      f = __bfloat162float(r);  // the norm sees the rounded residual
    }
    sum += f;
  }
  // Each thread re-reads only elements it wrote itself, so no barrier is needed for the residual.
  const float mean = block_sum(sum, scratch) / static_cast<float>(p.cols);
  float sum_sq = 0.0f;
  for (int i = threadIdx.x; i < p.cols; i += kThreads) {
    const float d = __bfloat162float(x[i]) - mean;
    sum_sq += d * d;
  }
  const float inv_std = rsqrtf(block_sum(sum_sq, scratch) / static_cast<float>(p.cols) + p.eps);
  // `out` may alias x: each element is read before the same thread overwrites it.
  for (int i = threadIdx.x; i < p.cols; i += kThreads) {
    float v = (__bfloat162float(x[i]) - mean) * inv_std * __bfloat162float(weight[i]);
    if (bias != nullptr) v += __bfloat162float(bias[i]);
    out[i] = __float2bfloat16(v);
  }
}

template <bool kFused>
cudaError_t launch(const LayerNormParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0) return p.rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
  layer_norm_kernel<kFused><<<p.rows, kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_layer_norm(const LayerNormParams& params, cudaStream_t stream) {
  return launch<false>(params, stream);
}

cudaError_t launch_add_layer_norm(const LayerNormParams& params, cudaStream_t stream) {
  return launch<true>(params, stream);
}

}  // namespace longbow::kernels
