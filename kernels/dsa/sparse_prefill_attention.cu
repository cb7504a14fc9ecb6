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
//  2. The flash prefill kernel with its causal mask replaced by the bitmaps (the selected variants
//     in kernels/flash_prefill/flash_prefill_variants.h): on compute capability 9.x the Hopper one,
//     elsewhere, or when asked, the mma.sync one. Keys run over [0, 1 + the largest index any of a
//     block's rows selected), so the causal bound comes from the selection itself; softmax in fp32,
//     P rounded to bf16 for P·V as in dense prefill.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/dsa/params.h"
#include "kernels/flash_prefill/flash_prefill_variants.h"

namespace longbow::kernels {
namespace {

constexpr int kSelectThreads = 256;

// Workspace: the bitmaps [rows, words_per_row] u32, then last[rows] i32 (largest selected index).
struct Selection {
  uint32_t* bits;
  int* last;
};

// Two words per page (64 keys), rounded up to a multiple of four (the Hopper kernel reads 128-key tiles); the
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

// The flash prefill launch of a sparse prefill step: the same Q, K/V pools, block tables and
// output, keys bounded by the selections (context_lens and sliding_window are not read).
FlashPrefillParams flash_params(const DsaSparseAttentionParams& p, int max_rows_per_seq) {
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
  return f;
}

PrefillSelection prefill_selection(const DsaSparseAttentionParams& p) {
  const Selection sel = carve(p.workspace, p.rows, p.max_pages);
  PrefillSelection mask;
  mask.bits = sel.bits;
  mask.last = sel.last;
  mask.words_per_row = words_per_row(p.max_pages);
  return mask;
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
  const FlashPrefillParams f = flash_params(p, max_rows_per_seq);
  if (resolve(kernel) == SparsePrefillKernel::kHopper) {
    return launch_flash_prefill_sm90_selected(f, prefill_selection(p), stream);
  }
  return launch_flash_prefill_sm80_selected(f, prefill_selection(p), stream);
}

}  // namespace longbow::kernels
