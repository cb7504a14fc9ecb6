// Flash prefill for Hopper (sm_90a): warpgroup MMA (wgmma) for both GEMMs.
//
// Block: kBlockM = 128 query rows of one (sequence, query head) = two warpgroups of 64 rows; KV
// tiles are one page (64 tokens) of the block's KV head, streamed by cp.async through a 4-stage
// ring in shared memory. Per tile each warpgroup computes S = Q·Kᵀ (m64n64, Q and K from shared
// memory), masks and updates the online softmax in registers (log2 domain), then issues
// O += P·V (m64nD, P from registers, V from shared memory as the transposed operand). The S GEMM of
// tile j + 1 is issued before the softmax of tile j (two S register sets), so the tensor cores work
// while the warpgroup does its exponentials (FlashAttention-3's intra-warpgroup overlap); the step
// comment below gives the order and why the 4-stage ring is safe.
//
// Shared tiles use the 128-byte swizzle layout that wgmma descriptors describe: rows of 64 bf16
// (128 bytes) in column blocks of 64 head dims, 16-byte chunk c of row r stored at chunk c ^ (r % 8),
// atoms of 8 rows (1024 bytes) 1024-byte aligned. The same bytes serve K as a K-major operand and V
// as an MN-major (transposed) one.
//
// Built for sm_90a only (see kernels/CMakeLists.txt); elsewhere launch_flash_prefill uses the
// mma.sync kernel.
#include <cuda_bf16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/flash_prefill/flash_prefill_variants.h"
#include "kernels/flash_prefill/wgmma.cuh"

namespace longbow::kernels {
namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = kKvPageSize;
constexpr int kThreads = 256;
constexpr int kStages = 4;

template <int D>
struct Sm90Layout {
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kTileBytes = kBlockN * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kTotalBytes = kQBytes + kStages * kStageBytes + 1024;  // + alignment slack
};

// Byte offset of (row, 16-byte chunk) in a swizzled [rows][D] tile.
template <int D>
__device__ __forceinline__ int sw128_offset(int rows, int row, int chunk) {
  return (chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

template <int D>
__device__ __forceinline__ void load_kv_tile(const FlashPrefillParams& p, char* k_smem, char* v_smem, int page,
                                             int tile_token0, int valid_begin, int valid_end, int kv_head) {
  constexpr int kChunks = D / 8;
  const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
  for (int idx = threadIdx.x; idx < kBlockN * kChunks; idx += kThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int token = tile_token0 + row;
    const bool valid = token >= valid_begin && token < valid_end;
    const int64_t offset =
        ((static_cast<int64_t>(page) * kKvPageSize + row) * p.num_kv_heads + kv_head) * D + chunk * 8;
    const int dst = sw128_offset<D>(kBlockN, row, chunk);
    cp_async_16_zfill(k_smem + dst, valid ? k_base + offset : k_base, valid);
    cp_async_16_zfill(v_smem + dst, valid ? v_base + offset : v_base, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) flash_prefill_sm90_kernel(FlashPrefillParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = Sm90Layout<D>;
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr int kOAcc = D / 2;  // fp32 accumulators per thread for a 64×D tile
  extern __shared__ char smem_raw[];
  char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  const uint32_t smem_addr = smem_u32(smem);

  const int seq = blockIdx.z;
  const int head = blockIdx.y;
  const int m_tile = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);  // heavy tiles first
  const int q_begin = p.query_start[seq];
  const int q_len = p.query_start[seq + 1] - q_begin;
  const int m0 = m_tile * kBlockM;
  if (m0 >= q_len) return;
  const int ctx = p.context_lens[seq];
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int rows_here = min(kBlockM, q_len - m0);
  const int pos_first = ctx - q_len + m0;
  const int pos_last = pos_first + rows_here - 1;
  const int kv_end = min(ctx, pos_last + 1);
  const int kv_begin = p.sliding_window > 0 ? max(0, pos_first - p.sliding_window + 1) : 0;
  const int tile_begin = kv_begin / kBlockN;
  const int tile_end = (kv_end + kBlockN - 1) / kBlockN;
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages_per_seq;

  char* q_smem = smem;
  auto k_stage = [&](int s) { return smem + L::kQBytes + s * L::kStageBytes; };
  auto v_stage = [&](int s) { return smem + L::kQBytes + s * L::kStageBytes + L::kTileBytes; };

  {
    constexpr int kChunks = D / 8;
    const auto* q_base = static_cast<const __nv_bfloat16*>(p.q);
    for (int idx = threadIdx.x; idx < kBlockM * kChunks; idx += kThreads) {
      const int row = idx / kChunks;
      const int chunk = idx % kChunks;
      const bool valid = row < rows_here;
      const int64_t offset = (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * D + chunk * 8;
      cp_async_16_zfill(q_smem + sw128_offset<D>(kBlockM, row, chunk), valid ? q_base + offset : q_base, valid);
    }
  }
  load_kv_tile<D>(p, k_stage(0), v_stage(0), block_table[tile_begin], tile_begin * kBlockN, kv_begin, kv_end, kv_head);
  cp_async_commit();
  if (tile_begin + 1 < tile_end) {
    load_kv_tile<D>(p, k_stage(1), v_stage(1), block_table[tile_begin + 1], (tile_begin + 1) * kBlockN, kv_begin,
                    kv_end, kv_head);
  }
  cp_async_commit();

  const int wg = threadIdx.x >> 7;
  const int warp_in_wg = (threadIdx.x >> 5) & 3;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const float scale_log2 = p.scale * kLog2e;
  const int wg_row0 = wg * 64;
  const int wg_pos_first = pos_first + wg_row0;
  const int wg_pos_last = wg_pos_first + 63;
  const int row_pos[2] = {wg_pos_first + warp_in_wg * 16 + g, wg_pos_first + warp_in_wg * 16 + g + 8};
  // This warpgroup's tiles: from the first key its earliest row may see (window) to the tile of its
  // latest row's position (causal); empty for a warpgroup of padding rows.
  int wg_tile_begin = tile_begin;
  int wg_tile_end = tile_end;
  if (wg_row0 >= rows_here) {
    wg_tile_end = wg_tile_begin;
  } else {
    wg_tile_end = min(tile_end, wg_pos_last / kBlockN + 1);
    if (p.sliding_window > 0) wg_tile_begin = max(tile_begin, max(0, wg_pos_first - p.sliding_window + 1) / kBlockN);
  }
  auto in_range = [&](int tile) { return tile >= wg_tile_begin && tile < wg_tile_end; };

  float s_even[32];
  float s_odd[32];
  float o[kOAcc];
  uint32_t pa[4][4];
#pragma unroll
  for (int i = 0; i < 32; ++i) s_even[i] = s_odd[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kOAcc; ++i) o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) pa[i][0] = pa[i][1] = pa[i][2] = pa[i][3] = 0u;
  float row_max[2] = {-FLT_MAX, -FLT_MAX};
  float row_sum[2] = {0.0f, 0.0f};

  const uint32_t q_addr = smem_addr + wg_row0 * 128;  // this warpgroup's 64 rows in each column block

  // S = Q·Kᵀ for `tile` into acc (async; the caller commits and waits).
  auto issue_s = [&](float (&acc)[32], int tile) {
    const uint32_t k_addr = smem_u32(k_stage((tile - tile_begin) % kStages));
#pragma unroll
    for (int i = 0; i < 32; ++i) wgmma::fence_operand(acc[i]);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t desc_q = wgmma::make_desc_sw128(q_addr + (kk >> 2) * kBlockM * 128 + (kk & 3) * 32, 16, 1024);
      const uint64_t desc_k = wgmma::make_desc_sw128(k_addr + (kk >> 2) * kBlockN * 128 + (kk & 3) * 32, 16, 1024);
      wgmma::mma_m64n64k16_ss(acc, desc_q, desc_k, kk > 0 ? 1 : 0);
    }
    wgmma::commit();
#pragma unroll
    for (int i = 0; i < 32; ++i) wgmma::fence_operand(acc[i]);
  };

  // One block-wide step: tile j's softmax and P·V overlap the S GEMM of tile j + 1.
  //   1. tile j + 1 resident (cp.async wait, proxy fence, barrier); prefetch tile j + 2
  //   2. issue S(j + 1)                         pending: P·V(j − 1), S(j + 1)
  //   3. mask + online softmax of S(j) -> P(j)
  //   4. wait until only S(j + 1) may pend, rescale O, issue P·V(j)
  //   5. wait until only P·V(j) may pend: S(j + 1) is ready for the next step
  // The prefetch in step 1 overwrites the stage of tile j − 2, whose P·V every warpgroup retired in
  // step 4 of the previous block step, before this step's barrier.
  auto step = [&](float (&s_cur)[32], float (&s_next)[32], int tile) {
    const int it = tile - tile_begin;
    cp_async_wait<0>();
    fence_proxy_async_shared();  // cp.async writes (generic proxy) -> wgmma reads (async proxy)
    __syncthreads();
    if (tile + 2 < tile_end) {
      const int s2 = (it + 2) % kStages;
      load_kv_tile<D>(p, k_stage(s2), v_stage(s2), block_table[tile + 2], (tile + 2) * kBlockN, kv_begin, kv_end,
                      kv_head);
    }
    cp_async_commit();
    const bool next_issued = tile + 1 < tile_end && in_range(tile + 1);
    if (next_issued) issue_s(s_next, tile + 1);
    if (!in_range(tile)) {
      // Nothing to compute: retire whatever is pending (S of the first tile, or the last P·V).
      wgmma::wait<0>();
      if (next_issued) {
#pragma unroll
        for (int i = 0; i < 32; ++i) wgmma::fence_operand(s_next[i]);
      }
      return;
    }

    const int key0 = tile * kBlockN;
    const bool need_mask = key0 + kBlockN - 1 > wg_pos_first ||
                           (p.sliding_window > 0 && key0 <= wg_pos_last - p.sliding_window) || key0 < kv_begin ||
                           key0 + kBlockN > kv_end;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s_cur[4 * j + e] * scale_log2;
        if (need_mask) {
          const int key = key0 + 8 * j + 2 * t + (e & 1);
          const int pos = row_pos[e >> 1];
          const bool visible = key <= pos && key < kv_end && key >= kv_begin &&
                               (p.sliding_window <= 0 || key > pos - p.sliding_window);
          v = visible ? v : -INFINITY;
        }
        s_cur[4 * j + e] = v;
      }
    }
    float correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < 8; ++j) tile_max = fmaxf(tile_max, fmaxf(s_cur[4 * j + 2 * r], s_cur[4 * j + 2 * r + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[r], tile_max);
      correction[r] = fast_exp2(row_max[r] - new_max);
      row_max[r] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        s_cur[4 * j + 2 * r] = fast_exp2(s_cur[4 * j + 2 * r] - new_max);
        s_cur[4 * j + 2 * r + 1] = fast_exp2(s_cur[4 * j + 2 * r + 1] - new_max);
        sum += s_cur[4 * j + 2 * r] + s_cur[4 * j + 2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction[r] + sum;
    }

    // P·V(j − 1) must be retired before O is rescaled and pa is rewritten.
    if (next_issued) {
      wgmma::wait<1>();
    } else {
      wgmma::wait<0>();
    }
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
#pragma unroll
    for (int j = 0; j < D / 8; ++j) {
      o[4 * j + 0] *= correction[0];
      o[4 * j + 1] *= correction[0];
      o[4 * j + 2] *= correction[1];
      o[4 * j + 3] *= correction[1];
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pa[kk][0] = pack_bf16x2(s_cur[8 * kk + 0], s_cur[8 * kk + 1]);
      pa[kk][1] = pack_bf16x2(s_cur[8 * kk + 2], s_cur[8 * kk + 3]);
      pa[kk][2] = pack_bf16x2(s_cur[8 * kk + 4], s_cur[8 * kk + 5]);
      pa[kk][3] = pack_bf16x2(s_cur[8 * kk + 6], s_cur[8 * kk + 7]);
#pragma unroll
      for (int i = 0; i < 4; ++i) wgmma::fence_operand(pa[kk][i]);
    }
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    wgmma::fence();
    const uint32_t v_addr = smem_u32(v_stage(it % kStages));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      // 16 keys = two 8-row atoms (1024 bytes each); head dims span D / 64 column blocks (LBO apart).
      const uint64_t desc_v = wgmma::make_desc_sw128(v_addr + kk * 16 * 128, kBlockN * 128, 1024);
      if constexpr (D == 128) {
        wgmma::mma_m64n128k16_rs_tnspb(o, pa[kk], desc_v);
      } else {
        wgmma::mma_m64n64k16_rs_tnspb(o, pa[kk], desc_v);
      }
    }
    wgmma::commit();
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    if (next_issued) {
      wgmma::wait<1>();
#pragma unroll
      for (int i = 0; i < 32; ++i) wgmma::fence_operand(s_next[i]);
    }
  };

  // Prologue: tiles 0 and 1 resident, S of the first tile issued and retired.
  cp_async_wait<0>();
  fence_proxy_async_shared();
  __syncthreads();
  if (in_range(tile_begin)) {
    issue_s(s_even, tile_begin);
    wgmma::wait<0>();
#pragma unroll
    for (int i = 0; i < 32; ++i) wgmma::fence_operand(s_even[i]);
  }
  // Block tiles alternate the two S buffers: even steps read s_even and fill s_odd.
  for (int tile = tile_begin; tile < tile_end; tile += 2) {
    step(s_even, s_odd, tile);
    if (tile + 1 < tile_end) step(s_odd, s_even, tile + 1);
  }
  wgmma::wait<0>();
#pragma unroll
  for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);

  auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = wg_row0 + warp_in_wg * 16 + g + 8 * r;
    if (row < rows_here) {
      __nv_bfloat16* dst = out + (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * D;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j + 2 * t) =
            __floats2bfloat162_rn(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
      }
    }
  }
#else
  (void)p;
  __trap();  // never launched: this translation unit is built for sm_90a only
#endif
}

template <int D>
cudaError_t launch_for_dim(const FlashPrefillParams& p, cudaStream_t stream) {
  constexpr int kSmem = Sm90Layout<D>::kTotalBytes;
  static const cudaError_t attribute_status =
      cudaFuncSetAttribute(flash_prefill_sm90_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid((p.max_query_len + kBlockM - 1) / kBlockM, p.num_q_heads, p.num_seqs);
  flash_prefill_sm90_kernel<D><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_flash_prefill_sm90(const FlashPrefillParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 64: return launch_for_dim<64>(p, stream);
    case 128: return launch_for_dim<128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
