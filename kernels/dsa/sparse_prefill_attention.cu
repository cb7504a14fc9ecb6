// Sparse attention for prefill steps (contract in kernels/dsa/params.h; reference
// cpu::dsa_sparse_attention): flash attention over each row's causal context in which a key is
// visible only if the row selected it.
//
// Why: the gather kernel (sparse_attention.cu) reads every row's topk K/V rows on its own, so a
// chunk of R rows at top-2048 reads R · 2048 · Hkv · D · 4 bytes (8.4 MB per row at the 8B shape)
// however much the rows' selections overlap. Here a tile of 128 query rows of one sequence reads
// each K/V page once for all its rows, so the cost is at most that of dense causal flash attention.
//
// Two kernels:
//  1. selection_kernel (block per row): the row's indices → a bitmap over logical positions
//     [0, max_pages · 64) (bit j of word j / 32 set iff j is selected) and the row's largest selected
//     index (-1 for none).
//  2. On compute capability 9.x the Hopper flash prefill kernel with its causal mask replaced by the
//     bitmaps (launch_flash_prefill_sm90_selected, kernels/flash_prefill/flash_prefill_sm90.cu);
//     elsewhere, or when asked, masked_flash_kernel here: the mma.sync flash prefill (kernels/flash_prefill/flash_prefill.cu) with
//     its causal mask replaced by the rows' bitmaps. Block = 128 query rows of one (sequence, query
//     head), 8 warps of 16 rows; KV tiles are one page (64 tokens) double-buffered by cp.async; keys
//     run over [0, 1 + the largest index any of the block's rows selected), so the causal bound
//     comes from the selection itself. A warp none of whose rows selects a key of the tile skips its
//     arithmetic. Softmax in fp32 (log2 domain), P rounded to bf16 for P·V as in flash prefill.
#include <cuda_bf16.h>

#include <cfloat>
#include <cstdint>

#include <cstdlib>
#include <cstring>

#include "kernels/common/device_utils.cuh"
#include "kernels/dsa/params.h"
#include "kernels/flash_prefill/flash_prefill_variants.h"

namespace longbow::kernels {
namespace {

constexpr int kBlockM = 128;
constexpr int kBlockN = kDsaPageSize;  // one page per KV tile; its 64 bits are two bitmap words
constexpr int kWarps = kBlockM / 16;
constexpr int kThreads = kWarps * 32;
constexpr int kSelectThreads = 256;
constexpr float kLog2e = 1.4426950408889634f;

// Workspace: the bitmaps [rows, words_per_row] u32, then last[rows] i32 (largest selected index).
struct Selection {
  uint32_t* bits;
  int* last;
};

// Two words per page, rounded up to a multiple of four (the Hopper kernel reads 128-key tiles); the
// padding words are zeroed with the rest, so a tile past the row's pages selects nothing.
__host__ __device__ inline int words_per_row(int max_pages) { return (max_pages + 1) / 2 * 4; }

__host__ __device__ inline Selection carve(void* base, int rows, int max_pages) {
  Selection s;
  s.bits = static_cast<uint32_t*>(base);
  s.last = reinterpret_cast<int*>(s.bits + static_cast<int64_t>(rows) * words_per_row(max_pages));
  return s;
}

__global__ void __launch_bounds__(kSelectThreads) selection_kernel(DsaSparseAttentionParams p) {
  const int row = blockIdx.x;
  const int words = words_per_row(p.max_pages);
  Selection sel = carve(p.workspace, p.rows, p.max_pages);
  uint32_t* bits = sel.bits + static_cast<int64_t>(row) * words;
  for (int w = threadIdx.x; w < words; w += kSelectThreads) bits[w] = 0u;
  __syncthreads();  // the zeros are visible to the block's atomics below
  const int* indices = p.indices + static_cast<int64_t>(row) * p.topk;
  int last = -1;
  for (int i = threadIdx.x; i < p.topk; i += kSelectThreads) {
    const int j = indices[i];
    if (j < 0) continue;
    atomicOr(bits + (j >> 5), 1u << (j & 31));
    last = max(last, j);
  }
  __shared__ int block_last;
  if (threadIdx.x == 0) block_last = -1;
  __syncthreads();
  atomicMax(&block_last, last);
  __syncthreads();
  if (threadIdx.x == 0) sel.last[row] = block_last;
}

template <int D>
struct Smem {
  static constexpr int kRowBytes = D * 2;
  static constexpr int kChunks = D / 8;  // 16-byte chunks per row
  static constexpr int kQBytes = kBlockM * kRowBytes;
  static constexpr int kKvTileBytes = kBlockN * kRowBytes;
  static constexpr int kTotalBytes = kQBytes + 4 * kKvTileBytes;  // Q, then two stages of (K, V)
};

__device__ __forceinline__ uint32_t swizzled(uint32_t base, int row, int chunk, int row_bytes) {
  return base + static_cast<uint32_t>(row * row_bytes + ((chunk ^ (row & 7)) << 4));
}

template <int D>
__device__ __forceinline__ char* swizzled_ptr(char* base, int row, int chunk) {
  return base + row * (D * 2) + ((chunk ^ (row & 7)) << 4);
}

// One page of K and V of `kv_head` into a stage; tokens at or past kv_end are zero-filled (their
// slots may hold anything, NaN included, and 0·NaN would poison O).
template <int D>
__device__ __forceinline__ void load_kv_tile(const DsaSparseAttentionParams& p, char* k_smem, char* v_smem, int page,
                                             int tile_token0, int kv_end, int kv_head) {
  constexpr int kChunks = Smem<D>::kChunks;
  const auto* k_base = static_cast<const __nv_bfloat16*>(p.k_cache);
  const auto* v_base = static_cast<const __nv_bfloat16*>(p.v_cache);
  for (int idx = threadIdx.x; idx < kBlockN * kChunks; idx += kThreads) {
    const int row = idx / kChunks;
    const int chunk = idx % kChunks;
    const bool valid = tile_token0 + row < kv_end;
    const int64_t offset = ((static_cast<int64_t>(page) * kBlockN + row) * p.kv_heads + kv_head) * D + chunk * 8;
    cp_async_16_zfill(swizzled_ptr<D>(k_smem, row, chunk), valid ? k_base + offset : k_base, valid);
    cp_async_16_zfill(swizzled_ptr<D>(v_smem, row, chunk), valid ? v_base + offset : v_base, valid);
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads, 1) masked_flash_kernel(DsaSparseAttentionParams p) {
  extern __shared__ __align__(128) char smem[];
  constexpr int kRowBytes = Smem<D>::kRowBytes;
  constexpr int kChunks = Smem<D>::kChunks;
  constexpr int kDTiles = D / 8;    // n8 tiles of the output
  constexpr int kDChunks = D / 16;  // k16 steps of Q·Kᵀ
  __shared__ int block_last;

  const int seq = blockIdx.z;
  const int head = blockIdx.y;
  const int q_begin = p.query_start[seq];
  const int q_len = p.query_start[seq + 1] - q_begin;
  const int m0 = static_cast<int>(blockIdx.x) * kBlockM;
  if (m0 >= q_len) return;
  const int rows_here = min(kBlockM, q_len - m0);
  const int kv_head = head / (p.q_heads / p.kv_heads);
  const int* block_table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages;
  const Selection sel = carve(p.workspace, p.rows, p.max_pages);
  const int words = words_per_row(p.max_pages);

  if (threadIdx.x == 0) block_last = -1;
  __syncthreads();
  if (threadIdx.x < rows_here) atomicMax(&block_last, sel.last[q_begin + m0 + threadIdx.x]);
  __syncthreads();
  const int kv_end = block_last + 1;
  const int tile_end = (kv_end + kBlockN - 1) / kBlockN;

  char* q_smem = smem;
  char* kv_smem = smem + Smem<D>::kQBytes;
  auto k_stage = [&](int s) { return kv_smem + s * 2 * Smem<D>::kKvTileBytes; };
  auto v_stage = [&](int s) { return kv_smem + s * 2 * Smem<D>::kKvTileBytes + Smem<D>::kKvTileBytes; };

  {  // Q tile (rows past q_len zero-filled).
    const auto* q_base = static_cast<const __nv_bfloat16*>(p.q);
    for (int idx = threadIdx.x; idx < kBlockM * kChunks; idx += kThreads) {
      const int row = idx / kChunks;
      const int chunk = idx % kChunks;
      const bool valid = row < rows_here;
      const int64_t offset = (static_cast<int64_t>(q_begin + m0 + row) * p.q_heads + head) * D + chunk * 8;
      cp_async_16_zfill(swizzled_ptr<D>(q_smem, row, chunk), valid ? q_base + offset : q_base, valid);
    }
  }
  if (tile_end > 0) load_kv_tile<D>(p, k_stage(0), v_stage(0), block_table[0], 0, kv_end, kv_head);
  cp_async_commit();

  const int warp = threadIdx.x >> 5;
  const int lane = threadIdx.x & 31;
  const int g = lane >> 2;  // accumulator row within the warp's 16 (and g + 8)
  const int t = lane & 3;   // accumulator column pair
  const float scale_log2 = p.scale * kLog2e;
  // This thread's two rows' bitmaps (nullptr past q_len: they select nothing and are never stored).
  const uint32_t* row_bits[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = warp * 16 + g + 8 * r;
    row_bits[r] = row < rows_here ? sel.bits + static_cast<int64_t>(q_begin + m0 + row) * words : nullptr;
  }

  float o[kDTiles][4];
#pragma unroll
  for (int i = 0; i < kDTiles; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float row_max[2] = {-FLT_MAX, -FLT_MAX};  // finite sentinel: exp2 of (-inf - max) is 0, never NaN
  float row_sum[2] = {0.0f, 0.0f};          // per-thread partial sums; quad-reduced at the end

  const uint32_t q_addr = smem_u32(q_smem);
  for (int tile = 0; tile < tile_end; ++tile) {
    const int stage = tile & 1;
    // This tile's 64 selection bits of each of the thread's rows (two aligned words).
    uint64_t mask[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mask[r] = 0;
      if (row_bits[r] != nullptr) {
        const uint2 w = *reinterpret_cast<const uint2*>(row_bits[r] + 2 * tile);
        mask[r] = (static_cast<uint64_t>(w.y) << 32) | w.x;
      }
    }
    if (tile + 1 < tile_end) {
      load_kv_tile<D>(p, k_stage(stage ^ 1), v_stage(stage ^ 1), block_table[tile + 1], (tile + 1) * kBlockN, kv_end,
                      kv_head);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    if (__any_sync(0xffffffffu, (mask[0] | mask[1]) != 0)) {
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

      // The selection mask: key key0 + c is visible to row r iff bit c of mask[r] is set.
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int column = nt * 8 + 2 * t + (e & 1);
          const bool visible = (mask[e >> 1] >> column) & 1u;
          s[nt][e] = visible ? s[nt][e] * scale_log2 : -INFINITY;
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

  // Normalise and store the valid rows (0 for a row that selected nothing).
  auto* out = static_cast<__nv_bfloat16*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int row = warp * 16 + g + 8 * r;
    if (row < rows_here) {
      __nv_bfloat16* dst = out + (static_cast<int64_t>(q_begin + m0 + row) * p.q_heads + head) * D;
#pragma unroll
      for (int dt = 0; dt < kDTiles; ++dt) {
        *reinterpret_cast<__nv_bfloat162*>(dst + dt * 8 + 2 * t) =
            __floats2bfloat162_rn(o[dt][2 * r] * inv, o[dt][2 * r + 1] * inv);
      }
    }
  }
}

template <int D>
cudaError_t launch_mma_sync(const DsaSparseAttentionParams& p, int max_rows_per_seq, cudaStream_t stream) {
  constexpr int kSmem = Smem<D>::kTotalBytes;
  // Set once per process and head_dim (thread-safe static initialisation).
  static const cudaError_t attribute_status =
      cudaFuncSetAttribute(masked_flash_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attribute_status != cudaSuccess) return attribute_status;
  const dim3 grid((max_rows_per_seq + kBlockM - 1) / kBlockM, p.q_heads, p.seqs);
  masked_flash_kernel<D><<<grid, kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_hopper(const DsaSparseAttentionParams& p, int max_rows_per_seq, cudaStream_t stream) {
  FlashPrefillParams f;
  f.q = p.q;
  f.k_cache = p.k_cache;
  f.v_cache = p.v_cache;
  f.query_start = p.query_start;
  f.block_tables = p.block_tables;
  f.out = p.out;
  f.num_seqs = p.seqs;
  f.num_q_heads = p.q_heads;
  f.num_kv_heads = p.kv_heads;
  f.head_dim = p.head_dim;
  f.max_pages_per_seq = p.max_pages;
  f.max_query_len = max_rows_per_seq;
  f.max_context_len = p.max_pages * kDsaPageSize;
  f.scale = p.scale;
  const Selection sel = carve(p.workspace, p.rows, p.max_pages);
  PrefillSelection mask;
  mask.bits = sel.bits;
  mask.last = sel.last;
  mask.words_per_row = words_per_row(p.max_pages);
  return launch_flash_prefill_sm90_selected(f, mask, stream);
}

// kAuto: the Hopper kernel on compute capability 9.x unless LONGBOW_PREFILL_KERNEL=sm80 (the switch
// flash prefill also obeys), the mma.sync one elsewhere.
SparsePrefillKernel resolve(SparsePrefillKernel kernel) {
  if (kernel != SparsePrefillKernel::kAuto) return kernel;
  static const SparsePrefillKernel chosen = [] {
    const char* forced = std::getenv("LONGBOW_PREFILL_KERNEL");
    if (forced != nullptr && std::strcmp(forced, "sm80") == 0) return SparsePrefillKernel::kMmaSync;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      return SparsePrefillKernel::kMmaSync;
    }
    return major == 9 ? SparsePrefillKernel::kHopper : SparsePrefillKernel::kMmaSync;
  }();
  return chosen;
}

}  // namespace

size_t dsa_sparse_prefill_workspace_bytes(int rows, int max_pages) {
  return static_cast<size_t>(rows) * (static_cast<size_t>(words_per_row(max_pages)) * sizeof(uint32_t) + sizeof(int));
}

cudaError_t launch_dsa_sparse_prefill_attention(const DsaSparseAttentionParams& p, int max_rows_per_seq,
                                                cudaStream_t stream, SparsePrefillKernel kernel) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.seqs <= 0 || p.seqs > 65535 || p.q_heads <= 0 || p.q_heads > 65535 || p.kv_heads <= 0 ||
      p.q_heads % p.kv_heads != 0 || p.topk <= 0 || p.max_pages <= 0 || p.workspace == nullptr ||
      max_rows_per_seq <= 0 || max_rows_per_seq > p.rows) {
    return cudaErrorInvalidValue;
  }
  if (p.head_dim != 64 && p.head_dim != 128) return cudaErrorInvalidValue;
  selection_kernel<<<p.rows, kSelectThreads, 0, stream>>>(p);
  if (resolve(kernel) == SparsePrefillKernel::kHopper) return launch_hopper(p, max_rows_per_seq, stream);
  return p.head_dim == 64 ? launch_mma_sync<64>(p, max_rows_per_seq, stream)
                          : launch_mma_sync<128>(p, max_rows_per_seq, stream);
}

}  // namespace longbow::kernels
