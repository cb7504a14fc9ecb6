// Gated activations (SwiGLU, GeGLU with exact or tanh GELU, MiniMax's sigmoid output gate):
// elementwise, 8 elements per thread on the 16-byte path. One kernel per activation and path: eight
// small instantiations.
#include <cuda_bf16.h>

#include "kernels/activation/params.h"
#include "kernels/common/device_utils.cuh"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 256;

template <GatedActivation kAct>
__device__ __forceinline__ float gated(float g, float u) {
  if constexpr (kAct == GatedActivation::kSilu) {
    return g / (1.0f + __expf(-g)) * u;
  } else if constexpr (kAct == GatedActivation::kGeluTanh) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    return 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * (g + 0.044715f * g * g * g))) * u;
  } else if constexpr (kAct == GatedActivation::kSigmoid) {
    return u / (1.0f + __expf(-g));
  } else {
    constexpr float kInvSqrt2 = 0.7071067811865476f;
    return 0.5f * g * (1.0f + erff(g * kInvSqrt2)) * u;
  }
}

template <GatedActivation kAct>
__global__ void __launch_bounds__(kThreads) gated_vec_kernel(GatedActivationParams p) {
  const int64_t num_vec = p.count / 8;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < num_vec;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    float g[8], u[8];
    bf16x8_to_float(static_cast<const Bf16x8*>(p.gate)[i], g);
    bf16x8_to_float(static_cast<const Bf16x8*>(p.up)[i], u);
#pragma unroll
    for (int j = 0; j < 8; ++j) g[j] = gated<kAct>(g[j], u[j]);
    static_cast<Bf16x8*>(p.out)[i] = float_to_bf16x8(g);
  }
}

template <GatedActivation kAct>
__global__ void __launch_bounds__(kThreads) gated_scalar_kernel(GatedActivationParams p) {
  const auto* gate = static_cast<const __nv_bfloat16*>(p.gate);
  const auto* up = static_cast<const __nv_bfloat16*>(p.up);
  auto* out = static_cast<__nv_bfloat16*>(p.out);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < p.count;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    out[i] = __float2bfloat16(gated<kAct>(__bfloat162float(gate[i]), __bfloat162float(up[i])));
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

unsigned grid_for(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 8192 ? (blocks > 0 ? blocks : 1) : 8192);
}

template <GatedActivation kAct>
cudaError_t launch(const GatedActivationParams& p, cudaStream_t stream) {
  if (p.count % 8 == 0 && aligned16(p.gate) && aligned16(p.up) && aligned16(p.out)) {
    gated_vec_kernel<kAct><<<grid_for(p.count / 8), kThreads, 0, stream>>>(p);
  } else {
    gated_scalar_kernel<kAct><<<grid_for(p.count), kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_gated_activation(const GatedActivationParams& p, cudaStream_t stream) {
  if (p.count <= 0) return p.count == 0 ? cudaSuccess : cudaErrorInvalidValue;
  switch (p.act) {
    case GatedActivation::kSilu: return launch<GatedActivation::kSilu>(p, stream);
    case GatedActivation::kGeluTanh: return launch<GatedActivation::kGeluTanh>(p, stream);
    case GatedActivation::kGelu: return launch<GatedActivation::kGelu>(p, stream);
    case GatedActivation::kSigmoid: return launch<GatedActivation::kSigmoid>(p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace longbow::kernels
