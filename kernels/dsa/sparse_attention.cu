// Sparse attention over the selected tokens (contract in kernels/dsa/params.h; reference
// cpu::dsa_sparse_attention).
//
// Block = (split, kv head, row), 128 threads, serving the G <= 8 query heads of the KV head so each
// selected K/V row is read once per group. The block's part of the index list is walked in tiles of
// 64: slots through the block table (−1 stays masked), scores for 64 tokens × G heads (a warp per
// token, lanes over head_dim, 4 tokens in flight), an online-softmax update per head in the log2
// domain, then O += P·V with threads over (dim, token subset). Splits write normalised partials and
// their log2-sum-exp; a second kernel merges them. fp32 throughout; bf16 only in memory.
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
constexpr int kTile = 64;
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

template <int D, int G>
__global__ void __launch_bounds__(kThreads) sparse_kernel(DsaSparseAttentionParams p) {
  constexpr int kPer = D / 32;            // dims per lane in the score phase
  constexpr int kSubsets = kThreads / D;  // token subsets in the P·V phase
  __shared__ float q_s[G][D];
  __shared__ float p_s[G][kTile];
  __shared__ int slot_s[kTile];
  __shared__ float m_s[G], l_s[G], corr_s[G];
  __shared__ float merge_s[kSubsets > 1 ? kSubsets : 1][G][D];

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
  const auto* q = static_cast<const __nv_bfloat16*>(p.q) + (static_cast<int64_t>(row) * p.q_heads + kv * G) * D;
  for (int i = threadIdx.x; i < G * D; i += kThreads) q_s[i / D][i % D] = __bfloat162float(q[i]) * qscale;
  if (threadIdx.x < G) {
    m_s[threadIdx.x] = -INFINITY;
    l_s[threadIdx.x] = 0.0f;
  }
  __syncthreads();
  float qr[G][kPer];
#pragma unroll
  for (int h = 0; h < G; ++h) {
#pragma unroll
    for (int e = 0; e < kPer; ++e) qr[h][e] = q_s[h][lane * kPer + e];
  }

  const auto* k_cache = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_cache = static_cast<const __nv_bfloat16*>(p.v_cache);
  const int64_t row_stride = static_cast<int64_t>(p.kv_heads) * D;  // elements per slot
  const int* indices = p.indices + static_cast<int64_t>(row) * p.topk;
  const int dim = threadIdx.x % D, subset = threadIdx.x / D;
  float acc[G];
#pragma unroll
  for (int h = 0; h < G; ++h) acc[h] = 0.0f;

  for (int t0 = begin; t0 < end; t0 += kTile) {
    if (threadIdx.x < kTile) {
      const int i = t0 + threadIdx.x;
      const int j = i < end ? indices[i] : -1;
      slot_s[threadIdx.x] = j < 0 ? -1 : table[j / kDsaPageSize] * kDsaPageSize + j % kDsaPageSize;
    }
    __syncthreads();
    // Scores: warp w takes tokens w, w + 4, ... four at a time.
    for (int base = warp * 4; base < kTile; base += kWarps * 4) {
      float kv_vals[4][kPer];
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const int slot = slot_s[base + u];
#pragma unroll
        for (int e = 0; e < kPer; ++e) kv_vals[u][e] = 0.0f;
        if (slot >= 0) {
          const __nv_bfloat16* src = k_cache + slot * row_stride + kv * D + lane * kPer;
          if constexpr (kPer == 4) {
            uint2 raw = *reinterpret_cast<const uint2*>(src);
            float2 a = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&raw.x));
            float2 b = __bfloat1622float2(*reinterpret_cast<__nv_bfloat162*>(&raw.y));
            kv_vals[u][0] = a.x; kv_vals[u][1] = a.y; kv_vals[u][2] = b.x; kv_vals[u][3] = b.y;
          } else {
            float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(src));
            kv_vals[u][0] = a.x; kv_vals[u][1] = a.y;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < 4; ++u) {
#pragma unroll
        for (int h = 0; h < G; ++h) {
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < kPer; ++e) dot += qr[h][e] * kv_vals[u][e];
          dot = warp_sum(dot);
          if (lane == 0) p_s[h][base + u] = slot_s[base + u] >= 0 ? dot : -INFINITY;
        }
      }
    }
    __syncthreads();
    // Online softmax: warp w updates heads w, w + 4.
    for (int h = warp; h < G; h += kWarps) {
      const float s0 = p_s[h][lane], s1 = p_s[h][lane + 32];
      const float m_old = m_s[h];
      const float m_new = fmaxf(m_old, warp_max(fmaxf(s0, s1)));
      const float e0 = m_new == -INFINITY ? 0.0f : exp2f(s0 - m_new);
      const float e1 = m_new == -INFINITY ? 0.0f : exp2f(s1 - m_new);
      p_s[h][lane] = e0;
      p_s[h][lane + 32] = e1;
      const float total = warp_sum(e0 + e1);
      if (lane == 0) {
        const float corr = m_old == -INFINITY ? 0.0f : exp2f(m_old - m_new);
        corr_s[h] = corr;
        m_s[h] = m_new;
        l_s[h] = l_s[h] * corr + total;
      }
    }
    __syncthreads();
#pragma unroll
    for (int h = 0; h < G; ++h) acc[h] *= corr_s[h];
    for (int t = subset; t < kTile; t += kSubsets) {
      const int slot = slot_s[t];
      if (slot < 0) continue;
      const float v = __bfloat162float(v_cache[slot * row_stride + kv * D + dim]);
#pragma unroll
      for (int h = 0; h < G; ++h) acc[h] += p_s[h][t] * v;
    }
    __syncthreads();  // slot_s / p_s are rewritten by the next tile
  }

  if constexpr (kSubsets > 1) {
#pragma unroll
    for (int h = 0; h < G; ++h) merge_s[subset][h][dim] = acc[h];
    __syncthreads();
    if (subset != 0) return;
#pragma unroll
    for (int h = 0; h < G; ++h) {
      for (int u = 1; u < kSubsets; ++u) acc[h] += merge_s[u][h][dim];
    }
  }
  const int64_t head0 = static_cast<int64_t>(row) * p.q_heads + kv * G;
  if (p.num_splits == 1) {
    auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
    for (int h = 0; h < G; ++h) {
      const float l = l_s[h];
      out[(head0 + h) * D + dim] = __float2bfloat16(l > 0.0f ? acc[h] / l : 0.0f);
    }
    return;
  }
  Partials w = carve(p.workspace, p.rows, p.q_heads, D, p.num_splits);
#pragma unroll
  for (int h = 0; h < G; ++h) {
    const float l = l_s[h];
    w.o[((head0 + h) * p.num_splits + split) * D + dim] = l > 0.0f ? acc[h] / l : 0.0f;
    if (dim == 0) w.lse[(head0 + h) * p.num_splits + split] = l > 0.0f ? m_s[h] + log2f(l) : -INFINITY;
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
  const int blocks = std::max(1, rows * kv_heads);
  const int want = (2 * num_sms + blocks - 1) / blocks;
  return std::max(1, std::min(want, (topk + kTile - 1) / kTile));
}

size_t dsa_sparse_workspace_bytes(int rows, int q_heads, int head_dim, int num_splits) {
  return static_cast<size_t>(rows) * q_heads * num_splits * (head_dim + 1) * sizeof(float);
}

cudaError_t launch_dsa_sparse_attention(const DsaSparseAttentionParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.rows > 65535 || p.seqs <= 0 || p.kv_heads <= 0 || p.kv_heads > 65535 || p.topk <= 0 ||
      p.q_heads % p.kv_heads != 0 || p.num_splits < 1 || (p.num_splits > 1 && p.workspace == nullptr)) {
    return cudaErrorInvalidValue;
  }
  switch (p.head_dim) {
    case 64: return launch_for_dim<64>(p, stream);
    case 128: return launch_for_dim<128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
