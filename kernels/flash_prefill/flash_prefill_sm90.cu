// Flash prefill for Hopper (sm_90a) in the FlashAttention-3 arrangement: TMA loads, warp
// specialisation with register reallocation, 128-key tiles (64 at head size 256), intra-warpgroup
// overlap and ping-pong scheduling of the two consumer warpgroups.
//
// Block: 128 query rows of one (sequence, query head); 384 threads = three warpgroups.
//   producer (warpgroup 0, 40 registers): warp 0 loads Q with cp.async, then streams K/V tiles of
//     kBlockN = 128 keys (two 64-token pages of the block's KV head) into a kStages ring. A tile
//     whose 128 keys all lie inside the context is fetched by TMA (one thread issues 2 · D/64 boxes
//     of [64 tokens][64 dims] per tensor, the 3-D map over the pool [tokens][Hkv][D] does the
//     paging and the 128-byte swizzle); the sequence's last, partial tile goes through cp.async
//     with zero fill, since slots past the context may hold anything (NaN included, and 0·NaN
//     would poison O).
//   consumers (warpgroups 1 and 2, 232 registers): 64 query rows each. Per tile j:
//       issue S(j) = Q·K(j)ᵀ (m64n128, both from shared memory) and O += P(j−1)·V(j−1) (P from
//       registers); softmax of S(j) while P(j−1)·V(j−1) runs; wait; rescale O; P(j) = bf16(S(j)).
//     The two warpgroups take turns issuing their GEMMs (named barriers 1 and 2), so one's
//     exponentials overlap the other's tensor-core work. Both warpgroups walk the same tiles (the
//     block's key range) so that the turns match; keys a row may not see are masked.
// Barriers (mbarriers in shared memory, one phase per use of a stage; use k = tile index / kStages):
//   q_full: the producer warp's 32 lanes arrive once Q landed.
//   full_k[s], full_v[s]: 32 arrivals (lane 0 with the TMA byte count) per phase k.
//   empty[s]: one arrival per consumer warp (8) once P·V of the stage's tile retired; the producer
//     waits for phase k − 1 before refilling s.
// Shared tiles use the 128-byte swizzle layout that wgmma descriptors describe: [D/64 column blocks]
// [rows][128 bytes], 16-byte chunk c of row r at chunk c ^ (r % 8), atoms 1024-byte aligned; TMA's
// SWIZZLE_128B writes exactly this when each box starts 1024-byte aligned. The same bytes serve K as
// a K-major operand and V as an MN-major (transposed) one.
//
// Head sizes: D is the padded size, 64, 128 or 256 (kernels/common/paged_kv.h). At 256 a tile is one
// page (kBlockN = 64 keys) and the ring two stages deep (TmaLayout), S is m64n64 and P·V m64n256
// per k16 step. A head_dim equal to D loads whole tiles by TMA; a smaller one loads every tile
// through the zero-filling cp.async path (dims past head_dim read as 0, so the padded GEMM columns
// add nothing) and stores its own dims.
// Windows: a tile's first page wholly before the block's first visible key is never looked up (that
// tile is loaded by cp.async with those keys zero-filled), so released block-table entries are
// never used, whatever they hold.
// Soft-cap (params.softcap > 0): each score s becomes (cap / scale) · tanh(s · scale / cap) before
// masking, which the softmax then scales as usual.
//
// Built for sm_90a only (see kernels/CMakeLists.txt); elsewhere launch_flash_prefill uses the
// mma.sync kernel (flash_prefill.cu).
#include <cuda.h>  // CUtensorMap and the encoder's types; the function comes through cudart's entry-point query
#include <cuda_bf16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/flash_prefill/flash_prefill_variants.h"
#include "kernels/flash_prefill/hopper_sync.cuh"
#include "kernels/flash_prefill/wgmma.cuh"

namespace longbow::kernels {
namespace {

constexpr int kBlockM = 128;
constexpr int kThreads = 384;
constexpr int kConsumerWarps = 8;
constexpr int kConsumerThreads = 256;
[[maybe_unused]] constexpr int kProducerRegs = 40;
[[maybe_unused]] constexpr int kConsumerRegs = 232;
static_assert(128 * kProducerRegs + kConsumerThreads * kConsumerRegs <= 65536, "register file");

// Key tile and pipeline depth per padded head size: 128 keys (two pages) in a 3-stage ring up to
// 128 dims; at 256 dims one page per tile in 2 stages, so that Q (64 KB) and the ring (2 × 64 KB)
// fit in shared memory and O (128 fp32 per thread) plus S and P fit the consumers' registers.
template <int D>
struct TmaLayout {
  static constexpr int kBlockN = D <= 128 ? 2 * kKvPageSize : kKvPageSize;
  static constexpr int kPagesPerTile = kBlockN / kKvPageSize;
  static constexpr int kStages = D <= 128 ? 3 : 2;
  static constexpr int kQBytes = kBlockM * D * 2;
  static constexpr int kTileBytes = kBlockN * D * 2;  // one of K, V
  static constexpr int kStageBytes = 2 * kTileBytes;  // K then V
  static constexpr int kBarrierOffset = kQBytes + kStages * kStageBytes;
  static constexpr int kBarrierBytes = 8 * (1 + 3 * kStages);
  static constexpr int kTotalBytes = kBarrierOffset + kBarrierBytes + 1024;  // + alignment slack
};

__device__ __forceinline__ int sw128_offset(int rows, int row, int chunk) {
  return (chunk >> 3) * rows * 128 + row * 128 + (((chunk & 7) ^ (row & 7)) << 4);
}

// kSelected = false: causal (and sliding-window) attention, the contract of launch_flash_prefill.
// kSelected = true: the selection-masked variant (launch_flash_prefill_sm90_selected): a key is
// visible to a row iff its bit is set in the row's bitmap; the block's keys run over [0, 1 + the
// largest index its rows selected), which stands in for the context (context_lens is not read).
template <int D, bool kSelected>
__global__ void __launch_bounds__(kThreads, 1)
    flash_prefill_sm90_kernel(const __grid_constant__ FlashPrefillParams p, const __grid_constant__ CUtensorMap k_map,
                                  const __grid_constant__ CUtensorMap v_map,
                                  const __grid_constant__ PrefillSelection sel) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using L = TmaLayout<D>;
  constexpr int kBlockN = L::kBlockN;
  constexpr int kStages = L::kStages;
  constexpr int kSAcc = kBlockN / 2;  // S accumulators per thread (m64 x kBlockN over 128 threads)
  constexpr int kPSteps = kBlockN / 16;  // k16 steps of P·V
  static_assert(!kSelected || kBlockN == 128, "the selection bitmaps are read 128 keys per tile");
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr int kOAcc = D / 2;
  constexpr int kChunks = D / 8;
  extern __shared__ char smem_raw[];
  char* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  const uint32_t smem_addr = smem_u32(smem);
  const uint32_t bar_addr = smem_addr + L::kBarrierOffset;
  const uint32_t q_bar = bar_addr;
  auto full_k = [&](int s) { return bar_addr + 8 * (1 + s); };
  auto full_v = [&](int s) { return bar_addr + 8 * (1 + kStages + s); };
  auto empty = [&](int s) { return bar_addr + 8 * (1 + 2 * kStages + s); };
  auto k_tile = [&](int s) { return smem_addr + L::kQBytes + s * L::kStageBytes; };
  auto v_tile = [&](int s) { return smem_addr + L::kQBytes + s * L::kStageBytes + L::kTileBytes; };

  const int seq = blockIdx.z;
  const int head = blockIdx.y;
  const int m_tile = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);  // heavy tiles first
  const int q_begin = p.query_start[seq];
  const int q_len = p.query_start[seq + 1] - q_begin;
  const int m0 = m_tile * kBlockM;
  if (m0 >= q_len) return;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int rows_here = min(kBlockM, q_len - m0);
  const int hd = p.head_dim;  // <= D; row stride of q, out and the pools
  const bool tma = hd == D;   // whole tiles by TMA only when no dims need zero-filling
  int ctx;
  if constexpr (kSelected) {
    __shared__ int block_last;
    if (threadIdx.x == 0) block_last = -1;
    __syncthreads();
    if (threadIdx.x < rows_here) atomicMax(&block_last, sel.last[q_begin + m0 + threadIdx.x]);
    __syncthreads();
    ctx = block_last + 1;
    if (ctx == 0) {  // no row of the block selects anything: every output row is 0 (no tile to wait on)
      auto* out = static_cast<__nv_bfloat16*>(p.out);
      for (int i = threadIdx.x; i < rows_here * hd; i += kThreads) {
        out[(static_cast<int64_t>(q_begin + m0 + i / hd) * p.num_q_heads + head) * hd + i % hd] =
            __float2bfloat16(0.0f);
      }
      return;
    }
  } else {
    ctx = p.context_lens[seq];
  }
  const int pos_first = ctx - q_len + m0;
  const int pos_last = pos_first + rows_here - 1;
  const int kv_end = kSelected ? ctx : min(ctx, pos_last + 1);  // selected: ctx is already the block's bound
  const int kv_begin = p.sliding_window > 0 ? max(0, pos_first - p.sliding_window + 1) : 0;
  const int tile_begin = kv_begin / kBlockN;
  const int num_tiles = (kv_end + kBlockN - 1) / kBlockN - tile_begin;
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages_per_seq;
  if (num_tiles <= 0) {  // no key at all (a padding row of context 0): the rows are 0, nothing to wait on
    auto* out = static_cast<__nv_bfloat16*>(p.out);
    for (int i = threadIdx.x; i < rows_here * hd; i += kThreads) {
      out[(static_cast<int64_t>(q_begin + m0 + i / hd) * p.num_q_heads + head) * hd + i % hd] = __float2bfloat16(0.0f);
    }
    return;
  }

  if (threadIdx.x == 0) {
    mbar_init(q_bar, 32);
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full_k(s), 32);
      mbar_init(full_v(s), 32);
      mbar_init(empty(s), kConsumerWarps);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();

  if (threadIdx.x < 128) {
    // ---------------- producer ----------------
    hopper::release_registers<kProducerRegs>();
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x;
    {
      const auto* q_base = static_cast<const __nv_bfloat16*>(p.q);
      for (int idx = lane; idx < kBlockM * kChunks; idx += 32) {
        const int row = idx / kChunks;
        const int chunk = idx % kChunks;
        const bool valid = row < rows_here && chunk * 8 < hd;
        const int64_t offset = (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * hd + chunk * 8;
        cp_async_16_zfill(smem + sw128_offset(kBlockM, row, chunk), valid ? q_base + offset : q_base, valid);
      }
      cp_async_commit();
    }
    for (int it = 0; it < num_tiles; ++it) {
      const int tile = tile_begin + it;
      const int s = it % kStages;
      if (it >= kStages) mbar_wait(empty(s), static_cast<uint32_t>((it / kStages - 1) & 1));
      // TMA takes whole tiles whose pages are all live; a two-page tile whose first page lies wholly
      // before the window (its block-table entry may be released) goes through cp.async, which
      // zero-fills the keys before kv_begin without looking their page up.
      if (tma && (tile + 1) * kBlockN <= ctx && (tile * L::kPagesPerTile + 1) * kKvPageSize > kv_begin) {
        if (lane == 0) {
          int pages[L::kPagesPerTile];
#pragma unroll
          for (int pg = 0; pg < L::kPagesPerTile; ++pg) pages[pg] = block_table[tile * L::kPagesPerTile + pg];
          hopper::mbar_arrive_expect_tx(full_k(s), L::kTileBytes);
#pragma unroll
          for (int c = 0; c < D / 64; ++c) {
#pragma unroll
            for (int pg = 0; pg < L::kPagesPerTile; ++pg) {
              hopper::tma_load_3d(k_tile(s) + c * kBlockN * 128 + pg * kKvPageSize * 128, &k_map, full_k(s), 64 * c,
                                  kv_head, pages[pg] * kKvPageSize);
            }
          }
          hopper::mbar_arrive_expect_tx(full_v(s), L::kTileBytes);
#pragma unroll
          for (int c = 0; c < D / 64; ++c) {
#pragma unroll
            for (int pg = 0; pg < L::kPagesPerTile; ++pg) {
              hopper::tma_load_3d(v_tile(s) + c * kBlockN * 128 + pg * kKvPageSize * 128, &v_map, full_v(s), 64 * c,
                                  kv_head, pages[pg] * kKvPageSize);
            }
          }
        } else {
          mbar_arrive(full_k(s));
          mbar_arrive(full_v(s));
        }
      } else {
        const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
        const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
        char* k_smem = smem + (k_tile(s) - smem_addr);
        char* v_smem = smem + (v_tile(s) - smem_addr);
        for (int idx = lane; idx < kBlockN * kChunks; idx += 32) {
          const int row = idx / kChunks;
          const int chunk = idx % kChunks;
          const int token = tile * kBlockN + row;
          const bool valid = token >= kv_begin && token < ctx && chunk * 8 < hd;
          const int page = valid ? block_table[token / kKvPageSize] : 0;
          const int64_t offset =
              ((static_cast<int64_t>(page) * kKvPageSize + token % kKvPageSize) * p.num_kv_heads + kv_head) * hd +
              chunk * 8;
          const int dst = sw128_offset(kBlockN, row, chunk);
          cp_async_16_zfill(k_smem + dst, valid ? k_base + offset : k_base, valid);
          cp_async_16_zfill(v_smem + dst, valid ? v_base + offset : v_base, valid);
        }
        cp_async_commit();
        cp_async_wait<0>();
        fence_proxy_async_shared();  // cp.async writes (generic proxy) -> wgmma reads (async proxy)
        mbar_arrive(full_k(s));
        mbar_arrive(full_v(s));
      }
      if (it == 0) {
        cp_async_wait<0>();
        fence_proxy_async_shared();
        mbar_arrive(q_bar);
      }
    }
    return;
  }

  // ---------------- consumers ----------------
  hopper::claim_registers<kConsumerRegs>();
  const int cwg = (threadIdx.x - 128) >> 7;  // 0 or 1
  const int warp_in_wg = (threadIdx.x >> 5) & 3;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int t = lane & 3;
  const float scale_log2 = p.scale * kLog2e;
  // Soft-cap in raw-score units: s -> cap_raw · tanh(s · scale_over_cap), cap_raw = cap / scale.
  const bool capped = p.softcap > 0.0f;
  const float cap_raw = capped ? p.softcap / p.scale : 0.0f;
  const float scale_over_cap = capped ? p.scale / p.softcap : 0.0f;
  const int wg_row0 = cwg * 64;
  const int wg_pos_first = pos_first + wg_row0;
  const int wg_pos_last = wg_pos_first + 63;
  const int row_pos[2] = {wg_pos_first + warp_in_wg * 16 + g, wg_pos_first + warp_in_wg * 16 + g + 8};
  // kSelected: this thread's two rows' bitmaps (nullptr past q_len: nothing visible, never stored).
  const uint32_t* row_bits[2] = {nullptr, nullptr};
  if constexpr (kSelected) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = wg_row0 + warp_in_wg * 16 + g + 8 * r;
      if (row < rows_here) row_bits[r] = sel.bits + static_cast<int64_t>(q_begin + m0 + row) * sel.words_per_row;
    }
  }
  const uint32_t q_addr = smem_addr + wg_row0 * 128;  // this warpgroup's 64 rows in each column block
  // Turn-taking: warpgroup w waits on barrier 1 + w before issuing GEMMs and, after issuing, lets
  // the other one go. Warpgroup 1 opens barrier 1 once so that warpgroup 0 goes first; each
  // warpgroup issues num_tiles + 1 times, and warpgroup 1 skips its last hand-over (nobody waits).
  auto take_turn = [&] { hopper::named_barrier_sync(1 + cwg, kConsumerThreads); };
  auto pass_turn = [&] { hopper::named_barrier_arrive(2 - cwg, kConsumerThreads); };

  float s_acc[kSAcc];
  float o[kOAcc];
  uint32_t pa[kPSteps][4];
#pragma unroll
  for (int i = 0; i < kSAcc; ++i) s_acc[i] = 0.0f;
#pragma unroll
  for (int i = 0; i < kOAcc; ++i) o[i] = 0.0f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.0f, 0.0f};

  auto issue_s = [&](int it) {
    const uint32_t k_addr = k_tile(it % kStages);
#pragma unroll
    for (int i = 0; i < kSAcc; ++i) wgmma::fence_operand(s_acc[i]);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t desc_q = wgmma::make_desc_sw128(q_addr + (kk >> 2) * kBlockM * 128 + (kk & 3) * 32, 16, 1024);
      const uint64_t desc_k = wgmma::make_desc_sw128(k_addr + (kk >> 2) * kBlockN * 128 + (kk & 3) * 32, 16, 1024);
      if constexpr (kBlockN == 128) {
        wgmma::mma_m64n128k16_ss(s_acc, desc_q, desc_k, kk > 0 ? 1 : 0);
      } else {
        wgmma::mma_m64n64k16_ss(s_acc, desc_q, desc_k, kk > 0 ? 1 : 0);
      }
    }
    wgmma::commit();
#pragma unroll
    for (int i = 0; i < kSAcc; ++i) wgmma::fence_operand(s_acc[i]);
  };
  auto issue_pv = [&](int it) {
    const uint32_t v_addr = v_tile(it % kStages);
#pragma unroll
    for (int kk = 0; kk < kPSteps; ++kk) {
#pragma unroll
      for (int i = 0; i < 4; ++i) wgmma::fence_operand(pa[kk][i]);
    }
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    wgmma::fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      // 16 keys = two 8-row atoms; head dims span D / 64 column blocks (LBO apart).
      const uint64_t desc_v = wgmma::make_desc_sw128(v_addr + kk * 16 * 128, kBlockN * 128, 1024);
      if constexpr (D == 256) {
        wgmma::mma_m64n256k16_rs_tnspb(o, pa[kk], desc_v);
      } else if constexpr (D == 128) {
        wgmma::mma_m64n128k16_rs_tnspb(o, pa[kk], desc_v);
      } else {
        wgmma::mma_m64n64k16_rs_tnspb(o, pa[kk], desc_v);
      }
    }
    wgmma::commit();
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
  };
  // Masks S(tile) in place, turns it into unnormalised probabilities (fp32) and updates the row
  // statistics; returns O's rescale factors through `correction`. Statistics are kept on raw
  // scores; exp2 works on score · scale · log2(e) − max · scale · log2(e), one FFMA per element.
  auto softmax = [&](int tile, float (&correction)[2]) {
    const int key0 = tile * kBlockN;
    if (capped) {
#pragma unroll
      for (int i = 0; i < kSAcc; ++i) s_acc[i] = cap_raw * tanhf(s_acc[i] * scale_over_cap);
    }
    if constexpr (kSelected) {
      // The tile's 128 bits of each row (four words, two 8-byte loads: rows are an even number of words).
      uint32_t w[2][4];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        w[r][0] = w[r][1] = w[r][2] = w[r][3] = 0u;
        if (row_bits[r] != nullptr) {
          const uint2 lo = *reinterpret_cast<const uint2*>(row_bits[r] + 4 * tile);
          const uint2 hi = *reinterpret_cast<const uint2*>(row_bits[r] + 4 * tile + 2);
          w[r][0] = lo.x;
          w[r][1] = lo.y;
          w[r][2] = hi.x;
          w[r][3] = hi.y;
        }
      }
#pragma unroll
      for (int j = 0; j < 16; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int bit = 8 * (j & 3) + 2 * t + (e & 1);  // column 8j + 2t + (e & 1) lies in word j / 4
          if (((w[e >> 1][j >> 2] >> bit) & 1u) == 0u) s_acc[4 * j + e] = -INFINITY;
        }
      }
    }
    const bool need_mask = !kSelected && (key0 + kBlockN - 1 > wg_pos_first ||
                           (p.sliding_window > 0 && key0 <= wg_pos_last - p.sliding_window) || key0 < kv_begin ||
                           key0 + kBlockN > kv_end);
    if (need_mask) {
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = key0 + 8 * j + 2 * t + (e & 1);
          const int pos = row_pos[e >> 1];
          const bool visible = key <= pos && key < kv_end && key >= kv_begin &&
                               (p.sliding_window <= 0 || key > pos - p.sliding_window);
          if (!visible) s_acc[4 * j + e] = -INFINITY;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float tile_max = -INFINITY;
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
        tile_max = fmaxf(tile_max, fmaxf(s_acc[4 * j + 2 * r], s_acc[4 * j + 2 * r + 1]));
      }
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[r], tile_max);
      // A row with no visible key yet keeps max −inf; 0 stands in so that no −inf − (−inf) occurs.
      const float max_scaled = new_max == -INFINITY ? 0.0f : new_max * scale_log2;
      correction[r] = fast_exp2(row_max[r] * scale_log2 - max_scaled);
      row_max[r] = new_max;
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kBlockN / 8; ++j) {
        s_acc[4 * j + 2 * r] = fast_exp2(fmaf(s_acc[4 * j + 2 * r], scale_log2, -max_scaled));
        s_acc[4 * j + 2 * r + 1] = fast_exp2(fmaf(s_acc[4 * j + 2 * r + 1], scale_log2, -max_scaled));
        sum += s_acc[4 * j + 2 * r] + s_acc[4 * j + 2 * r + 1];
      }
      row_sum[r] = row_sum[r] * correction[r] + sum;
    }
  };
  auto pack_p = [&] {
#pragma unroll
    for (int kk = 0; kk < kPSteps; ++kk) {
      pa[kk][0] = pack_bf16x2(s_acc[8 * kk + 0], s_acc[8 * kk + 1]);
      pa[kk][1] = pack_bf16x2(s_acc[8 * kk + 2], s_acc[8 * kk + 3]);
      pa[kk][2] = pack_bf16x2(s_acc[8 * kk + 4], s_acc[8 * kk + 5]);
      pa[kk][3] = pack_bf16x2(s_acc[8 * kk + 6], s_acc[8 * kk + 7]);
    }
  };

  if (cwg == 1) hopper::named_barrier_arrive(1, kConsumerThreads);
  mbar_wait(q_bar, 0);
  {
    mbar_wait(full_k(0), 0);
    take_turn();
    issue_s(0);
    pass_turn();
    wgmma::wait<0>();
#pragma unroll
    for (int i = 0; i < kSAcc; ++i) wgmma::fence_operand(s_acc[i]);
    float correction[2];
    softmax(tile_begin, correction);  // O is still zero: nothing to rescale
    pack_p();
  }
  for (int it = 1; it < num_tiles; ++it) {
    const int prev = it - 1;
    mbar_wait(full_k(it % kStages), static_cast<uint32_t>((it / kStages) & 1));
    mbar_wait(full_v(prev % kStages), static_cast<uint32_t>((prev / kStages) & 1));
    take_turn();
    issue_s(it);
    issue_pv(prev);
    pass_turn();
    wgmma::wait<1>();  // S(it) retired; P·V(prev) may still run under the softmax
#pragma unroll
    for (int i = 0; i < kSAcc; ++i) wgmma::fence_operand(s_acc[i]);
    float correction[2];
    softmax(tile_begin + it, correction);
    wgmma::wait<0>();
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
    if (lane == 0) mbar_arrive(empty(prev % kStages));
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
    pack_p();
  }
  {
    const int last = num_tiles - 1;
    mbar_wait(full_v(last % kStages), static_cast<uint32_t>((last / kStages) & 1));
    take_turn();
    issue_pv(last);
    if (cwg == 0) pass_turn();
    wgmma::wait<0>();
#pragma unroll
    for (int i = 0; i < kOAcc; ++i) wgmma::fence_operand(o[i]);
  }

  auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = wg_row0 + warp_in_wg * 16 + g + 8 * r;
    if (row < rows_here) {
      __nv_bfloat16* dst = out + (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * hd;
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        if (8 * j >= hd) break;
        *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j + 2 * t) =
            __floats2bfloat162_rn(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
      }
    }
  }
#else
  (void)p;
  (void)k_map;
  (void)v_map;
  (void)sel;
  __trap();  // never launched: this translation unit is built for sm_90a only
#endif
}

// cuTensorMapEncodeTiled, reached through cudart (the program links no libcuda).
using EncodeTiledFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                   const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                   CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

EncodeTiledFn encode_tiled_fn() {
  static const EncodeTiledFn fn = [] {
    void* ptr = nullptr;
    cudaDriverEntryPointQueryResult query = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &ptr, 12000, cudaEnableDefault, &query) !=
            cudaSuccess ||
        query != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeTiledFn>(nullptr);
    }
    return reinterpret_cast<EncodeTiledFn>(ptr);
  }();
  return fn;
}

// A 3-D view [tokens][num_kv_heads][D] of a K or V pool with [64 tokens][1 head][64 dims] boxes.
// The pool's page count is not in the params: the token extent is set to the largest the encoder
// takes. It only bounds out-of-range fill, which never happens: the kernel asks for pages named by
// the block table, inside the pool by the params' contract.
cudaError_t make_pool_map(const void* pool, int num_kv_heads, int head_dim, CUtensorMap* map) {
  const EncodeTiledFn encode = encode_tiled_fn();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(num_kv_heads),
                              cuuint64_t{1} << 31};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(head_dim) * 2,
                                 static_cast<cuuint64_t>(num_kv_heads) * head_dim * 2};
  const cuuint32_t box[3] = {64, 1, static_cast<cuuint32_t>(kKvPageSize)};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult result = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(pool), dims, strides,
                                 box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                 CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return result == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <int D, bool kSelected>
cudaError_t launch_for_dim(const FlashPrefillParams& p, const PrefillSelection& sel, cudaStream_t stream) {
  constexpr int kSmem = TmaLayout<D>::kTotalBytes;
  static_assert(kSmem <= 227 * 1024, "shared memory per block");
  static const cudaError_t attribute_status = cudaFuncSetAttribute(
      flash_prefill_sm90_kernel<D, kSelected>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  alignas(64) CUtensorMap k_map;
  alignas(64) CUtensorMap v_map;
  if (p.head_dim == D) {  // the kernel uses the maps only then (whole tiles by TMA)
    cudaError_t status = make_pool_map(p.k_cache, p.num_kv_heads, D, &k_map);
    if (status != cudaSuccess) return status;
    status = make_pool_map(p.v_cache, p.num_kv_heads, D, &v_map);
    if (status != cudaSuccess) return status;
  } else {
    k_map = CUtensorMap{};
    v_map = CUtensorMap{};
  }
  const dim3 grid((p.max_query_len + kBlockM - 1) / kBlockM, p.num_q_heads, p.num_seqs);
  flash_prefill_sm90_kernel<D, kSelected><<<grid, kThreads, kSmem, stream>>>(p, k_map, v_map, sel);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_flash_prefill_sm90(const FlashPrefillParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;  // an empty grid is a launch error
  if (p.softcap < 0.0f) return cudaErrorInvalidValue;
  switch (attention_padded_dim(p.head_dim)) {
    case 64: return launch_for_dim<64, false>(p, PrefillSelection{}, stream);
    case 128: return launch_for_dim<128, false>(p, PrefillSelection{}, stream);
    case 256: return launch_for_dim<256, false>(p, PrefillSelection{}, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_flash_prefill_sm90_selected(const FlashPrefillParams& p, const PrefillSelection& sel,
                                               cudaStream_t stream) {
  if (p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  if (sel.bits == nullptr || sel.last == nullptr || sel.words_per_row <= 0 || sel.words_per_row % 4 != 0) {
    return cudaErrorInvalidValue;
  }
  switch (attention_padded_dim(p.head_dim)) {
    case 64: return launch_for_dim<64, true>(p, sel, stream);
    case 128: return launch_for_dim<128, true>(p, sel, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longbow::kernels
