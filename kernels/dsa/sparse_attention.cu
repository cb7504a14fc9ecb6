// Sparse attention over the selected tokens (contract in kernels/dsa/params.h; reference
// cpu::dsa_sparse_attention).
//
// Block = (split, kv head, row), 4 warps, serving the G <= 8 query heads of the KV head so each
// selected K/V row is read once per group. Each warp walks its own groups of 32/G selected tokens
// with a private online softmax (log2 domain): slots through the block table (−1 stays masked), the
// group's K and V rows loaded up front (lanes over head_dim), 32 partial dots reduce-scattered so
// each lane owns one (token, head) score, then O += P·V. Warps merge in shared memory; with splits
// the block writes a normalised partial and its log2-sum-exp, merged by a second kernel. fp32
// arithmetic; bf16 only in memory. (G = 1 or 2 keep 32 or 16 rows in flight per lane and spill;
// the GQA shapes served have G >= 4.)
#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/dsa/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMinChunk = 64;  // indices per split, at least
constexpr int kMaxChunk = 2048;  // indices per split, at most (their slots are staged in shared memory)
constexpr float kLog2e = 1.4426950408889634f;

struct Partials {
  float* o;    // [rows, q_heads, splits, D]
  float* lse;  // [rows, q_heads, splits], log2 domain; -inf for an empty split
};

__host__ __device__ inline Partials carve(void* base, int rows, int q_heads, int head_dim, int splits) {
  Partials w;
  w.o = static_cast<float*>(base);
  w.lse = w.o + static_cast<int64_t>(rows) * q_heads * splits * head_dim;
  return w;
}

// Sums n = 32 >> s values (a power of two, 1..32) across the warp as a reduce-scatter: afterwards
// lane l holds the total of value l >> s (31 shuffles for 32 values instead of 160).
template <int N>
__device__ __forceinline__ float reduce_scatter(float (&v)[N]) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int offset = 16, len = N; offset > 0; offset >>= 1) {
    if (len > 1) {
      const int half = len / 2;
      const bool upper = (lane & offset) != 0;
#pragma unroll
      for (int i = 0; i < N / 2; ++i) {
        if (i >= half) break;
        const float keep = upper ? v[i + half] : v[i];
        const float send = upper ? v[i] : v[i + half];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, offset);
      }
      len = half;
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], offset);
    }
  }
  return v[0];
}

// Each warp runs its own online softmax over groups of kT = 32 / G tokens (so kT·G = 32 scores fill
// the warp after the reduce-scatter: lane l holds token l / G, head l % G), lanes over head_dim for
// the loads and P·V. K and V rows of the whole group are loaded before any arithmetic. Warps merge
// through shared memory at the end.
template <int D, int G>
__global__ void __launch_bounds__(kThreads) sparse_kernel(DsaSparseAttentionParams p) {
  constexpr int kPer = D / 32;
  constexpr int kT = 32 / G;  // tokens per warp step
  __shared__ float m_w[kWarps][G], l_w[kWarps][G];
  __shared__ float o_w[kWarps][G][D];
  __shared__ int slots[kMaxChunk];  // the split's physical slots, -1 where the index is -1

  const int split = blockIdx.x, kv = blockIdx.y, row = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  int lo = 0, hi = p.seqs - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (p.query_start[mid] <= row) lo = mid; else hi = mid - 1;
  }
  const int* table = p.block_tables + static_cast<int64_t>(lo) * p.max_pages;
  const int chunk = (p.topk + p.num_splits - 1) / p.num_splits;
  const int begin = split * chunk, end = min(p.topk, begin + chunk);

  const float qscale = p.scale * kLog2e;
  const auto* qg = static_cast<const __nv_bfloat16*>(p.q) + (static_cast<int64_t>(row) * p.q_heads + kv * G) * D;
  float q[G][kPer];
#pragma unroll
  for (int h = 0; h < G; ++h) {
#pragma unroll
    for (int e = 0; e < kPer; ++e) q[h][e] = __bfloat162float(qg[h * D + lane * kPer + e]) * qscale;
  }
  const auto* k_cache = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_cache = static_cast<const __nv_bfloat16*>(p.v_cache);
  const int64_t row_stride = static_cast<int64_t>(p.kv_heads) * D;
  const int* indices = p.indices + static_cast<int64_t>(row) * p.topk;

  float m[G], l[G], acc[G][kPer];
#pragma unroll
  for (int h = 0; h < G; ++h) {
    m[h] = -INFINITY;
    l[h] = 0.0f;
#pragma unroll
    for (int e = 0; e < kPer; ++e) acc[h][e] = 0.0f;
  }
  const int my_token = lane / G, my_head = lane % G;
  // Resolve the split's slots once, all threads at a time: the loop below then waits on one load
  // (K/V) per step instead of three dependent ones (index, block table, K/V).
  for (int i = begin + threadIdx.x; i < end; i += kThreads) {
    const int j = indices[i];
    slots[i - begin] = j >= 0 ? table[j / kDsaPageSize] * kDsaPageSize + j % kDsaPageSize : -1;
  }
  __syncthreads();

  for (int t0 = begin + warp * kT; t0 < end; t0 += kWarps * kT) {
    // Slots of the group: lane u < kT holds token t0 + u, then every lane gets all of them.
    const int my_slot = lane < kT && t0 + lane < end ? slots[t0 + lane - begin] : -1;
    int slot[kT];
    float kf[kT][kPer], vf[kT][kPer];
#pragma unroll
    for (int u = 0; u < kT; ++u) {
      slot[u] = __shfl_sync(0xffffffffu, my_slot, u);
      const int64_t base = (slot[u] < 0 ? 0 : slot[u]) * row_stride + kv * D + lane * kPer;
      if constexpr (kPer == 4) {
        const uint2 kr = *reinterpret_cast<const uint2*>(k_cache + base);
        const uint2 vr = *reinterpret_cast<const uint2*>(v_cache + base);
        float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&kr.x));
        float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&kr.y));
        kf[u][0] = a.x; kf[u][1] = a.y; kf[u][2] = b.x; kf[u][3] = b.y;
        a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&vr.x));
        b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(&vr.y));
        vf[u][0] = a.x; vf[u][1] = a.y; vf[u][2] = b.x; vf[u][3] = b.y;
      } else {
        const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(k_cache + base));
        const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(v_cache + base));
        kf[u][0] = a.x; kf[u][1] = a.y;
        vf[u][0] = b.x; vf[u][1] = b.y;
      }
    }
    float part[32];
#pragma unroll
    for (int u = 0; u < kT; ++u) {
#pragma unroll
      for (int h = 0; h < G; ++h) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < kPer; ++e) dot += q[h][e] * kf[u][e];
        part[u * G + h] = dot;
      }
    }
    float score = reduce_scatter<32>(part);  // token my_token, head my_head
    if (__shfl_sync(0xffffffffu, my_slot, my_token) < 0) score = -INFINITY;
    // Per-head maximum and sum over the group's tokens: lanes with equal lane % G.
    float mx = score;
#pragma unroll
    for (int o = G; o < 32; o <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float m_new[G], corr[G];
#pragma unroll
    for (int h = 0; h < G; ++h) {
      m_new[h] = fmaxf(m[h], __shfl_sync(0xffffffffu, mx, h));
      corr[h] = m[h] == -INFINITY ? 0.0f : exp2f(m[h] - m_new[h]);
    }
    float my_m = m_new[0];
#pragma unroll
    for (int h = 1; h < G; ++h) my_m = my_head == h ? m_new[h] : my_m;
    const float pr = (score == -INFINITY) ? 0.0f : exp2f(score - my_m);
    float sum = pr;
#pragma unroll
    for (int o = G; o < 32; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
#pragma unroll
    for (int h = 0; h < G; ++h) {
      l[h] = l[h] * corr[h] + __shfl_sync(0xffffffffu, sum, h);
      m[h] = m_new[h];
#pragma unroll
      for (int e = 0; e < kPer; ++e) acc[h][e] *= corr[h];
    }
#pragma unroll
    for (int u = 0; u < kT; ++u) {
#pragma unroll
      for (int h = 0; h < G; ++h) {
        const float w = __shfl_sync(0xffffffffu, pr, u * G + h);
#pragma unroll
        for (int e = 0; e < kPer; ++e) acc[h][e] += w * vf[u][e];
      }
    }
  }

  // Merge the warps: per head, rescale every warp to the common maximum.
  if (lane < G) {
    float mine_m = m[0], mine_l = l[0];
#pragma unroll
    for (int h = 1; h < G; ++h) {
      if (lane == h) {
        mine_m = m[h];
        mine_l = l[h];
      }
    }
    m_w[warp][lane] = mine_m;
    l_w[warp][lane] = mine_l;
  }
#pragma unroll
  for (int h = 0; h < G; ++h) {
#pragma unroll
    for (int e = 0; e < kPer; ++e) o_w[warp][h][lane * kPer + e] = acc[h][e];
  }
  __syncthreads();
  const int64_t head0 = static_cast<int64_t>(row) * p.q_heads + kv * G;
  Partials ws = carve(p.workspace, p.rows, p.q_heads, D, p.num_splits);
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int h = i / D, dim = i % D;
    float mm = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mm = fmaxf(mm, m_w[w][h]);
    float num = 0.0f, den = 0.0f;
    if (mm != -INFINITY) {
#pragma unroll
      for (int w = 0; w < kWarps; ++w) {
        const float f = m_w[w][h] == -INFINITY ? 0.0f : exp2f(m_w[w][h] - mm);
        num += f * o_w[w][h][dim];
        den += f * l_w[w][h];
      }
    }
    if (p.num_splits == 1) {
      static_cast<__nv_bfloat16*>(p.out)[(head0 + h) * D + dim] = __float2bfloat16(den > 0.0f ? num / den : 0.0f);
    } else {
      ws.o[((head0 + h) * p.num_splits + split) * D + dim] = den > 0.0f ? num / den : 0.0f;
      if (dim == 0) ws.lse[(head0 + h) * p.num_splits + split] = den > 0.0f ? mm + log2f(den) : -INFINITY;
    }
  }
}

// One block per (row, head): out = Σ_i 2^(lse_i - M) o_i / Σ_i 2^(lse_i - M); 0 when every split is empty.
template <int D>
__global__ void __launch_bounds__(D) merge_kernel(DsaSparseAttentionParams p) {
  const int64_t head = blockIdx.x;  // row · q_heads + h
  Partials w = carve(p.workspace, p.rows, p.q_heads, D, p.num_splits);
  const float* lse = w.lse + head * p.num_splits;
  float m = -INFINITY;
  for (int i = 0; i < p.num_splits; ++i) m = fmaxf(m, lse[i]);
  float num = 0.0f, den = 0.0f;
  if (m != -INFINITY) {
    for (int i = 0; i < p.num_splits; ++i) {
      const float f = exp2f(lse[i] - m);
      den += f;
      num += f * w.o[(head * p.num_splits + i) * D + threadIdx.x];
    }
  }
  static_cast<__nv_bfloat16*>(p.out)[head * D + threadIdx.x] = __float2bfloat16(den > 0.0f ? num / den : 0.0f);
}

template <int D, int G>
cudaError_t launch_for(const DsaSparseAttentionParams& p, cudaStream_t stream) {
  const dim3 grid(p.num_splits, p.kv_heads, p.rows);
  sparse_kernel<D, G><<<grid, kThreads, 0, stream>>>(p);
  if (p.num_splits > 1) merge_kernel<D><<<static_cast<unsigned>(p.rows) * p.q_heads, D, 0, stream>>>(p);
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_for_dim(const DsaSparseAttentionParams& p, cudaStream_t stream) {
  switch (p.q_heads / p.kv_heads) {  // groups of at most 8 heads
    case 1: return launch_for<D, 1>(p, stream);
    case 2: return launch_for<D, 2>(p, stream);
    case 4: return launch_for<D, 4>(p, stream);
    case 8: return launch_for<D, 8>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

int dsa_sparse_choose_splits(int rows, int kv_heads, int topk, int num_sms) {
  // About four blocks per SM, the kernel's occupancy, rounded down so the grid is one wave (DSA
  // run 8: at B = 8, 8 splits 38.6 µs against 51.3 µs with the earlier eight-per-SM rule's 17; at
  // B = 32, 2 splits 117 µs against 140 µs with 5).
  const int blocks = std::max(1, rows * kv_heads);
  const int want = std::max(1, 4 * num_sms / blocks);
  const int fewest = (topk + kMaxChunk - 1) / kMaxChunk;
  return std::max(fewest, std::max(1, std::min(want, (topk + kMinChunk - 1) / kMinChunk)));
}

size_t dsa_sparse_workspace_bytes(int rows, int q_heads, int head_dim, int num_splits) {
  return static_cast<size_t>(rows) * q_heads * num_splits * (head_dim + 1) * sizeof(float);
}

cudaError_t launch_dsa_sparse_attention(const DsaSparseAttentionParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.rows > 65535 || p.seqs <= 0 || p.kv_heads <= 0 || p.kv_heads > 65535 || p.topk <= 0 ||
      p.q_heads % p.kv_heads != 0 || p.num_splits < 1 || (p.num_splits > 1 && p.workspace == nullptr) ||
      (p.topk + p.num_splits - 1) / p.num_splits > kMaxChunk) {
    return cudaErrorInvalidValue;
  }
  switch (p.head_dim) {
    case 64: return launch_for_dim<64>(p, stream);
    case 128: return launch_for_dim<128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
