// Flash prefill for Hopper (sm_90a), warp-specialised: one producer warpgroup streams K/V pages into
// a ring of shared-memory stages with cp.async, two consumer warpgroups (64 query rows each) run
// the wgmma GEMMs and the online softmax. Stages are handed over with mbarriers instead of
// block-wide barriers, so the consumers drift apart and one's softmax overlaps the other's GEMMs,
// and no consumer thread spends issue slots on loads.
//
// Hand-over protocol for stage s (use k = tile index / kStages):
//   producer: cp.async K/V of the tile (one commit group per tile, two tiles in flight); once its
//             own copies of the tile landed: proxy fence (generic -> async), arrive on full[s].
//             Before refilling s it waits for empty[s] phase k − 1.
//   consumer: wait full[s] phase k; S = Q·Kᵀ; wgmma wait (retires P·V of the previous tile too);
//             lane 0 of each warp arrives on empty[previous stage]; softmax; issue P·V.
// full[s] expects 128 arrivals (every producer thread), empty[s] 8 (every consumer warp).
// Shared tiles use the 128-byte swizzle layout of flash_prefill_sm90.cu (same descriptors).
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
constexpr int kThreads = 384;  // producer warpgroup + two consumer warpgroups
[[maybe_unused]] constexpr int kProducerThreads = 128;
constexpr int kStages = 5;
[[maybe_unused]] constexpr int kConsumerWarps = 8;

template <int D>
struct WsLayout {
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kTileBytes = kBlockN * D * 2;
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kBarrierBytes = 8 * (2 * kStages + 1);
  static constexpr int kTotalBytes = kQBytes + kStages * kStageBytes + 1024 + 1024;  // + barriers, alignment
};

template <int D>
__device__ __forceinline__ int swizzled_offset(int rows, int row, int chunk) {
  return (chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) flash_prefill_sm90_ws_kernel(FlashPrefillParams p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = WsLayout<D>;
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr int kOAcc = D / 2;
  constexpr int kChunks = D / 8;
  extern __shared__ char smem_raw[];
  char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  const uint32_t smem_addr = smem_u32(smem);
  const uint32_t bar_addr = smem_addr + L::kQBytes + kStages * L::kStageBytes;
  auto full_bar = [&](int s) { return bar_addr + 8 * s; };
  auto empty_bar = [&](int s) { return bar_addr + 8 * (kStages + s); };
  auto k_stage = [&](int s) { return smem + L::kQBytes + s * L::kStageBytes; };
  auto v_stage = [&](int s) { return smem + L::kQBytes + s * L::kStageBytes + L::kTileBytes; };

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

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full_bar(s), kProducerThreads);
      mbar_init(empty_bar(s), kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (threadIdx.x < kProducerThreads) {
    // ---- producer: Q with the first tile, then every K/V tile ----
    const int tid = threadIdx.x;
    const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
    const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
    auto issue_tile = [&](int tile) {
      const int s = (tile - tile_begin) % kStages;
      const int page = block_table[tile];
      char* k_smem = k_stage(s);
      char* v_smem = v_stage(s);
      for (int idx = tid; idx < kBlockN * kChunks; idx += kProducerThreads) {
        const int row = idx / kChunks;
        const int chunk = idx % kChunks;
        const int token = tile * kBlockN + row;
        const bool valid = token >= kv_begin && token < kv_end;
        const int64_t offset =
            ((static_cast<int64_t>(page) * kKvPageSize + row) * p.num_kv_heads + kv_head) * D + chunk * 8;
        const int dst = swizzled_offset<D>(kBlockN, row, chunk);
        cp_async_16_zfill(k_smem + dst, valid ? k_base + offset : k_base, valid);
        cp_async_16_zfill(v_smem + dst, valid ? v_base + offset : v_base, valid);
      }
    };
    {
      const auto* q_base = static_cast<const __nv_bfloat16*>(p.q);
      for (int idx = tid; idx < kBlockM * kChunks; idx += kProducerThreads) {
        const int row = idx / kChunks;
        const int chunk = idx % kChunks;
        const bool valid = row < rows_here;
        const int64_t offset = (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * D + chunk * 8;
        cp_async_16_zfill(smem + swizzled_offset<D>(kBlockM, row, chunk), valid ? q_base + offset : q_base, valid);
      }
    }
    for (int tile = tile_begin; tile < tile_end; ++tile) {
      const int it = tile - tile_begin;
      const int s = it % kStages;
      if (it >= kStages) mbar_wait(empty_bar(s), static_cast<uint32_t>((it / kStages - 1) & 1));
      issue_tile(tile);
      cp_async_commit();  // the first group also holds Q
      if (it > 0) {
        cp_async_wait<1>();  // the previous tile (and Q) landed
        fence_proxy_async_shared();
        mbar_arrive(full_bar((it - 1) % kStages));
      }
    }
    cp_async_wait<0>();
    fence_proxy_async_shared();
    mbar_arrive(full_bar((tile_end - 1 - tile_begin) % kStages));
    return;
  }

  // ---- consumers ----
  const int cwg = (threadIdx.x - kProducerThreads) >> 7;  // 0 or 1
  const int warp_in_wg = (threadIdx.x >> 5) & 3;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const float scale_log2 = p.scale * kLog2e;
  const int wg_row0 = cwg * 64;
  const int wg_pos_first = pos_first + wg_row0;
  const int wg_pos_last = wg_pos_first + 63;
  const int row_pos[2] = {wg_pos_first + warp_in_wg * 16 + g, wg_pos_first + warp_in_wg * 16 + g + 8};
  int wg_tile_begin = tile_begin;
  int wg_tile_end = tile_end;
  if (wg_row0 >= rows_here) {
    wg_tile_end = wg_tile_begin;
  } else {
    wg_tile_end = min(tile_end, wg_pos_last / kBlockN + 1);
    if (p.sliding_window > 0) wg_tile_begin = max(tile_begin, max(0, wg_pos_first - p.sliding_window + 1) / kBlockN);
  }

  float s_acc[32];
  float o[kOAcc];
  uint32_t pa[4][4];
#pragma unroll
  for (int i = 0; i < 32; ++i) s_acc[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kOAcc; ++i) o[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) pa[i][0] = pa[i][1] = pa[i][2] = pa[i][3] = 0u;
  float row_max[2] = {-FLT_MAX, -FLT_MAX};
  float row_sum[2] = {0.0f, 0.0f};
  const uint32_t q_addr = smem_addr + wg_row0 * 128;

  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int it = tile - tile_begin;
    const int s = it % kStages;
    mbar_wait(full_bar(s), static_cast<uint32_t>((it / kStages) & 1));
    const bool active = tile >= wg_tile_begin && tile < wg_tile_end;
    if (active) {
      const uint32_t k_addr = smem_u32(k_stage(s));
#pragma unroll
      for (int i = 0; i < 32; ++i) wgmma::fence_operand(s_acc[i]);
      wgmma::fence();
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        const uint64_t desc_q = wgmma::make_desc_sw128(q_addr + (kk >> 2) * kBlockM * 128 + (kk & 3) * 32, 16, 1024);
        const uint64_t desc_k = wgmma::make_desc_sw128(k_addr + (kk >> 2) * kBlockN * 128 + (kk & 3) * 32, 16, 1024);
        wgmma::mma_m64n64k16_ss(s_acc, desc_q, desc_k, kk > 0 ? 1 : 0);
      }
      wgmma::commit();
    }
    wgmma::wait<0>();  // S of this tile and P·V of the previous one
#pragma unroll
    for (int i = 0; i < 32; ++i) wgmma::fence_operand(s_acc[i]);
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    if (it > 0 && lane == 0) mbar_arrive(empty_bar((it - 1) % kStages));
    if (!active) continue;

    const int key0 = tile * kBlockN;
    const bool need_mask = key0 + kBlockN - 1 > wg_pos_first ||
                           (p.sliding_window > 0 && key0 <= wg_pos_last - p.sliding_window) || key0 < kv_begin ||
                           key0 + kBlockN > kv_end;
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float v = s_acc[4 * j + e] * scale_log2;
        if (need_mask) {
          const int key = key0 + 8 * j + 2 * t + (e & 1);
          const int pos = row_pos[e >> 1];
          const bool visible = key <= pos && key < kv_end && key >= kv_begin &&
                               (p.sliding_window <= 0 || key > pos - p.sliding_window);
          v = visible ? v : -INFINITY;
        }
        s_acc[4 * j + e] = v;
      }
    }
    float correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < 8; ++j) tile_max = fmaxf(tile_max, fmaxf(s_acc[4 * j + 2 * r], s_acc[4 * j + 2 * r + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[r], tile_max);
      correction[r] = fast_exp2(row_max[r] - new_max);
      row_max[r] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        s_acc[4 * j + 2 * r] = fast_exp2(s_acc[4 * j + 2 * r] - new_max);
        s_acc[4 * j + 2 * r + 1] = fast_exp2(s_acc[4 * j + 2 * r + 1] - new_max);
        sum += s_acc[4 * j + 2 * r] + s_acc[4 * j + 2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction[r] + sum;
    }
    // Rescaling O is skipped when no row maximum of the warp moved (the common case after the first tiles).
    if (!__all_sync(0xffffffffu, correction[0] == 1.0f && correction[1] == 1.0f)) {
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        o[4 * j + 0] *= correction[0];
        o[4 * j + 1] *= correction[0];
        o[4 * j + 2] *= correction[1];
        o[4 * j + 3] *= correction[1];
      }
    }
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pa[kk][0] = pack_bf16x2(s_acc[8 * kk + 0], s_acc[8 * kk + 1]);
      pa[kk][1] = pack_bf16x2(s_acc[8 * kk + 2], s_acc[8 * kk + 3]);
      pa[kk][2] = pack_bf16x2(s_acc[8 * kk + 4], s_acc[8 * kk + 5]);
      pa[kk][3] = pack_bf16x2(s_acc[8 * kk + 6], s_acc[8 * kk + 7]);
#pragma unroll
      for (int i = 0; i < 4; ++i) wgmma::fence_operand(pa[kk][i]);
    }
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    wgmma::fence();
    const uint32_t v_addr = smem_u32(v_stage(s));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
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
  constexpr int kSmem = WsLayout<D>::kTotalBytes;
  static_assert(WsLayout<D>::kBarrierBytes <= 1024, "barriers must fit their slot");
  static const cudaError_t attribute_status =
      cudaFuncSetAttribute(flash_prefill_sm90_ws_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid((p.max_query_len + kBlockM - 1) / kBlockM, p.num_q_heads, p.num_seqs);
  flash_prefill_sm90_ws_kernel<D><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_flash_prefill_sm90_ws(const FlashPrefillParams& p, cudaStream_t stream) {
  switch (p.head_dim) {
    case 64: return launch_for_dim<64>(p, stream);
    case 128: return launch_for_dim<128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
