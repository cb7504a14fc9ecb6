// RMSNorm and the fused residual-add + RMSNorm: one block per row.
#include <cuda_bf16.h>

#include "kernels/common/device_utils.cuh"
#include "kernels/norm/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 256;

// kFused: residual += delta first and normalise the result. kVec: cols % 8 == 0 (16-byte path).
template <bool kFused, bool kVec>
__global__ void __launch_bounds__(kThreads) rms_norm_kernel(RmsNormParams p) {
  __shared__ float scratch[32];
  const int64_t row_offset = static_cast<int64_t>(blockIdx.x) * p.cols;
  const __nv_bfloat16* weight = static_cast<const __nv_bfloat16*>(p.weight);
  __nv_bfloat16* out = static_cast<__nv_bfloat16*>(p.out) + row_offset;
  const __nv_bfloat16* x = kFused ? static_cast<const __nv_bfloat16*>(p.residual) + row_offset
                                  : static_cast<const __nv_bfloat16*>(p.x) + row_offset;

  float sum_sq = 0.0f;
  if constexpr (kVec) {
    const int num_vec = p.cols / 8;
    for (int i = threadIdx.x; i < num_vec; i += kThreads) {
      Bf16x8 v = reinterpret_cast<const Bf16x8*>(x)[i];
      float f[8];
      bf16x8_to_float(v, f);
      if constexpr (kFused) {
        float d[8];
        bf16x8_to_float(reinterpret_cast<const Bf16x8*>(static_cast<const __nv_bfloat16*>(p.delta) + row_offset)[i], d);
#pragma unroll
        for (int j = 0; j < 8; ++j) f[j] += d[j];
        v = float_to_bf16x8(f);
        bf16x8_to_float(v, f);  // the norm sees the rounded residual
        reinterpret_cast<Bf16x8*>(static_cast<__nv_bfloat16*>(p.residual) + row_offset)[i] = v;
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) sum_sq += f[j] * f[j];
    }
  } else {
    for (int i = threadIdx.x; i < p.cols; i += kThreads) {
      float f = __bfloat162float(x[i]);
      if constexpr (kFused) {
        __nv_bfloat16 r = __float2bfloat16(f + __bfloat162float(static_cast<const __nv_bfloat16*>(p.delta)[row_offset + i]));
        static_cast<__nv_bfloat16*>(p.residual)[row_offset + i] = r;
        f = __bfloat162float(r);
      }
      sum_sq += f * f;
    }
  }
  const float total = block_sum(sum_sq, scratch);
  const float inv_rms = rsqrtf(total / static_cast<float>(p.cols) + p.eps);
  // The fused variant re-reads the residual this thread wrote itself; no barrier needed for that,
  // but `out` may alias it, so each element is read before it is overwritten by the same thread.
  if constexpr (kVec) {
    const int num_vec = p.cols / 8;
    for (int i = threadIdx.x; i < num_vec; i += kThreads) {
      float f[8], w[8];
      bf16x8_to_float(reinterpret_cast<const Bf16x8*>(x)[i], f);
      bf16x8_to_float(reinterpret_cast<const Bf16x8*>(weight)[i], w);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = f[j] * inv_rms * w[j];
      reinterpret_cast<Bf16x8*>(out)[i] = float_to_bf16x8(f);
    }
  } else {
    for (int i = threadIdx.x; i < p.cols; i += kThreads) {
      out[i] = __float2bfloat16(__bfloat162float(x[i]) * inv_rms * __bfloat162float(weight[i]));
    }
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

template <bool kFused>
cudaError_t launch(const RmsNormParams& p, cudaStream_t stream) {
  if (p.rows <= 0 || p.cols <= 0) return p.rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
  const void* src = kFused ? static_cast<const void*>(p.residual) : p.x;
  const bool vec = p.cols % 8 == 0 && aligned16(src) && aligned16(p.weight) && aligned16(p.out) &&
                   (!kFused || aligned16(p.delta));
  if (vec) {
    rms_norm_kernel<kFused, true><<<p.rows, kThreads, 0, stream>>>(p);
  } else {
    rms_norm_kernel<kFused, false><<<p.rows, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_rms_norm(const RmsNormParams& params, cudaStream_t stream) { return launch<false>(params, stream); }

cudaError_t launch_add_rms_norm(const RmsNormParams& params, cudaStream_t stream) {
  return launch<true>(params, stream);
}

}  // namespace longbow::kernels
