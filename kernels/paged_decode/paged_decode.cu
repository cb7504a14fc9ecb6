// Paged flash-decoding for one query token per sequence.
//
// Block = (split, kv head, sequence), 128 threads, serving all G = Hq / Hkv query heads of the KV head
// so each K/V page is read once per group. Tiles of a page (64 tokens; 32 at head size 256) stream
// through shared memory (cp.async, two stages). Per tile: scores for its tokens × G heads (thread =
// token × head parity), an online-softmax update per head (one warp per head), then O += P·V
// (thread = output dim × token subset). Splits
// write normalised partial outputs and their log2-sum-exp to the workspace; a second kernel merges
// them. Everything accumulates in fp32; K/V rows past the context are zero-filled, not trusted.
//
// D is the padded head size (64, 128 or 256; kernels/common/paged_kv.h): a smaller head_dim loads
// zeros into the dims past it (q and K/V alike) and stores only its own. Windows: only pages holding
// a key at or after the first visible one are looked up in the block table. Soft-cap
// (params.softcap > 0): each score x = q·k · scale becomes cap · tanh(x / cap).
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
constexpr int kMaxGroup = 16;  // largest query group the launcher accepts
constexpr float kLog2e = 1.4426950408889634f;

// Keys per pipeline tile: a whole page up to 128 dims; half a page at 256, so that the two stages
// take 64 KB as at 128 and three blocks still fit on an SM (a whole-page ring of 128 KB leaves one
// block of four warps per SM, too few loads in flight to reach the memory bandwidth).
template <int D>
constexpr int decode_tile_keys() {
  return D <= 128 ? kPage : kPage / 2;
}

// Shared memory: two stages of (K tile, V tile), q [kG][D] fp32, probabilities [kG][kTile] fp32 and
// running max / sum / correction [3][kG] fp32. After the tile loop the stages hold the P·V subset
// merge [kThreads][2·kG] fp32 instead.
template <int D, int kG>
struct DecodeSmem {
  static constexpr int kTile = decode_tile_keys<D>();
  static constexpr int kTileBytes = kTile * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kKvBytes = 2 * kStageBytes;
  static constexpr int kTotalBytes = kKvBytes + kG * D * 4 + kG * kTile * 4 + 3 * kG * 4;
  static_assert(kThreads * 2 * kG * 4 <= kKvBytes, "the merge area must fit in the KV stages");
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

// Loads the kTile keys from token0 on (they lie in one page; `page` is its physical id) into a stage.
template <int D, int kTile>
__device__ __forceinline__ void load_tile(const PagedAttentionParams& p, char* stage, int page, int token0,
                                          int valid_begin, int valid_end, int kv_head) {
  constexpr int kChunks = D / 8;
  const int hd = p.head_dim;
  const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
  char* k_smem = stage;
  char* v_smem = stage + kTile * D * 2;
  const int page_row0 = token0 % kPage;
  for (int idx = threadIdx.x; idx < kTile * kChunks; idx += kThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int token = token0 + row;
    const bool valid = token >= valid_begin && token < valid_end && chunk * 8 < hd;
    const int64_t offset =
        ((static_cast<int64_t>(page) * kPage + page_row0 + row) * p.num_kv_heads + kv_head) * hd + chunk * 8;
    // K rows are swizzled (chunk ^ row % 8): score threads read whole rows, one row per lane.
    cp_async_16_zfill(k_smem + row * D * 2 + ((chunk ^ (row & 7)) << 4), valid ? k_base + offset : k_base, valid);
    // V rows stay plain: P·V threads read a pair of dims across rows.
    cp_async_16_zfill(v_smem + row * D * 2 + (chunk << 4), valid ? v_base + offset : v_base, valid);
  }
}

// kG: the query-group size rounded up to a power of two. Heads past the real group read zero q
// rows and are never stored, so no per-head guards sit in the inner loops.
template <int D, int kG>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(PagedDecodeParams params) {
  using Layout = DecodeSmem<D, kG>;
  constexpr int kTile = Layout::kTile;
  constexpr int kTilesPerPage = kPage / kTile;
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
  // This sequence's own split count (the grid's num_splits is only an upper bound), so that a
  // launch sized for a larger context bound (a CUDA graph) partitions exactly like an eager launch.
  const int seq_splits = decode_splits_for_pages(page_end - page_begin, params.num_splits);
  if (split >= seq_splits) return;  // beyond this sequence's splits: the combine reads only the first seq_splits
  const int pages_per_split = (page_end - page_begin + seq_splits - 1) / seq_splits;
  const int my_begin = page_begin + split * pages_per_split;
  const int my_end = min(page_end, my_begin + pages_per_split);
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages_per_seq;

  float* q_smem = reinterpret_cast<float*>(smem + Layout::kKvBytes);  // [kG][D], pre-scaled
  float* s_smem = q_smem + kG * D;                                    // [kG][kTile]
  float* m_smem = s_smem + kG * kTile;                                // [kG]
  float* l_smem = m_smem + kG;
  float* c_smem = l_smem + kG;
  float* merge_smem = reinterpret_cast<float*>(smem);  // [kThreads][2 kG], after the tile loop

  // This split's tiles; the pages are looked up per tile, and only pages from page_begin on, which
  // hold a visible key, ever are.
  const int tile_begin = my_begin * kTilesPerPage;
  const int tile_end = my_end * kTilesPerPage;
  if (tile_begin < tile_end) {
    load_tile<D, kTile>(p, smem, block_table[my_begin], tile_begin * kTile, kv_begin, ctx, kv_head);
  }
  cp_async_commit();

  const float scale_log2 = p.scale * kLog2e;
  // Soft-cap on the log2-scaled scores d = x · log2(e): d -> cap · log2(e) · tanh(d / (cap · log2(e))).
  const bool capped = p.softcap > 0.0f;
  const float cap_log2 = capped ? p.softcap * kLog2e : 0.0f;
  const float inv_cap_log2 = capped ? 1.0f / cap_log2 : 0.0f;
  const int hd = p.head_dim;
  const auto* q = static_cast<const __nv_bfloat16*>(p.q) + (static_cast<int64_t>(q_row) * p.num_q_heads + head0) * hd;
  for (int i = threadIdx.x; i < kG * D; i += kThreads) {
    const int g = i / D, dim = i % D;
    q_smem[i] = g < group && dim < hd ? __bfloat162float(q[g * hd + dim]) * scale_log2 : 0.0f;
  }
  if (threadIdx.x < kG) {
    m_smem[threadIdx.x] = -FLT_MAX;  // finite sentinel, as in flash prefill
    l_smem[threadIdx.x] = 0.0f;
  }

  // Score threads: token row = tid % kTile, head parity = tid / kTile (heads parity, parity +
  // kParities, ...); with fewer heads than parities the surplus parities idle.
  constexpr int kParities = kThreads / kTile;
  constexpr int kScoreHeads = kG >= kParities ? kG / kParities : 1;
  const int score_row = threadIdx.x % kTile;
  const int parity = threadIdx.x / kTile;
  const bool score_active = parity < kG;
  // P·V threads: a pair of dims × a contiguous range of rows.
  constexpr int kDimPairs = D / 2;
  constexpr int kSubsets = kThreads / kDimPairs;  // 2 for D = 128, 4 for D = 64
  constexpr int kRowsPerSubset = kTile / kSubsets;
  const int dim_pair = threadIdx.x % kDimPairs;
  const int subset = threadIdx.x / kDimPairs;
  float acc[kG][2];
#pragma unroll
  for (int g = 0; g < kG; ++g) acc[g][0] = acc[g][1] = 0.0f;

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int stage = (tile - tile_begin) & 1;
    if (tile + 1 < tile_end) {
      load_tile<D, kTile>(p, smem + (stage ^ 1) * Layout::kStageBytes, block_table[(tile + 1) / kTilesPerPage],
                          (tile + 1) * kTile, kv_begin, ctx, kv_head);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const char* k_smem = smem + stage * Layout::kStageBytes;
    const auto* v_smem = reinterpret_cast<const __nv_bfloat162*>(k_smem + Layout::kTileBytes);
    const int token0 = tile * kTile;

    if (score_active) {
      const int token = token0 + score_row;
      const bool visible = token >= kv_begin && token < ctx;
      float dot[kScoreHeads];
#pragma unroll
      for (int i = 0; i < kScoreHeads; ++i) dot[i] = 0.0f;
#pragma unroll 4
      for (int c = 0; c < D / 8; ++c) {
        float k[8];
        bf16x8_to_float(*reinterpret_cast<const Bf16x8*>(k_smem + score_row * D * 2 + ((c ^ (score_row & 7)) << 4)), k);
#pragma unroll
        for (int i = 0; i < kScoreHeads; ++i) {
          const int g = parity + kParities * i;
          const float4 qa = *reinterpret_cast<const float4*>(q_smem + g * D + c * 8);
          const float4 qb = *reinterpret_cast<const float4*>(q_smem + g * D + c * 8 + 4);
          dot[i] = fmaf(k[0], qa.x, dot[i]);
          dot[i] = fmaf(k[1], qa.y, dot[i]);
          dot[i] = fmaf(k[2], qa.z, dot[i]);
          dot[i] = fmaf(k[3], qa.w, dot[i]);
          dot[i] = fmaf(k[4], qb.x, dot[i]);
          dot[i] = fmaf(k[5], qb.y, dot[i]);
          dot[i] = fmaf(k[6], qb.z, dot[i]);
          dot[i] = fmaf(k[7], qb.w, dot[i]);
        }
      }
      if (capped) {  // one uniform branch around the loop: the uncapped path computes no tanh
#pragma unroll
        for (int i = 0; i < kScoreHeads; ++i) dot[i] = cap_log2 * tanhf(dot[i] * inv_cap_log2);
      }
#pragma unroll
      for (int i = 0; i < kScoreHeads; ++i) {
        const int g = parity + kParities * i;
        s_smem[g * kTile + score_row] = visible ? dot[i] : -INFINITY;
      }
    }
    __syncthreads();

    // Softmax update: one warp per head.
    for (int g = warp; g < kG; g += kThreads / 32) {
      const float s0 = s_smem[g * kTile + lane];
      const float s1 = kTile == 64 ? s_smem[g * kTile + lane + 32] : -INFINITY;
      const float tile_max = warp_max(fmaxf(s0, s1));
      const float old_max = m_smem[g];
      const float new_max = fmaxf(old_max, tile_max);
      const float p0 = fast_exp2(s0 - new_max);
      const float p1 = fast_exp2(s1 - new_max);
      s_smem[g * kTile + lane] = p0;
      if (kTile == 64) s_smem[g * kTile + lane + 32] = p1;
      const float sum = warp_sum(p0 + p1);
      if (lane == 0) {
        const float correction = fast_exp2(old_max - new_max);
        c_smem[g] = correction;
        l_smem[g] = l_smem[g] * correction + sum;
        m_smem[g] = new_max;
      }
    }
    __syncthreads();

    // O += P·V over this thread's rows, four at a time (probabilities read as float4).
#pragma unroll
    for (int g = 0; g < kG; ++g) {
      const float c = c_smem[g];
      acc[g][0] *= c;
      acc[g][1] *= c;
    }
    const int row0 = subset * kRowsPerSubset;
#pragma unroll 2
    for (int r = 0; r < kRowsPerSubset; r += 4) {
      float2 v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = __bfloat1622float2(v_smem[(row0 + r + j) * kDimPairs + dim_pair]);
#pragma unroll
      for (int g = 0; g < kG; ++g) {
        const float4 pr = *reinterpret_cast<const float4*>(s_smem + g * kTile + row0 + r);
        acc[g][0] = fmaf(pr.x, v[0].x, acc[g][0]);
        acc[g][1] = fmaf(pr.x, v[0].y, acc[g][1]);
        acc[g][0] = fmaf(pr.y, v[1].x, acc[g][0]);
        acc[g][1] = fmaf(pr.y, v[1].y, acc[g][1]);
        acc[g][0] = fmaf(pr.z, v[2].x, acc[g][0]);
        acc[g][1] = fmaf(pr.z, v[2].y, acc[g][1]);
        acc[g][0] = fmaf(pr.w, v[3].x, acc[g][0]);
        acc[g][1] = fmaf(pr.w, v[3].y, acc[g][1]);
      }
    }
    __syncthreads();  // the next prefetch overwrites this stage; the next scores overwrite s_smem
  }

  // Merge the row subsets, then normalise and store (or write the split's partial result). The tile
  // loop ended with a barrier and no copies in flight, so the stages are free.
#pragma unroll
  for (int g = 0; g < kG; ++g) {
    merge_smem[threadIdx.x * 2 * kG + 2 * g] = acc[g][0];
    merge_smem[threadIdx.x * 2 * kG + 2 * g + 1] = acc[g][1];
  }
  __syncthreads();  // also publishes the statistics of an empty split
  if (subset != 0) return;
  for (int other = 1; other < kSubsets; ++other) {
    const float* src = merge_smem + (threadIdx.x + other * kDimPairs) * 2 * kG;
#pragma unroll
    for (int g = 0; g < kG; ++g) {
      acc[g][0] += src[2 * g];
      acc[g][1] += src[2 * g + 1];
    }
  }
  const Workspace ws = carve_workspace(params.workspace, p.num_seqs, p.num_q_heads, hd, params.num_splits);
  const int dim = 2 * dim_pair;
  if (dim >= hd) return;  // padded dims
#pragma unroll
  for (int g = 0; g < kG; ++g) {
    if (g >= group) break;
    const float sum = l_smem[g];
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int head = head0 + g;
    if (params.num_splits == 1) {
      auto* out = static_cast<__nv_bfloat16*>(p.out) + (static_cast<int64_t>(q_row) * p.num_q_heads + head) * hd;
      *reinterpret_cast<__nv_bfloat162*>(out + dim) = __floats2bfloat162_rn(acc[g][0] * inv, acc[g][1] * inv);
    } else {
      const int64_t slot = (static_cast<int64_t>(seq) * p.num_q_heads + head) * params.num_splits + split;
      *reinterpret_cast<float2*>(ws.o + slot * hd + dim) = make_float2(acc[g][0] * inv, acc[g][1] * inv);
      if (dim == 0) ws.lse[slot] = sum > 0.0f ? m_smem[g] + __log2f(sum) : -INFINITY;
    }
  }
}

// Merges the splits of one (sequence, query head): out = Σ w_i o_i / Σ w_i, w_i = 2^(lse_i − max lse).
// One thread per dim of head_dim (the block has the padded size's threads; the rest exit).
template <int D>
__global__ void __launch_bounds__(D) decode_combine_kernel(PagedDecodeParams params) {
  const PagedAttentionParams& p = params.attn;
  const int head = blockIdx.x;
  const int seq = blockIdx.y;
  const int dim = threadIdx.x;
  const int hd = p.head_dim;
  if (dim >= hd) return;
  const Workspace ws = carve_workspace(params.workspace, p.num_seqs, p.num_q_heads, hd, params.num_splits);
  const int64_t base = (static_cast<int64_t>(seq) * p.num_q_heads + head) * params.num_splits;
  // The splits the decode kernel ran for this sequence (the same arithmetic as there).
  const int ctx = p.context_lens[seq];
  const int kv_begin = p.sliding_window > 0 ? max(0, ctx - p.sliding_window) : 0;
  const int seq_splits = decode_splits_for_pages((ctx + kPage - 1) / kPage - kv_begin / kPage, params.num_splits);
  float max_lse = -INFINITY;
  for (int i = 0; i < seq_splits; ++i) max_lse = fmaxf(max_lse, ws.lse[base + i]);
  float num = 0.0f;
  float den = 0.0f;
  for (int i = 0; i < seq_splits; ++i) {
    const float lse = ws.lse[base + i];
    if (lse == -INFINITY) continue;  // empty split: its o was never written
    const float w = exp2f(lse - max_lse);
    num += w * ws.o[(base + i) * hd + dim];
    den += w;
  }
  const int q_row = p.query_start[seq];
  static_cast<__nv_bfloat16*>(p.out)[(static_cast<int64_t>(q_row) * p.num_q_heads + head) * hd + dim] =
      __float2bfloat16(den > 0.0f ? num / den : 0.0f);
}

template <int D, int kG>
cudaError_t launch_for_group(const PagedDecodeParams& params, cudaStream_t stream) {
  const PagedAttentionParams& p = params.attn;
  constexpr int kSmem = DecodeSmem<D, kG>::kTotalBytes;
  static const cudaError_t attribute_status =
      cudaFuncSetAttribute(paged_decode_kernel<D, kG>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid(params.num_splits, p.num_kv_heads, p.num_seqs);
  paged_decode_kernel<D, kG><<<grid, kThreads, kSmem, stream>>>(params);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || params.num_splits == 1) return err;
  decode_combine_kernel<D><<<dim3(p.num_q_heads, p.num_seqs), D, 0, stream>>>(params);
  return cudaGetLastError();
}

template <int D>
cudaError_t launch_for_dim(const PagedDecodeParams& params, cudaStream_t stream) {
  const int group = params.attn.num_q_heads / params.attn.num_kv_heads;
  if (group <= 1) return launch_for_group<D, 1>(params, stream);
  if (group <= 2) return launch_for_group<D, 2>(params, stream);
  if (group <= 4) return launch_for_group<D, 4>(params, stream);
  if (group <= 8) return launch_for_group<D, 8>(params, stream);
  return launch_for_group<D, 16>(params, stream);
}

}  // namespace

int choose_decode_splits(int num_seqs, int num_kv_heads, int max_context_len, int num_sms) {
  constexpr int kResidentBlocksPerSm = 3;  // what the shared-memory footprint allows at head_dim 128
  constexpr int kMinPagesPerSplit = kDecodeMinPagesPerSplit;
  constexpr int kMaxSplits = 128;
  // Planned for the batch rounded up to a power of two: a graph batch padded to its bucket (every
  // power of two is a bucket boundary) then splits exactly like the same batch run eagerly.
  int64_t planned_seqs = 1;
  while (planned_seqs < num_seqs) planned_seqs *= 2;
  const int64_t base_blocks = num_seqs <= 0 ? 0 : planned_seqs * num_kv_heads;
  if (base_blocks <= 0) return 1;
  // As many splits as fit in one wave of resident blocks (a second, partial wave would double the time).
  const int64_t target = static_cast<int64_t>(num_sms) * kResidentBlocksPerSm;
  int64_t splits = target / base_blocks;
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
      params.num_splits < 1 || (params.num_splits > 1 && params.workspace == nullptr) || p.softcap < 0.0f) {
    return cudaErrorInvalidValue;
  }
  switch (attention_padded_dim(p.head_dim)) {
    case 64: return launch_for_dim<64>(params, stream);
    case 128: return launch_for_dim<128>(params, stream);
    case 256: return launch_for_dim<256>(params, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
