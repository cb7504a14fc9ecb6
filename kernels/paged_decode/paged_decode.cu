// Paged flash-decoding for one query token per sequence.
//
// Block = (split, kv head, sequence), 128 threads, serving all G = Hq / Hkv query heads of the KV head
// so each K/V page is read once per group. Pages stream through shared memory (cp.async, two
// stages). Per page: scores for 64 tokens × G heads (thread = token × head parity), an online-softmax
// update per head (one warp per head), then O += P·V (thread = output dim × token subset). Splits
// write normalised partial outputs and their log2-sum-exp to the workspace; a second kernel merges
// them. Everything accumulates in fp32; K/V rows past the context are zero-filled, not trusted.
#include <cuda_bf16.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/paged_decode/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;
constexpr int kPage = kKvPageSize;
constexpr int kMaxGroup = 16;
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
struct DecodeSmem {
  static constexpr int kTileBytes = kPage * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kStages = 2;
  static constexpr int kKvBytes = kStages * kStageBytes;
  // + q [G][D] fp32, scores [G][kPage] fp32, max/sum/correction [3][G] fp32, combine [D] fp32
  static int total_bytes(int group) {
    return kKvBytes + group * D * 4 + group * kPage * 4 + 3 * kMaxGroup * 4 +
           (kThreads / D > 1 ? kThreads * kMaxGroup * 4 : 0);
  }
};

struct Workspace {
  float* o;    // [num_seqs, num_q_heads, num_splits, D]
  float* lse;  // [num_seqs, num_q_heads, num_splits], log2 domain
};

__host__ __device__ inline Workspace carve_workspace(void* base, int num_seqs, int num_q_heads, int head_dim,
                                                     int num_splits) {
  Workspace ws;
  ws.o = static_cast<float*>(base);
  ws.lse = ws.o + static_cast<int64_t>(num_seqs) * num_q_heads * num_splits * head_dim;
  return ws;
}

template <int D>
__device__ __forceinline__ void load_page(const PagedAttentionParams& p, char* stage, int page, int token0,
                                          int valid_begin, int valid_end, int kv_head) {
  constexpr int kChunks = D / 8;
  const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
  char* k_smem = stage;
  char* v_smem = stage + DecodeSmem<D>::kTileBytes;
  for (int idx = threadIdx.x; idx < kPage * kChunks; idx += kThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int token = token0 + row;
    const bool valid = token >= valid_begin && token < valid_end;
    const int64_t offset = ((static_cast<int64_t>(page) * kPage + row) * p.num_kv_heads + kv_head) * D + chunk * 8;
    // K rows are swizzled (chunk ^ row % 8): score threads read whole rows, one row per lane.
    cp_async_16_zfill(k_smem + row * D * 2 + ((chunk ^ (row & 7)) << 4), valid ? k_base + offset : k_base, valid);
    // V rows stay plain: P·V threads read one dim across rows.
    cp_async_16_zfill(v_smem + row * D * 2 + (chunk << 4), valid ? v_base + offset : v_base, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedDecodeParams params) {
  const PagedAttentionParams& p = params.attn;
  extern __shared__ __align__(128) char smem[];
  const int split = blockIdx.x;
  const int kv_head = blockIdx.y;
  const int seq = blockIdx.z;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int head0 = kv_head * group;
  const int q_row = p.query_start[seq];
  const int ctx = p.context_lens[seq];
  const int pos = ctx - 1;
  const int kv_begin = p.sliding_window > 0 ? max(0, pos - p.sliding_window + 1) : 0;
  const int page_begin = kv_begin / kPage;
  const int page_end = (ctx + kPage - 1) / kPage;
  const int pages_per_split = (page_end - page_begin + params.num_splits - 1) / params.num_splits;
  const int my_begin = page_begin + split * pages_per_split;
  const int my_end = min(page_end, my_begin + pages_per_split);
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages_per_seq;

  float* q_smem = reinterpret_cast<float*>(smem + DecodeSmem<D>::kKvBytes);  // [G][D], pre-scaled
  float* s_smem = q_smem + group * D;                                        // [G][kPage]
  float* m_smem = s_smem + group * kPage;                                    // [kMaxGroup]
  float* l_smem = m_smem + kMaxGroup;
  float* c_smem = l_smem + kMaxGroup;
  float* combine_smem = c_smem + kMaxGroup;  // [kThreads][kMaxGroup]

  if (my_begin < my_end) {
    load_page<D>(p, smem, block_table[my_begin], my_begin * kPage, kv_begin, ctx, kv_head);
  }
  cp_async_commit();

  const float scale_log2 = p.scale * kLog2e;
  const auto* q = static_cast<const __nv_bfloat16*>(p.q) + (static_cast<int64_t>(q_row) * p.num_q_heads + head0) * D;
  for (int i = threadIdx.x; i < group * D; i += kThreads) q_smem[i] = __bfloat162float(q[i]) * scale_log2;
  if (threadIdx.x < kMaxGroup) {
    m_smem[threadIdx.x] = -FLT_MAX;  // finite sentinel, as in flash prefill
    l_smem[threadIdx.x] = 0.0f;
  }

  constexpr int kSubsets = kThreads / D;  // token subsets in P·V (1 for D = 128, 2 for D = 64)
  const int dim = threadIdx.x % D;
  const int subset = threadIdx.x / D;
  float acc[kMaxGroup];
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) acc[g] = 0.0f;

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  for (int page_idx = my_begin; page_idx < my_end; ++page_idx) {
    const int stage = (page_idx - my_begin) & 1;
    if (page_idx + 1 < my_end) {
      load_page<D>(p, smem + (stage ^ 1) * DecodeSmem<D>::kStageBytes, block_table[page_idx + 1],
                   (page_idx + 1) * kPage, kv_begin, ctx, kv_head);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const char* k_smem = smem + stage * DecodeSmem<D>::kStageBytes;
    const auto* v_smem = reinterpret_cast<const __nv_bfloat16*>(k_smem + DecodeSmem<D>::kTileBytes);
    const int token0 = page_idx * kPage;

    // Scores: thread = (token, head parity).
    {
      const int row = threadIdx.x % kPage;
      const int parity = threadIdx.x / kPage;
      const int token = token0 + row;
      const bool visible = token >= kv_begin && token < ctx;
      float dot[kMaxGroup / 2];
#pragma unroll
      for (int i = 0; i < kMaxGroup / 2; ++i) dot[i] = 0.0f;
#pragma unroll 4
      for (int c = 0; c < D / 8; ++c) {
        float k[8];
        bf16x8_to_float(*reinterpret_cast<const Bf16x8*>(k_smem + row * D * 2 + ((c ^ (row & 7)) << 4)), k);
#pragma unroll
        for (int i = 0; i < kMaxGroup / 2; ++i) {
          const int g = parity + 2 * i;
          if (g < group) {
            const float4 qa = *reinterpret_cast<const float4*>(q_smem + g * D + c * 8);
            const float4 qb = *reinterpret_cast<const float4*>(q_smem + g * D + c * 8 + 4);
            dot[i] += k[0] * qa.x + k[1] * qa.y + k[2] * qa.z + k[3] * qa.w + k[4] * qb.x + k[5] * qb.y +
                      k[6] * qb.z + k[7] * qb.w;
          }
        }
      }
#pragma unroll
      for (int i = 0; i < kMaxGroup / 2; ++i) {
        const int g = parity + 2 * i;
        if (g < group) s_smem[g * kPage + row] = visible ? dot[i] : -INFINITY;
      }
    }
    __syncthreads();

    // Softmax update: one warp per head.
    for (int g = warp; g < group; g += kThreads / 32) {
      const float s0 = s_smem[g * kPage + lane];
      const float s1 = s_smem[g * kPage + lane + 32];
      const float tile_max = warp_max(fmaxf(s0, s1));
      const float old_max = m_smem[g];
      const float new_max = fmaxf(old_max, tile_max);
      const float p0 = fast_exp2(s0 - new_max);
      const float p1 = fast_exp2(s1 - new_max);
      s_smem[g * kPage + lane] = p0;
      s_smem[g * kPage + lane + 32] = p1;
      const float sum = warp_sum(p0 + p1);
      if (lane == 0) {
        const float correction = fast_exp2(old_max - new_max);
        c_smem[g] = correction;
        l_smem[g] = l_smem[g] * correction + sum;
        m_smem[g] = new_max;
      }
    }
    __syncthreads();

    // O += P·V: thread = (dim, token subset).
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) acc[g] *= c_smem[g];
    }
    for (int row = subset; row < kPage; row += kSubsets) {
      const float v = __bfloat162float(v_smem[row * D + dim]);
#pragma unroll
      for (int g = 0; g < kMaxGroup; ++g) {
        if (g < group) acc[g] += s_smem[g * kPage + row] * v;
      }
    }
    __syncthreads();  // the next prefetch overwrites this stage; the next scores overwrite s_smem
  }

  __syncthreads();  // statistics written by lane 0s (or only initialised, for an empty split)

  // Merge token subsets (D = 64), then finish.
  if constexpr (kSubsets > 1) {
#pragma unroll
    for (int g = 0; g < kMaxGroup; ++g) {
      if (g < group) combine_smem[threadIdx.x * kMaxGroup + g] = acc[g];
    }
    __syncthreads();
    if (subset == 0) {
      for (int other = 1; other < kSubsets; ++other) {
#pragma unroll
        for (int g = 0; g < kMaxGroup; ++g) {
          if (g < group) acc[g] += combine_smem[(threadIdx.x + other * D) * kMaxGroup + g];
        }
      }
    }
  }
  if (subset != 0) return;
  const Workspace ws = carve_workspace(params.workspace, p.num_seqs, p.num_q_heads, D, params.num_splits);
#pragma unroll
  for (int g = 0; g < kMaxGroup; ++g) {
    if (g >= group) break;
    const float sum = l_smem[g];
    const float o = sum > 0.0f ? acc[g] / sum : 0.0f;
    const int head = head0 + g;
    if (params.num_splits == 1) {
      static_cast<__nv_bfloat16*>(p.out)[(static_cast<int64_t>(q_row) * p.num_q_heads + head) * D + dim] =
          __float2bfloat16(o);
    } else {
      const int64_t slot = (static_cast<int64_t>(seq) * p.num_q_heads + head) * params.num_splits + split;
      ws.o[slot * D + dim] = o;
      if (dim == 0) ws.lse[slot] = sum > 0.0f ? m_smem[g] + __log2f(sum) : -INFINITY;
    }
  }
}

// Merges the splits of one (sequence, query head): out = Σ w_i o_i / Σ w_i, w_i = 2^(lse_i − max lse).
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(PagedDecodeParams params) {
  const PagedAttentionParams& p = params.attn;
  const int head = blockIdx.x;
  const int seq = blockIdx.y;
  const int dim = threadIdx.x;
  const Workspace ws = carve_workspace(params.workspace, p.num_seqs, p.num_q_heads, D, params.num_splits);
  const int64_t base = (static_cast<int64_t>(seq) * p.num_q_heads + head) * params.num_splits;
  float max_lse = -INFINITY;
  for (int i = 0; i < params.num_splits; ++i) max_lse = fmaxf(max_lse, ws.lse[base + i]);
  float num = 0.0f;
  float den = 0.0f;
  for (int i = 0; i < params.num_splits; ++i) {
    const float lse = ws.lse[base + i];
    if (lse == -INFINITY) continue;  // empty split: its o was never written
    const float w = exp2f(lse - max_lse);
    num += w * ws.o[(base + i) * D + dim];
    den += w;
  }
  const int q_row = p.query_start[seq];
  static_cast<__nv_bfloat16*>(p.out)[(static_cast<int64_t>(q_row) * p.num_q_heads + head) * D + dim] =
      __float2bfloat16(den > 0.0f ? num / den : 0.0f);
}

template <int D>
cudaError_t launch_for_dim(const PagedDecodeParams& params, cudaStream_t stream) {
  const PagedAttentionParams& p = params.attn;
  const int group = p.num_q_heads / p.num_kv_heads;
  const int smem_bytes = DecodeSmem<D>::total_bytes(group);
  static const cudaError_t attribute_status = cudaFuncSetAttribute(
      paged_decode_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, DecodeSmem<D>::total_bytes(kMaxGroup));
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid(params.num_splits, p.num_kv_heads, p.num_seqs);
  paged_decode_kernel<D><<<grid, kThreads, smem_bytes, stream>>>(params);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || params.num_splits == 1) return err;
  decode_combine_kernel<D><<<dim3(p.num_q_heads, p.num_seqs), D, 0, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace

int choose_decode_splits(int num_seqs, int num_kv_heads, int max_context_len, int num_sms) {
  constexpr int kResidentBlocksPerSm = 3;  // what the shared-memory footprint allows at head_dim 128
  constexpr int kMinPagesPerSplit = 8;
  constexpr int kMaxSplits = 128;
  const int64_t base_blocks = static_cast<int64_t>(num_seqs) * num_kv_heads;
  if (base_blocks <= 0) return 1;
  const int64_t target = static_cast<int64_t>(num_sms) * kResidentBlocksPerSm;
  int64_t splits = (target + base_blocks - 1) / base_blocks;
  const int64_t pages = (static_cast<int64_t>(max_context_len) + kPage - 1) / kPage;
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, pages / kMinPagesPerSplit));
  splits = std::min<int64_t>(splits, kMaxSplits);
  return static_cast<int>(std::max<int64_t>(1, splits));
}

size_t decode_workspace_bytes(int num_seqs, int num_q_heads, int head_dim, int num_splits) {
  if (num_splits <= 1) return 0;
  const size_t slots = static_cast<size_t>(num_seqs) * num_q_heads * num_splits;
  return slots * static_cast<size_t>(head_dim) * sizeof(float) + slots * sizeof(float);
}

cudaError_t launch_paged_decode(const PagedDecodeParams& params, cudaStream_t stream) {
  const PagedAttentionParams& p = params.attn;
  if (p.num_seqs == 0) return cudaSuccess;
  if (p.num_seqs < 0 || p.num_seqs > 65535 || p.num_q_heads <= 0 || p.num_kv_heads <= 0 ||
      p.num_kv_heads > 65535 || p.num_q_heads % p.num_kv_heads != 0 || p.num_q_heads / p.num_kv_heads > kMaxGroup ||
      params.num_splits < 1 || (params.num_splits > 1 && params.workspace == nullptr)) {
    return cudaErrorInvalidValue;
  }
  switch (p.head_dim) {
    case 64: return launch_for_dim<64>(params, stream);
    case 128: return launch_for_dim<128>(params, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
