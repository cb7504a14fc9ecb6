// Flash prefill, FlashAttention-2 style on mma.sync (sm_80+ tensor-core path; runs on sm_90a).
//
// Block: kBlockM = 128 query rows of one (sequence, query head), 8 warps of 16 rows each. KV tiles are
// one page (64 tokens) of the block's KV head, double-buffered in shared memory by cp.async. Per tile
// each warp computes S = Q·Kᵀ (16×64, fp32), applies the causal / sliding-window mask on boundary
// tiles, updates the running max and sum (log2 domain), and accumulates O += P·V with P rounded to
// bf16. Shared-memory rows are XOR-swizzled in 16-byte chunks (chunk ^ row % 8) so that ldmatrix is
// conflict-free. Grid: (query tiles, query heads, sequences); tiles past a sequence's q_len exit.
//
// D is the padded head size (64, 128 or 256, kernels/common/paged_kv.h); a smaller head_dim loads
// zeros into the dims past it (they add 0 to every product) and stores only its own dims. A
// soft-cap (params.softcap > 0) maps each scaled score x through cap · tanh(x / cap).
//
// kSelected = true is the selection-masked variant (launch_flash_prefill_sm80_selected, DSA sparse
// prefill): a key is visible to a row iff the row's bitmap has its bit, the block's keys run over
// [0, 1 + the largest last[] of its rows), and a warp none of whose rows selects a key of the tile
// skips its arithmetic.
#include <cuda_bf16.h>

#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/common/device_utils.cuh"
#include "kernels/flash_prefill/params.h"
#include "kernels/flash_prefill/flash_prefill_variants.h"

namespace longbow::kernels {
namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = kKvPageSize;
constexpr int kWarps = kBlockM / 16;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
struct Smem {
  static constexpr int kRowBytes = D * 2;
  static constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKvTileBytes = kBlockN * kRowBytes;
  // Q, then two stages of (K, V).
  static constexpr int kTotalBytes = kQBytes + 4 * kKvTileBytes;
};

__device__ __forceinline__ uint32_t swizzled(uint32_t base, int row, int chunk, int row_bytes) {
  return base + static_cast<uint32_t>(row * row_bytes + ((chunk ^ (row & 7)) << 4));
}

template <int D>
__device__ __forceinline__ char* swizzled_ptr(char* base, int row, int chunk) {
  return base + row * (D * 2) + ((chunk ^ (row & 7)) << 4);
}

// Loads one page of K and V for `kv_head` into a stage; rows outside [valid_begin, valid_end) and
// dims past head_dim are zero-filled (their memory may hold anything, NaN included, and 0·NaN would
// poison O). A page wholly outside the valid range is not read at all, so its block-table entry may
// be anything.
template <int D>
__device__ __forceinline__ void load_kv_tile(const FlashPrefillParams& p, char* k_smem, char* v_smem, int page,
                                             int tile_token0, int valid_begin, int valid_end, int kv_head) {
  const int hd = p.head_dim;
  constexpr int kChunks = Smem<D>::kChunks;
  const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
  for (int idx = threadIdx.x; idx < kBlockN * kChunks; idx += kThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const int token = tile_token0 + row;
    const bool valid = token >= valid_begin && token < valid_end && chunk * 8 < hd;
    const int64_t offset =
        ((static_cast<int64_t>(page) * kKvPageSize + row) * p.num_kv_heads + kv_head) * hd + chunk * 8;
    cp_async_16_zfill(swizzled_ptr<D>(k_smem, row, chunk), valid ? k_base + offset : k_base, valid);
    cp_async_16_zfill(swizzled_ptr<D>(v_smem, row, chunk), valid ? v_base + offset : v_base, valid);
  }
}

template <int D, bool kSelected>
__global__ void __launch_bounds__(kThreads, 1) flash_prefill_kernel(FlashPrefillParams p, PrefillSelection sel) {
  extern __shared__ __align__(128) char smem[];
  constexpr int kRowBytes = Smem<D>::kRowBytes;
  constexpr int kChunks = Smem<D>::kChunks;
  constexpr int kDTiles = D / 8;    // n8 tiles of the output
  constexpr int kDChunks = D / 16;  // k16 steps of Q·Kᵀ

  const int seq = blockIdx.z;
  const int head = blockIdx.y;
  // Heaviest (latest) query tiles first: causal work grows with the tile index.
  const int m_tile = static_cast<int>(gridDim.x) - 1 - static_cast<int>(blockIdx.x);
  const int q_begin = p.query_start[seq];
  const int q_len = p.query_start[seq + 1] - q_begin;
  const int m0 = m_tile * kBlockM;
  if (m0 >= q_len) return;
  const int kv_head = head / (p.num_q_heads / p.num_kv_heads);
  const int rows_here = min(kBlockM, q_len - m0);
  const int hd = p.head_dim;  // <= D; row stride of q, out and the pools
  int kv_end = 0, kv_begin = 0, pos_first = 0;
  if constexpr (kSelected) {  // context_lens is not read: the selections bound the keys
    __shared__ int block_last;
    if (threadIdx.x == 0) block_last = -1;
    __syncthreads();
    if (threadIdx.x < rows_here) atomicMax(&block_last, sel.last[q_begin + m0 + threadIdx.x]);
    __syncthreads();
    kv_end = block_last + 1;
  } else {
    const int ctx = p.context_lens[seq];
    pos_first = ctx - q_len + m0;                    // position of the block's first query row
    const int pos_last = pos_first + rows_here - 1;  // and of its last valid one
    kv_end = min(ctx, pos_last + 1);
    kv_begin = p.sliding_window > 0 ? max(0, pos_first - p.sliding_window + 1) : 0;
  }
  const int tile_begin = kv_begin / kBlockN;
  const int tile_end = (kv_end + kBlockN - 1) / kBlockN;
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages_per_seq;

  char* q_smem = smem;
  char* kv_smem = smem + Smem<D>::kQBytes;
  auto k_stage = [&](int s) { return kv_smem + s * 2 * Smem<D>::kKvTileBytes; };
  auto v_stage = [&](int s) { return kv_smem + s * 2 * Smem<D>::kKvTileBytes + Smem<D>::kKvTileBytes; };

  // Q tile (rows past q_len zero-filled).
  {
    const auto* q_base = static_cast<const __nv_bfloat16*>(p.q);
    for (int idx = threadIdx.x; idx < kBlockM * kChunks; idx += kThreads) {
      const int row = idx / kChunks;
      const int chunk = idx % kChunks;
      const bool valid = row < rows_here && chunk * 8 < hd;
      const int64_t offset = (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * hd + chunk * 8;
      cp_async_16_zfill(swizzled_ptr<D>(q_smem, row, chunk), valid ? q_base + offset : q_base, valid);
    }
  }
  if (tile_begin < tile_end) {  // a selected block may select nothing
    load_kv_tile<D>(p, k_stage(0), v_stage(0), block_table[tile_begin], tile_begin * kBlockN, kv_begin, kv_end,
                    kv_head);
  }
  cp_async_commit();

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;  // accumulator row within the warp's 16 (and g + 8)
  const int t = lane & 3;   // accumulator column pair
  const float scale_log2 = p.scale * kLog2e;
  // Soft-cap in raw-score units: s -> cap_raw · tanh(s · scale_over_cap), cap_raw = cap / scale, so
  // that the usual s · scale · log2(e) then gives cap · tanh(s · scale / cap) · log2(e). A separate
  // pass under one uniform branch: the uncapped path stays the plain loop (a select inside it would
  // be if-converted into a tanh per score).
  const bool capped = p.softcap > 0.0f;
  const float cap_raw = capped ? p.softcap / p.scale : 0.0f;
  const float scale_over_cap = capped ? p.scale / p.softcap : 0.0f;
  // Positions of this thread's two rows; rows past q_len get positions past the context and are
  // never stored.
  const int row_pos[2] = {pos_first + warp * 16 + g, pos_first + warp * 16 + g + 8};
  const int warp_pos_first = pos_first + warp * 16;
  const int warp_pos_last = warp_pos_first + 15;
  // kSelected: this thread's two rows' bitmaps (nullptr past q_len: nothing visible, never stored).
  const uint32_t* row_bits[2] = {nullptr, nullptr};
  if constexpr (kSelected) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = warp * 16 + g + 8 * r;
      if (row < rows_here) row_bits[r] = sel.bits + static_cast<int64_t>(q_begin + m0 + row) * sel.words_per_row;
    }
  }

  float o[kDTiles][4];
#pragma unroll
  for (int i = 0; i < kDTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_max[2] = {-FLT_MAX, -FLT_MAX};  // finite sentinel: exp2 of (sentinel - max) underflows to 0
  float row_sum[2] = {0.0f, 0.0f};          // per-thread partial sums; quad-reduced at the end

  const uint32_t q_addr = smem_u32(q_smem);
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int stage = (tile - tile_begin) & 1;
    if (tile + 1 < tile_end) {
      load_kv_tile<D>(p, k_stage(stage ^ 1), v_stage(stage ^ 1), block_table[tile + 1], (tile + 1) * kBlockN,
                      kv_begin, kv_end, kv_head);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    const int key0 = tile * kBlockN;
    // kSelected: this tile's 64 selection bits of each of the thread's rows (two aligned words).
    uint64_t mask[2] = {0, 0};
    if constexpr (kSelected) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        if (row_bits[r] != nullptr) {
          const uint2 w = *reinterpret_cast<const uint2*>(row_bits[r] + 2 * tile);
          mask[r] = (static_cast<uint64_t>(w.y) << 32) | w.x;
        }
      }
    }
    // A warp with no valid rows, or whose rows all precede the tile (causal), all see none of it
    // (window) or select none of it, skips it.
    const bool warp_skips =
        kSelected ? !__any_sync(0xffffffffu, (mask[0] | mask[1]) != 0)
                  : warp * 16 >= rows_here || key0 > warp_pos_last ||
                        (p.sliding_window > 0 && key0 + kBlockN - 1 <= warp_pos_first - p.sliding_window);
    if (!warp_skips) {
      const uint32_t k_addr = smem_u32(k_stage(stage));
      const uint32_t v_addr = smem_u32(v_stage(stage));
      float s[kBlockN / 8][4];
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kDChunks; ++kk) {
        uint32_t a[4];
        ldmatrix_x4(a, swizzled(q_addr, warp * 16 + (lane & 15), kk * 2 + (lane >> 4), kRowBytes));
#pragma unroll
        for (int np = 0; np < kBlockN / 16; ++np) {
          uint32_t b[4];
          ldmatrix_x4(b, swizzled(k_addr, np * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1),
                                  kRowBytes));
          mma_bf16_16816(s[2 * np], a, b[0], b[1]);
          mma_bf16_16816(s[2 * np + 1], a, b[2], b[3]);
        }
      }

      if (capped) {
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[nt][e] = cap_raw * tanhf(s[nt][e] * scale_over_cap);
        }
      }

      // Mask only where the tile crosses a row's causal edge or window start.
      const bool need_mask = kSelected || key0 + kBlockN - 1 > warp_pos_first ||
                             (p.sliding_window > 0 && key0 <= warp_pos_last - p.sliding_window) || key0 < kv_begin ||
                             key0 + kBlockN > kv_end;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          float v = s[nt][e] * scale_log2;
          if (need_mask) {
            const int column = nt * 8 + 2 * t + (e & 1);
            const int key = key0 + column;
            const int pos = row_pos[e >> 1];
            const bool visible = kSelected ? ((mask[e >> 1] >> column) & 1u) != 0
                                           : key <= pos && key < kv_end && key >= kv_begin &&
                                                 (p.sliding_window <= 0 || key > pos - p.sliding_window);
            v = visible ? v : -INFINITY;
          }
          s[nt][e] = v;
        }
      }

      // Online softmax (log2 domain) for the thread's two rows.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float tile_max = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) tile_max = fmaxf(tile_max, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
        tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
        const float new_max = fmaxf(row_max[r], tile_max);  // finite: row_max starts at -FLT_MAX
        const float correction = fast_exp2(row_max[r] - new_max);
        row_max[r] = new_max;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kBlockN / 8; ++nt) {
          s[nt][2 * r] = fast_exp2(s[nt][2 * r] - new_max);
          s[nt][2 * r + 1] = fast_exp2(s[nt][2 * r + 1] - new_max);
          sum += s[nt][2 * r] + s[nt][2 * r + 1];
        }
        row_sum[r] = row_sum[r] * correction + sum;
#pragma unroll
        for (int dt = 0; dt < kDTiles; ++dt) {
          o[dt][2 * r] *= correction;
          o[dt][2 * r + 1] *= correction;
        }
      }

      // O += P·V, P from the score accumulators (C layout of two n8 tiles == A layout of one k16).
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        uint32_t a[4];
        a[0] = pack_bf16x2(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack_bf16x2(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
        for (int dp = 0; dp < D / 16; ++dp) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, swizzled(v_addr, kk * 16 + (lane & 7) + (((lane >> 3) & 1) << 3),
                                        dp * 2 + (lane >> 4), kRowBytes));
          mma_bf16_16816(o[2 * dp], a, b[0], b[1]);
          mma_bf16_16816(o[2 * dp + 1], a, b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's prefetch overwrites this stage
  }
  cp_async_wait<0>();  // the Q copy when no tile ran

  // Normalise and store the valid rows (0 for a row that sees no key).
  auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = warp * 16 + g + 8 * r;
    if (row < rows_here) {
      __nv_bfloat16* dst = out + (static_cast<int64_t>(q_begin + m0 + row) * p.num_q_heads + head) * hd;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        if (dt * 8 >= hd) break;
        *reinterpret_cast<__nv_bfloat162*>(dst + dt * 8 + 2 * t) =
            __floats2bfloat162_rn(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
      }
    }
  }
}

template <int D, bool kSelected>
cudaError_t launch_for_dim(const FlashPrefillParams& p, const PrefillSelection& sel, cudaStream_t stream) {
  constexpr int kSmem = Smem<D>::kTotalBytes;
  // Set once per process, head_dim and variant (thread-safe static initialisation).
  static const cudaError_t attribute_status =
      cudaFuncSetAttribute(flash_prefill_kernel<D, kSelected>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid((p.max_query_len + kBlockM - 1) / kBlockM, p.num_q_heads, p.num_seqs);
  flash_prefill_kernel<D, kSelected><<<grid, kThreads, kSmem, stream>>>(p, sel);
  return cudaGetLastError();
}

bool valid_params(const FlashPrefillParams& p) {
  return p.num_seqs >= 0 && p.num_q_heads > 0 && p.num_kv_heads > 0 && p.num_q_heads % p.num_kv_heads == 0 &&
         p.max_query_len >= 0 && p.num_seqs <= 65535 && p.num_q_heads <= 65535 && p.softcap >= 0.0f &&
         attention_padded_dim(p.head_dim) != 0;
}

// Which implementation launch_flash_prefill uses: LONGBOW_PREFILL_KERNEL=sm80|sm90 forces one;
// otherwise the TMA/wgmma kernel on compute capability 9.x, mma.sync elsewhere.
enum class Variant { kSm80, kSm90 };

Variant choose_variant() {
  const char* forced = std::getenv("LONGBOW_PREFILL_KERNEL");
  if (forced != nullptr && std::strcmp(forced, "sm80") == 0) return Variant::kSm80;
  if (forced != nullptr && std::strcmp(forced, "sm90") == 0) return Variant::kSm90;
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    return Variant::kSm80;
  }
  return major == 9 ? Variant::kSm90 : Variant::kSm80;
}

}  // namespace

cudaError_t launch_flash_prefill_sm80(const FlashPrefillParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  if (!valid_params(p)) return cudaErrorInvalidValue;
  switch (attention_padded_dim(p.head_dim)) {
    case 64: return launch_for_dim<64, false>(p, PrefillSelection{}, stream);
    case 128: return launch_for_dim<128, false>(p, PrefillSelection{}, stream);
    case 256: return launch_for_dim<256, false>(p, PrefillSelection{}, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_flash_prefill_sm80_selected(const FlashPrefillParams& p, const PrefillSelection& selection,
                                               cudaStream_t stream) {
  if (p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  if (!valid_params(p) || selection.bits == nullptr || selection.last == nullptr || selection.words_per_row <= 0 ||
      selection.words_per_row % 4 != 0) {
    return cudaErrorInvalidValue;
  }
  switch (attention_padded_dim(p.head_dim)) {  // DSA layers: head_dim <= 128 (cuda_support.cc)
    case 64: return launch_for_dim<64, true>(p, selection, stream);
    case 128: return launch_for_dim<128, true>(p, selection, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t launch_flash_prefill(const FlashPrefillParams& p, cudaStream_t stream) {
  if (p.num_seqs == 0 || p.max_query_len == 0) return cudaSuccess;
  if (!valid_params(p)) return cudaErrorInvalidValue;
  static const Variant variant = choose_variant();  // one device per process in longbow
  if (variant == Variant::kSm90) return launch_flash_prefill_sm90(p, stream);
  return launch_flash_prefill_sm80(p, stream);
}

}  // namespace longbow::kernels
