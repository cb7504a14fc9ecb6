// RoPE: one thread per (token, head, rotated pair); q and k heads share one launch.
#include <cuda_bf16.h>

#include "kernels/rope/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) rope_kernel(RopeParams p) {
  const int half = p.rotary_dim / 2;
  const int heads = p.num_q_heads + p.num_kv_heads;
  const int64_t total = static_cast<int64_t>(p.tokens) * heads * half;
  for (int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * kThreads) {
    const int i = static_cast<int>(idx % half);
    const int64_t th = idx / half;
    const int head = static_cast<int>(th % heads);
    const int64_t token = th / heads;
    __nv_bfloat16* base;
    if (head < p.num_q_heads) {
      base = static_cast<__nv_bfloat16*>(p.q) + (token * p.num_q_heads + head) * p.head_dim;
    } else {
      base = static_cast<__nv_bfloat16*>(p.k) + (token * p.num_kv_heads + (head - p.num_q_heads)) * p.head_dim;
    }
    // Angles reach ~1e5 rad at long positions: the full-range sincosf keeps them exact to fp32.
    const float angle = static_cast<float>(p.positions[token]) * p.inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);
    c *= p.attention_scaling;
    s *= p.attention_scaling;
    const float x0 = __bfloat162float(base[i]);
    const float x1 = __bfloat162float(base[i + half]);
    base[i] = __float2bfloat16(x0 * c - x1 * s);
    base[i + half] = __float2bfloat16(x1 * c + x0 * s);
  }
}

}  // namespace

cudaError_t launch_rope(const RopeParams& p, cudaStream_t stream) {
  if (p.rotary_dim % 2 != 0 || p.rotary_dim > p.head_dim || p.tokens < 0) return cudaErrorInvalidValue;
  const int64_t total = static_cast<int64_t>(p.tokens) * (p.num_q_heads + p.num_kv_heads) * (p.rotary_dim / 2);
  if (total == 0) return cudaSuccess;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  rope_kernel<<<static_cast<unsigned>(blocks < 65536 ? blocks : 65536), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
