// Bias add, random fill, scale and soft-cap.
#include <cuda_bf16.h>

#include "kernels/elementwise/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 16384 ? (blocks > 0 ? blocks : 1) : 16384);
}

template <bool kF32>
__global__ void __launch_bounds__(kThreads) bias_add_kernel(BiasAddParams p) {
  const int64_t total = p.rows * p.cols;
  const auto* bias = static_cast<const __nv_bfloat16*>(p.bias);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const float b = __bfloat162float(bias[i % p.cols]);
    if constexpr (kF32) {
      static_cast<float*>(p.out)[i] += b;
    } else {
      auto* out = static_cast<__nv_bfloat16*>(p.out);
      out[i] = __float2bfloat16(__bfloat162float(out[i]) + b);
    }
  }
}

// splitmix64 finaliser: a good 64-bit mix of (seed, index).
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

template <bool kF32>
__global__ void __launch_bounds__(kThreads) fill_random_kernel(FillRandomParams p) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const uint64_t bits = mix64(p.seed * 0x100000001b3ull + static_cast<uint64_t>(i));
    const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
    const float value = __fadd_rn(p.low, __fmul_rn(__fsub_rn(p.high, p.low), unit));  // _rn: no FMA, as on the CPU
    if constexpr (kF32) {
      static_cast<float*>(p.out)[i] = value;
    } else {
      static_cast<__nv_bfloat16*>(p.out)[i] = __float2bfloat16_rn(value);
    }
  }
}

// kSoftcap: x = value · tanh(x / value); otherwise x *= value.
template <bool kF32, bool kSoftcap>
__global__ void __launch_bounds__(kThreads) map_kernel(ScaleParams p) {
  const float inv = kSoftcap ? 1.0f / p.value : 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    float v = kF32 ? static_cast<float*>(p.x)[i] : __bfloat162float(static_cast<__nv_bfloat16*>(p.x)[i]);
    v = kSoftcap ? p.value * tanhf(v * inv) : v * p.value;
    if constexpr (kF32) {
      static_cast<float*>(p.x)[i] = v;
    } else {
      static_cast<__nv_bfloat16*>(p.x)[i] = __float2bfloat16(v);
    }
  }
}

template <bool kSoftcap>
cudaError_t launch_map(const ScaleParams& p, cudaStream_t stream) {
  if (p.count <= 0) return p.count == 0 ? cudaSuccess : cudaErrorInvalidValue;
  if (p.x_f32) {
    map_kernel<true, kSoftcap><<<grid_for(p.count), kThreads, 0, stream>>>(p);
  } else {
    map_kernel<false, kSoftcap><<<grid_for(p.count), kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_scale(const ScaleParams& p, cudaStream_t stream) { return launch_map<false>(p, stream); }

cudaError_t launch_softcap(const ScaleParams& p, cudaStream_t stream) {
  if (!(p.value > 0.0f)) return cudaErrorInvalidValue;
  return launch_map<true>(p, stream);
}

cudaError_t launch_bias_add(const BiasAddParams& p, cudaStream_t stream) {
  if (p.rows * p.cols == 0) return cudaSuccess;
  if (p.out_f32) {
    bias_add_kernel<true><<<grid_for(p.rows * p.cols), kThreads, 0, stream>>>(p);
  } else {
    bias_add_kernel<false><<<grid_for(p.rows * p.cols), kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

cudaError_t launch_fill_random_bf16(const FillRandomParams& p, cudaStream_t stream) {
  if (p.count <= 0) return p.count == 0 ? cudaSuccess : cudaErrorInvalidValue;
  fill_random_kernel<false><<<grid_for(p.count), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_fill_random_f32(const FillRandomParams& p, cudaStream_t stream) {
  if (p.count <= 0) return p.count == 0 ? cudaSuccess : cudaErrorInvalidValue;
  fill_random_kernel<true><<<grid_for(p.count), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
