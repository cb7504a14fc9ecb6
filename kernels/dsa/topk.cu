// Exact, deterministic top-k per row (contract in kernels/dsa/params.h; reference cpu::dsa_topk).
//
// Each element gets a unique 64-bit composite key (order-preserving score key << 32 | ~index), so
// "the k largest composites" is exactly "the k largest scores, ties to the lower index". A radix
// select finds the k-th largest composite digit by digit from the top (widths 12, 8, 8, 4 over the
// score key, then 8 × 4 over ~index), stopping as soon as the threshold bucket is taken whole:
//   round 1: a 4096-bin histogram of the whole row (global memory, 16-byte loads, eight private
//   copies of the histogram against shared-memory atomic collisions);
//   then the elements of the threshold bucket are compacted into shared memory (order irrelevant:
//   later rounds only count) and refined there; a bucket larger than the buffer is refined by
//   re-reading the row instead, so nothing is ever dropped;
//   finally the row is read once more and every element whose composite prefix is >= the threshold
//   prefix is emitted, positions from a block-wide prefix sum in index order (no atomics), giving
//   exactly k indices in ascending order.
#include <cub/block/block_scan.cuh>

#include <cstdint>

#include "kernels/dsa/dsa_device.cuh"
#include "kernels/dsa/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 1024;
constexpr int kMaxBins = 4096;
constexpr int kCopies = 8;  // private histograms (warp w counts into copy w % 8): fewer atomic collisions
constexpr int kCapacity = 8192;  // candidates kept on chip
constexpr int kRounds = 8;
__constant__ int kWidths[kRounds] = {12, 8, 8, 4, 8, 8, 8, 8};  // sums to 64

using Scan = cub::BlockScan<uint32_t, kThreads>;

struct Smem {
  uint32_t hist[kCopies][kMaxBins];  // copy 0 holds the merged counts find_bin reads
  uint32_t cand_key[kCapacity];
  uint32_t cand_idx[kCapacity];
  typename Scan::TempStorage scan;
  uint32_t bin, need, count, fill;
};

__device__ __forceinline__ uint64_t composite(float v, uint32_t index) {
  return (static_cast<uint64_t>(dsa::score_key(v)) << 32) | static_cast<uint32_t>(~index);
}

// The bin holding the need-th largest element counting from the top bin; sets s.bin, s.need (what
// is still needed inside that bin) and s.count (its size).
__device__ void find_bin(Smem& s, int bins, uint32_t need) {
  const int per = (bins + kThreads - 1) / kThreads;
  const int first = threadIdx.x * per;  // positions counted from the top bin
  uint32_t local = 0;
  for (int q = first; q < first + per && q < bins; ++q) local += s.hist[0][bins - 1 - q];
  uint32_t before;
  Scan(s.scan).ExclusiveSum(local, before);
  for (int q = first; q < first + per && q < bins; ++q) {
    const uint32_t c = s.hist[0][bins - 1 - q];
    if (before < need && before + c >= need) {
      s.bin = static_cast<uint32_t>(bins - 1 - q);
      s.need = need - before;
      s.count = c;
    }
    before += c;
  }
  __syncthreads();
}

// Calls fn(i, x[i]) for every i < len, each element by one thread; 16-byte loads, eight in flight
// per thread, when the row is 16-byte aligned.
template <typename Fn>
__device__ __forceinline__ void for_each(const float* x, int len, bool vec, Fn&& fn) {
  int tail = 0;
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int n4 = len / 4;
    int i = threadIdx.x;
    for (; i + 7 * kThreads < n4; i += 8 * kThreads) {
      float4 v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) v[u] = __ldg(x4 + i + u * kThreads);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int b = 4 * (i + u * kThreads);
        fn(b, v[u].x);
        fn(b + 1, v[u].y);
        fn(b + 2, v[u].z);
        fn(b + 3, v[u].w);
      }
    }
    for (; i < n4; i += kThreads) {
      const float4 v = __ldg(x4 + i);
      fn(4 * i, v.x);
      fn(4 * i + 1, v.y);
      fn(4 * i + 2, v.z);
      fn(4 * i + 3, v.w);
    }
    tail = 4 * n4;
  }
  for (int i = tail + threadIdx.x; i < len; i += kThreads) fn(i, __ldg(x + i));
}

__global__ void __launch_bounds__(kThreads) topk_kernel(DsaTopkParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const int row = blockIdx.x;
  int lo = 0, hi = p.seqs - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (p.query_start[mid] <= row) lo = mid; else hi = mid - 1;
  }
  const int q_len = p.query_start[lo + 1] - p.query_start[lo];
  const int len = p.context_lens[lo] - q_len + (row - p.query_start[lo]) + 1;
  int* out = p.indices + static_cast<int64_t>(row) * p.k;
  if (len <= p.k) {
    for (int i = threadIdx.x; i < p.k; i += kThreads) out[i] = i < len ? i : -1;
    return;
  }
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  uint32_t* my_hist = s.hist[(threadIdx.x >> 5) % kCopies];

  // Rounds: prefix holds the threshold's top `used` composite bits; need counts within it.
  uint64_t prefix = 0;
  int used = 0;
  uint32_t need = static_cast<uint32_t>(p.k);
  bool on_chip = false;
  for (int round = 0; round < kRounds; ++round) {
    const int width = kWidths[round];
    const int bins = 1 << width;
    const int shift = 64 - used - width;
    for (int i = threadIdx.x; i < kCopies * bins; i += kThreads) s.hist[i / bins][i % bins] = 0;
    __syncthreads();
    if (on_chip) {
      for (uint32_t i = threadIdx.x; i < s.fill; i += kThreads) {
        const uint64_t v = (static_cast<uint64_t>(s.cand_key[i]) << 32) | s.cand_idx[i];
        if (used == 0 || (v >> (64 - used)) == prefix) atomicAdd(&my_hist[(v >> shift) & (bins - 1)], 1u);
      }
    } else {
      for_each(x, len, vec, [&](int i, float value) {
        const uint64_t v = composite(value, static_cast<uint32_t>(i));
        if (used == 0 || (v >> (64 - used)) == prefix) atomicAdd(&my_hist[(v >> shift) & (bins - 1)], 1u);
      });
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += kThreads) {
      uint32_t total = 0;
#pragma unroll
      for (int c = 0; c < kCopies; ++c) total += s.hist[c][i];
      s.hist[0][i] = total;
    }
    __syncthreads();
    find_bin(s, bins, need);
    prefix = (prefix << width) | s.bin;
    used += width;
    need = s.need;
    if (s.count == need) break;  // the whole bucket is taken: the threshold is this prefix
    if (!on_chip && s.count <= kCapacity) {
      // Compact the bucket's elements on chip (their order does not matter to later rounds).
      if (threadIdx.x == 0) s.fill = 0;
      __syncthreads();
      for_each(x, len, vec, [&](int i, float value) {
        const uint64_t v = composite(value, static_cast<uint32_t>(i));
        if ((v >> (64 - used)) == prefix) {
          const uint32_t slot = atomicAdd(&s.fill, 1u);
          s.cand_key[slot] = static_cast<uint32_t>(v >> 32);
          s.cand_idx[slot] = static_cast<uint32_t>(v);
        }
      });
      __syncthreads();
      on_chip = true;
    }
  }

  // Emission in index order: each thread takes 16 consecutive elements per tile (four 16-byte loads
  // in flight), one block-wide prefix sum per tile of 16384.
  constexpr int kPer = 16;
  uint32_t base = 0;
  const int drop = 64 - used;
  for (int tile = 0; tile < len; tile += kPer * kThreads) {
    const int first = tile + kPer * threadIdx.x;
    float val[kPer];
    if (vec && first + kPer <= len) {
#pragma unroll
      for (int u = 0; u < kPer / 4; ++u) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(x + first) + u);
        val[4 * u] = v.x;
        val[4 * u + 1] = v.y;
        val[4 * u + 2] = v.z;
        val[4 * u + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int e = 0; e < kPer; ++e) val[e] = first + e < len ? __ldg(x + first + e) : 0.0f;
    }
    uint32_t take = 0, mine = 0;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int i = first + e;
      if (i < len && (composite(val[e], static_cast<uint32_t>(i)) >> drop) >= prefix) {
        take |= 1u << e;
        ++mine;
      }
    }
    uint32_t offset, total;
    Scan(s.scan).ExclusiveSum(mine, offset, total);
    offset += base;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      if (take & (1u << e)) out[offset++] = first + e;
    }
    base += total;
    __syncthreads();  // the scan storage is reused by the next tile
  }
}

}  // namespace

cudaError_t launch_dsa_topk(const DsaTopkParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.seqs <= 0 || p.k <= 0 || p.k > 4096) return cudaErrorInvalidValue;
  const int smem = static_cast<int>(sizeof(Smem));
  // Once per process (not a stream operation, so graph capture never sees it after the first call).
  static const cudaError_t attribute =
      cudaFuncSetAttribute(topk_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (attribute != cudaSuccess) return attribute;
  topk_kernel<<<p.rows, kThreads, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
