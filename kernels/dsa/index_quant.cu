// The indexer's quantization path: index keys into the paged FP8 index cache, and FP8 queries with
// their folded head weights (contracts in kernels/dsa/params.h; reference cpu_dsa.cc).
//
// One warp per vector of head_dim values, lane l holding elements [l·P, (l+1)·P), P = head_dim/32.
// The Hadamard butterflies run in the reference's order, so given the same fp32 input the bytes and
// scales match the CPU emulation bit for bit.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/dsa/dsa_device.cuh"
#include "kernels/dsa/params.h"

namespace longbow::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;

template <int kPer>
__device__ __forceinline__ void load_bf16(const void* base, int64_t offset, float (&x)[kPer]) {
  const auto* p = static_cast<const __nv_bfloat16*>(base) + offset;
#pragma unroll
  for (int i = 0; i < kPer; ++i) x[i] = __bfloat162float(p[i]);
}

template <int kPer>
__device__ __forceinline__ void store_packed(uint8_t* dst, uint32_t packed) {
  if constexpr (kPer == 4) {
    *reinterpret_cast<uint32_t*>(dst) = packed;
  } else {
    *reinterpret_cast<uint16_t*>(dst) = static_cast<uint16_t>(packed);
  }
}

template <int kPer>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) index_keys_kernel(DsaIndexKeyParams p) {
  constexpr int D = 32 * kPer;
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);
  if (t >= p.tokens) return;
  const int slot = p.slots[t];
  if (slot < 0) return;  // a padding row (the whole warp leaves: no shuffle below misses a lane)
  float x[kPer], g[kPer], b[kPer];
  load_bf16<kPer>(p.k_raw, static_cast<int64_t>(t) * D + lane * kPer, x);
  load_bf16<kPer>(p.gamma, lane * kPer, g);
  load_bf16<kPer>(p.beta, lane * kPer, b);
  float sum = 0.0f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) sum += x[i];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float mean = sum / D;
  float var = 0.0f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) var += (x[i] - mean) * (x[i] - mean);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) var += __shfl_xor_sync(0xffffffffu, var, o);
  const float inv_std = rsqrtf(var / D + 1e-6f);
#pragma unroll
  for (int i = 0; i < kPer; ++i) x[i] = (x[i] - mean) * inv_std * g[i] + b[i];
  if (p.rope_dim > 0) dsa::warp_rope<kPer>(x, p.rope_dim, p.positions[t], p.inv_freq, p.attention_scaling);
  uint32_t packed;
  const float scale = dsa::warp_quantize<kPer>(x, p.hadamard_scale, packed);
  uint8_t* page = p.cache + static_cast<int64_t>(slot / kDsaPageSize) * kDsaPageSize * (D + 4);
  const int off = slot % kDsaPageSize;
  store_packed<kPer>(page + off * D + lane * kPer, packed);
  if (lane == 0) *reinterpret_cast<float*>(page + kDsaPageSize * D + off * 4) = scale;
}

template <int kPer>
__global__ void __launch_bounds__(kWarpsPerBlock * 32) index_query_kernel(DsaIndexQueryParams p) {
  constexpr int D = 32 * kPer;
  const int lane = threadIdx.x & 31;
  const int v = blockIdx.x * kWarpsPerBlock + (threadIdx.x >> 5);  // row · heads + head
  if (v >= p.rows * p.heads) return;
  const int row = v / p.heads;
  float x[kPer];
  load_bf16<kPer>(p.q, static_cast<int64_t>(v) * D + lane * kPer, x);
  if (p.rope_dim > 0) dsa::warp_rope<kPer>(x, p.rope_dim, p.positions[row], p.inv_freq, p.attention_scaling);
  uint32_t packed;
  const float scale = dsa::warp_quantize<kPer>(x, p.hadamard_scale, packed);
  store_packed<kPer>(p.q_fp8 + static_cast<int64_t>(v) * D + lane * kPer, packed);
  if (lane == 0) {
    const float w = __bfloat162float(static_cast<const __nv_bfloat16*>(p.w_raw)[v]);
    p.w_eff[v] = w * p.weight_scale * scale;
  }
}

bool rope_ok(int rope_dim, int head_dim) {
  const int per = head_dim / 32;
  return rope_dim >= 0 && rope_dim <= head_dim && rope_dim % (2 * per) == 0;
}

}  // namespace

cudaError_t launch_dsa_index_keys(const DsaIndexKeyParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.tokens < 0 || !rope_ok(p.rope_dim, p.head_dim)) return cudaErrorInvalidValue;
  const dim3 grid((p.tokens + kWarpsPerBlock - 1) / kWarpsPerBlock);
  switch (p.head_dim) {
    case 64: index_keys_kernel<2><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p); break;
    case 128: index_keys_kernel<4><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t launch_dsa_index_query(const DsaIndexQueryParams& p, cudaStream_t stream) {
  const int64_t vectors = static_cast<int64_t>(p.rows) * p.heads;
  if (vectors == 0) return cudaSuccess;
  if (p.rows < 0 || p.heads <= 0 || !rope_ok(p.rope_dim, p.head_dim)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>((vectors + kWarpsPerBlock - 1) / kWarpsPerBlock));
  switch (p.head_dim) {
    case 64: index_query_kernel<2><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p); break;
    case 128: index_query_kernel<4><<<grid, kWarpsPerBlock * 32, 0, stream>>>(p); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace longbow::kernels
