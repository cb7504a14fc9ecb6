// Lightning attention (params.h): a decode kernel for one-token rows and a blockwise prefill kernel
// for multi-token rows, both in fp32 on CUDA cores with the state kept in fp32 throughout.
//
// Decode (grid seqs × heads × ⌈D/32⌉, 128 threads): each block owns 32 state columns of one head,
// reads them once, writes λ·S + kᵀv back and reduces q·S over its four warps. Bound by the state's
// HBM traffic (D·D·4 bytes read and written per head and step).
//
// Prefill (grid seqs × heads × ⌈D/32⌉, 128 threads, ~111 KB shared memory at D = 128: two blocks per
// SM): each block walks its sequence in 64-token blocks, keeping its 32-column slice of the state in
// shared memory. Per block of m tokens:
//   A  = (Q Kᵀ) ⊙ [λ^{p−j}]_{j≤p}                       (64×64, recomputed by each column slice)
//   O  = A V + diag(λ^{p+1}) · (Q S)                     (64×32, the slice's output columns)
//   S ← λ^m S + Σ_j λ^{m−1−j} k_jᵀ v_j                    (D×32)
// The block size is this kernel's own (any block size gives the recurrence up to rounding). What
// bounds it: FP32 FMA throughput with shared-memory operands (register tiles of 32 outputs per thread
// keep the loads under the FMA rate), four block-wide barriers per 64 tokens, and at D = 128 the 4×
// recomputation of QKᵀ across column slices (about 45% of the FLOPs). Tensor cores for QKᵀ, AV and
// QS (bf16 operands, fp32 accumulators) are the next step; the state update should stay fp32.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/linear_attention/params.h"

namespace longbow::kernels {
namespace {

constexpr int kCols = 32;      // state / output columns per block (a column slice)
constexpr int kThreads = 128;  // both kernels
constexpr int kBlock = 64;     // prefill tokens per block

__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }

struct SeqRows {
  int row0 = 0, q_len = 0, slot = -1;
  bool fresh = false;
};

__device__ __forceinline__ SeqRows seq_rows(const LightningParams& p, int s) {
  SeqRows r;
  r.row0 = p.query_start[s];
  r.q_len = p.query_start[s + 1] - r.row0;
  const int slot = p.slots[s];
  r.slot = slot >= 0 && slot < p.num_slots ? slot : -1;
  r.fresh = p.context_lens[s] == r.q_len;
  return r;
}

__device__ __forceinline__ float load_bf16(const __nv_bfloat16* ptr) { return __bfloat162float(*ptr); }

// ---- decode: one token per sequence ----

__global__ void __launch_bounds__(kThreads) lightning_decode_kernel(LightningParams p) {
  const int s = blockIdx.x, h = blockIdx.y, c0 = blockIdx.z * kCols;
  const SeqRows seq = seq_rows(p, s);
  if (seq.q_len != 1) return;  // multi-token rows belong to the prefill kernel
  const int d = p.head_dim, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int col = c0 + lane;
  auto* out = static_cast<__nv_bfloat16*>(p.out) + static_cast<int64_t>(seq.row0) * p.heads * d +
              static_cast<int64_t>(h) * d;
  if (seq.slot < 0) {  // padding row: zeros, no state
    if (warp == 0 && col < d) out[col] = __float2bfloat16(0.0f);
    return;
  }
  __shared__ float q[kLightningMaxHeadDim], k[kLightningMaxHeadDim], v[kCols];
  __shared__ float partial[kThreads / 32][kCols];
  const auto* row = static_cast<const __nv_bfloat16*>(p.qkv) + static_cast<int64_t>(seq.row0) * p.heads * 3 * d +
                    static_cast<int64_t>(h) * 3 * d;
  for (int i = static_cast<int>(threadIdx.x); i < d; i += kThreads) {
    q[i] = silu(load_bf16(row + i));
    k[i] = silu(load_bf16(row + d + i));
  }
  if (threadIdx.x < kCols) {
    const int c = c0 + static_cast<int>(threadIdx.x);
    v[threadIdx.x] = c < d ? silu(load_bf16(row + 2 * d + c)) : 0.0f;
  }
  __syncthreads();

  const float decay = expf(-p.slopes[h]);
  float* state = p.state + (static_cast<int64_t>(seq.slot) * p.heads + h) * d * d;
  float acc = 0.0f;
  if (col < d) {
    const float vc = v[lane];
    // Rows warp, warp + 4, ...: eight loads in flight per thread before any store.
    constexpr int kUnroll = 8, kStride = kThreads / 32;
    for (int i0 = warp; i0 < d; i0 += kUnroll * kStride) {
      float old[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = i0 + u * kStride;
        old[u] = i < d && !seq.fresh ? state[static_cast<int64_t>(i) * d + col] : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int i = i0 + u * kStride;
        if (i < d) {
          const float updated = decay * old[u] + k[i] * vc;
          state[static_cast<int64_t>(i) * d + col] = updated;
          acc += q[i] * updated;
        }
      }
    }
  }
  partial[warp][lane] = acc;
  __syncthreads();
  if (warp == 0 && col < d) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) sum += partial[w][lane];
    out[col] = __float2bfloat16(sum);
  }
}

// ---- prefill: multi-token rows, blockwise ----

// Shared-memory layout of the prefill kernel for padded head size kD (floats). Row strides padded by
// 4 keep float4 alignment and spread the transposed writes over banks.
template <int kD>
struct PrefillSmem {
  static constexpr int kQtStride = kBlock + 4;  // qt[d][p]: Q transposed
  static constexpr int kKStride = kD + 4;       // k[j][d]
  static constexpr int kAtStride = kBlock + 4;  // at[j][p]: the decayed, masked scores transposed
  static constexpr int kQt = 0;
  static constexpr int kK = kQt + kD * kQtStride;
  static constexpr int kV = kK + kBlock * kKStride;  // v[j][c], kCols wide
  static constexpr int kAt = kV + kBlock * kCols;
  static constexpr int kS = kAt + kBlock * kAtStride;  // s[d][c]
  static constexpr int kDecay = kS + kD * kCols;       // decay[n] = λ^n, n = 0..kBlock
  static constexpr int kFloats = kDecay + kBlock + 4;
  static constexpr int kBytes = kFloats * 4;
};

template <int N>
__device__ __forceinline__ void load_row(const float* src, float (&dst)[N]) {
  static_assert(N % 2 == 0, "pairs at least");
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      const float4 x = *reinterpret_cast<const float4*>(src + i);
      dst[i] = x.x, dst[i + 1] = x.y, dst[i + 2] = x.z, dst[i + 3] = x.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      const float2 x = *reinterpret_cast<const float2*>(src + i);
      dst[i] = x.x, dst[i + 1] = x.y;
    }
  }
}

template <int kD>
__global__ void __launch_bounds__(kThreads) lightning_prefill_kernel(LightningParams p) {
  using L = PrefillSmem<kD>;
  extern __shared__ __align__(16) float smem[];
  float* qt = smem + L::kQt;
  float* ks = smem + L::kK;
  float* vs = smem + L::kV;
  float* at = smem + L::kAt;
  float* ss = smem + L::kS;
  float* decay = smem + L::kDecay;

  const int s = blockIdx.x, h = blockIdx.y, c0 = blockIdx.z * kCols;
  const SeqRows seq = seq_rows(p, s);
  if (seq.q_len < 2) return;  // one-token rows belong to the decode kernel
  const int d = p.head_dim, tid = threadIdx.x;
  const int64_t out_stride = static_cast<int64_t>(p.heads) * d;
  auto* out = static_cast<__nv_bfloat16*>(p.out) + static_cast<int64_t>(seq.row0) * out_stride +
              static_cast<int64_t>(h) * d + c0;
  if (seq.slot < 0) {  // not a valid request (padding rows have one query); zeros, no state
    for (int i = tid; i < seq.q_len * kCols; i += kThreads) {
      if (c0 + i % kCols < d) out[static_cast<int64_t>(i / kCols) * out_stride + i % kCols] = __float2bfloat16(0.0f);
    }
    return;
  }
  const float slope = p.slopes[h];
  for (int n = tid; n <= kBlock; n += kThreads) decay[n] = expf(-slope * static_cast<float>(n));
  float* state = p.state + (static_cast<int64_t>(seq.slot) * p.heads + h) * d * d;
  for (int i = tid; i < kD * kCols; i += kThreads) {
    const int r = i / kCols, c = i % kCols;
    ss[i] = !seq.fresh && r < d && c0 + c < d ? state[static_cast<int64_t>(r) * d + c0 + c] : 0.0f;
  }

  const auto* qkv = static_cast<const __nv_bfloat16*>(p.qkv) + static_cast<int64_t>(seq.row0) * p.heads * 3 * d +
                    static_cast<int64_t>(h) * 3 * d;
  const int64_t qkv_stride = static_cast<int64_t>(p.heads) * 3 * d;

  // Thread tiles. Scores: 4 rows p × 8 keys j. Output: 4 rows p × 4 columns. State: kD/16 rows × 4 columns.
  const int a_p0 = (tid % 16) * 4, a_j0 = (tid / 16) * 8;
  const int o_c0 = (tid % 8) * 4, o_p0 = (tid / 8) * 4;
  constexpr int kStateRows = kD / 16;
  const int s_c0 = (tid % 8) * 4, s_d0 = (tid / 8) * kStateRows;

  for (int b0 = 0; b0 < seq.q_len; b0 += kBlock) {
    const int m = min(kBlock, seq.q_len - b0);
    // 1. This block's q, k (all kD dims) and v (the slice's columns), SiLU applied, zero past m and d.
    for (int i = tid; i < kBlock * kD; i += kThreads) {
      const int r = i / kD, c = i % kD;
      float qv = 0.0f, kv = 0.0f;
      if (r < m && c < d) {
        const __nv_bfloat16* row = qkv + (b0 + r) * qkv_stride;
        qv = silu(load_bf16(row + c));
        kv = silu(load_bf16(row + d + c));
      }
      qt[c * L::kQtStride + r] = qv;
      ks[r * L::kKStride + c] = kv;
    }
    for (int i = tid; i < kBlock * kCols; i += kThreads) {
      const int r = i / kCols, c = i % kCols;
      vs[i] = r < m && c0 + c < d ? silu(load_bf16(qkv + (b0 + r) * qkv_stride + 2 * d + c0 + c)) : 0.0f;
    }
    __syncthreads();

    // 2. at[j][p] = λ^{p−j} q_p·k_j for j <= p, else 0.
    {
      float acc[4][8] = {};
      if (a_j0 <= a_p0 + 3) {  // a tile wholly above the diagonal stays zero
        for (int c = 0; c < kD; c += 4) {
          float qa[4][4];
#pragma unroll
          for (int u = 0; u < 4; ++u) load_row(qt + (c + u) * L::kQtStride + a_p0, qa[u]);
#pragma unroll
          for (int j = 0; j < 8; ++j) {
            float kb[4];
            load_row(ks + (a_j0 + j) * L::kKStride + c, kb);
#pragma unroll
            for (int u = 0; u < 4; ++u) {
#pragma unroll
              for (int r = 0; r < 4; ++r) acc[r][j] = fmaf(qa[u][r], kb[u], acc[r][j]);
            }
          }
        }
      }
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        float w[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) {
          const int pr = a_p0 + r, jj = a_j0 + j;
          w[r] = jj <= pr ? acc[r][j] * decay[pr - jj] : 0.0f;
        }
        *reinterpret_cast<float4*>(at + (a_j0 + j) * L::kAtStride + a_p0) = make_float4(w[0], w[1], w[2], w[3]);
      }
    }
    __syncthreads();

    // 3. o = A·V + λ^{p+1} q_p·S for the slice's columns, rounded once to bf16.
    {
      float intra[4][4] = {}, inter[4][4] = {};
      const int j_end = min(m, o_p0 + 4);
      for (int j = 0; j < j_end; ++j) {
        float a[4], v[4];
        load_row(at + j * L::kAtStride + o_p0, a);
        load_row(vs + j * kCols + o_c0, v);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
#pragma unroll
          for (int c = 0; c < 4; ++c) intra[r][c] = fmaf(a[r], v[c], intra[r][c]);
        }
      }
      for (int c = 0; c < kD; ++c) {
        float q[4], sv[4];
        load_row(qt + c * L::kQtStride + o_p0, q);
        load_row(ss + c * kCols + o_c0, sv);
#pragma unroll
        for (int r = 0; r < 4; ++r) {
#pragma unroll
          for (int cc = 0; cc < 4; ++cc) inter[r][cc] = fmaf(q[r], sv[cc], inter[r][cc]);
        }
      }
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int pr = o_p0 + r;
        if (pr >= m) continue;
        const float q_decay = decay[pr + 1];
        __nv_bfloat16* dst = out + static_cast<int64_t>(b0 + pr) * out_stride + o_c0;
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          if (c0 + o_c0 + c < d) dst[c] = __float2bfloat16(fmaf(q_decay, inter[r][c], intra[r][c]));
        }
      }
    }
    __syncthreads();

    // 4. S ← λ^m S + Σ_j λ^{m−1−j} k_jᵀ v_j on this thread's kStateRows × 4 entries.
    {
      float acc[kStateRows][4];
      const float block_decay = decay[m];
#pragma unroll
      for (int r = 0; r < kStateRows; ++r) {
        float sv[4];
        load_row(ss + (s_d0 + r) * kCols + s_c0, sv);
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = block_decay * sv[c];
      }
      for (int j = 0; j < m; ++j) {
        float kr[kStateRows], v[4];
        load_row(ks + j * L::kKStride + s_d0, kr);
        load_row(vs + j * kCols + s_c0, v);
        const float w = decay[m - 1 - j];
#pragma unroll
        for (int c = 0; c < 4; ++c) v[c] *= w;
#pragma unroll
        for (int r = 0; r < kStateRows; ++r) {
#pragma unroll
          for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(kr[r], v[c], acc[r][c]);
        }
      }
#pragma unroll
      for (int r = 0; r < kStateRows; ++r) {
        *reinterpret_cast<float4*>(ss + (s_d0 + r) * kCols + s_c0) = make_float4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
      }
    }
    __syncthreads();
  }

  for (int i = tid; i < kD * kCols; i += kThreads) {
    const int r = i / kCols, c = i % kCols;
    if (r < d && c0 + c < d) state[static_cast<int64_t>(r) * d + c0 + c] = ss[i];
  }
}

template <int kD>
cudaError_t launch_prefill(const LightningParams& p, dim3 grid, cudaStream_t stream) {
  constexpr int kSmem = PrefillSmem<kD>::kBytes;
  static const cudaError_t attribute =
      cudaFuncSetAttribute(lightning_prefill_kernel<kD>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute != cudaSuccess) return attribute;
  lightning_prefill_kernel<kD><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_lightning_attention(const LightningParams& p, cudaStream_t stream) {
  if (p.seqs < 0 || p.heads <= 0 || p.head_dim <= 0 || p.head_dim > kLightningMaxHeadDim || p.heads > 65535 ||
      p.max_query_len < 0) {
    return cudaErrorInvalidValue;
  }
  if (p.seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(p.seqs), static_cast<unsigned>(p.heads),
                  static_cast<unsigned>((p.head_dim + kCols - 1) / kCols));
  lightning_decode_kernel<<<grid, kThreads, 0, stream>>>(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || p.max_query_len == 1) return err;
  if (p.head_dim <= 32) return launch_prefill<32>(p, grid, stream);
  if (p.head_dim <= 64) return launch_prefill<64>(p, grid, stream);
  return launch_prefill<128>(p, grid, stream);
}

}  // namespace longbow::kernels
