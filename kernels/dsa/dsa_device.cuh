// Device helpers shared by the DSA kernels: the warp-wide FWHT + FP8 quantization of one head
// vector, half-split RoPE across lanes, and the order-preserving key of an fp32 score.
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace longbow::kernels::dsa {

// Lane l holds elements [l·kPer, (l+1)·kPer) of a vector of 32·kPer values.
template <int kPer>
__device__ __forceinline__ void warp_hadamard(float (&x)[kPer]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int h = 1; h < kPer; h <<= 1) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      if (i & h) continue;
      float a = x[i], b = x[i + h];
      x[i] = a + b;
      x[i + h] = a - b;
    }
  }
#pragma unroll
  for (int mask = 1; mask < 32; mask <<= 1) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      float other = __shfl_xor_sync(0xffffffffu, x[i], mask);
      // The lower index of a pair is (a, .): a + b there, a - b at the upper index.
      x[i] = (lane & mask) ? other - x[i] : x[i] + other;
    }
  }
}

// The power-of-two scale 2^ceil(log2(max(amax, 1e-4) / 448)) (cpu::dsa_fp8_scale).
__device__ __forceinline__ float fp8_block_scale(float amax) {
  float ratio = fmaxf(amax, 1e-4f) / 448.0f;
  uint32_t bits = __float_as_uint(ratio);
  int exponent = static_cast<int>((bits >> 23) & 0xFF) - 127;
  if ((bits & 0x7FFFFF) != 0) ++exponent;
  return __uint_as_float(static_cast<uint32_t>(exponent + 127) << 23);
}

__device__ __forceinline__ uint8_t to_e4m3(float v) {
  return static_cast<uint8_t>(__nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3));
}

// y = hadamard(x) · hadamard_scale, quantized with its block scale: returns the scale, packs the
// lane's kPer bytes (element order) into `packed`.
template <int kPer>
__device__ __forceinline__ float warp_quantize(float (&x)[kPer], float hadamard_scale, uint32_t& packed) {
  warp_hadamard<kPer>(x);
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    x[i] *= hadamard_scale;
    amax = fmaxf(amax, fabsf(x[i]));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, offset));
  float scale = fp8_block_scale(amax);
  float inv = 1.0f / scale;
  packed = 0;
#pragma unroll
  for (int i = 0; i < kPer; ++i) packed |= static_cast<uint32_t>(to_e4m3(x[i] * inv)) << (8 * i);
  return scale;
}

// Half-split RoPE on the leading rope_dim elements of the warp's vector (pair (i, i + rope_dim/2)).
template <int kPer>
__device__ __forceinline__ void warp_rope(float (&x)[kPer], int rope_dim, int position, const float* inv_freq,
                                          float attention_scaling) {
  const int lane = threadIdx.x & 31;
  const int half = rope_dim / 2;
  const int lane_offset = half / kPer;
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    float up = __shfl_down_sync(0xffffffffu, x[i], lane_offset);  // element e + half
    float down = __shfl_up_sync(0xffffffffu, x[i], lane_offset);  // element e - half
    const int e = lane * kPer + i;
    if (e >= rope_dim) continue;
    const int pair = e < half ? e : e - half;
    float s, c;
    sincosf(static_cast<float>(position) * inv_freq[pair], &s, &c);
    c *= attention_scaling;
    s *= attention_scaling;
    x[i] = e < half ? x[i] * c - up * s : x[i] * c + down * s;
  }
}

// Row r's sequence (query_start is non-decreasing, seqs >= 1) and its length: position + 1, where
// the row sits at position context_lens[s] - q_len + (r - query_start[s]).
__device__ __forceinline__ int row_length(const int* query_start, const int* context_lens, int seqs, int row,
                                          int* seq_out) {
  int lo = 0, hi = seqs - 1;
  while (lo < hi) {  // the last s with query_start[s] <= row
    int mid = (lo + hi + 1) / 2;
    if (query_start[mid] <= row) lo = mid; else hi = mid - 1;
  }
  *seq_out = lo;
  const int q_len = query_start[lo + 1] - query_start[lo];
  return context_lens[lo] - q_len + (row - query_start[lo]) + 1;
}

// The index-logits kernels' page run for one row: its `pages` pages spread over the launch's
// `blocks` page-run blocks, at least kMinPagesPerBlock each (staging q costs about as much as
// streaming one or two pages). Derived from the row's own length, not the launch's context bound,
// so a graph launched for a bound far above the real contexts does the eager launch's work.
constexpr int kMinPagesPerBlock = 4;
__device__ __forceinline__ int logits_page_run(int pages, int blocks) {
  return max(kMinPagesPerBlock, (pages + blocks - 1) / blocks);
}

// Larger scores give larger keys; -0 and +0 share one key (they compare equal).
__device__ __forceinline__ uint32_t score_key(float v) {
  uint32_t bits = __float_as_uint(v == 0.0f ? 0.0f : v);
  return (bits & 0x80000000u) ? ~bits : bits | 0x80000000u;
}

}  // namespace longbow::kernels::dsa
