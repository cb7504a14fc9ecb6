// DeepSeek Sparse Attention decode kernels (DESIGN §4, §5): the indexer's FP8 quantization of index
// keys (into the paged index cache) and queries, FP8 index logits on tensor cores, exact top-k, and
// sparse attention over the selected tokens. model/backend/cpu/cpu_dsa.h is the reference for each.
//
// Rows: as in paged attention, sequence s owns rows [query_start[s], query_start[s+1]) (decode: one
// per sequence); row i of s sits at position p = context_lens[s] - q_len + i and sees the tokens
// [0, p], i.e. its length is p + 1. Every launcher takes device pointers only and never syncs or
// allocates, so the whole pipeline can be captured in a CUDA graph.
//
// Index cache page (64 tokens, head_dim D): [64 × D e4m3][64 × fp32 scale]; a slot is page·64 + off.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

constexpr int kDsaPageSize = 64;

// Index keys: k = LayerNorm(k_raw) (fp32 statistics, eps 1e-6), half-split RoPE on the leading
// rope_dim dims, y = hadamard(k) · hadamard_scale, FP8 e4m3 with the power-of-two scale of max|y|,
// stored at slots[t]; a token whose slot is -1 (a padding row) is skipped. One warp per token.
// head_dim 64 or 128; rope_dim a multiple of 2·head_dim/32.
struct DsaIndexKeyParams {
  const void* k_raw = nullptr;       // [tokens, head_dim] bf16 (the wk projection)
  const void* gamma = nullptr;       // [head_dim] bf16 LayerNorm weight
  const void* beta = nullptr;        // [head_dim] bf16 LayerNorm bias
  const int* positions = nullptr;    // [tokens]
  const int* slots = nullptr;        // [tokens] physical slots in the index cache, or -1
  const float* inv_freq = nullptr;   // [rope_dim / 2]
  float attention_scaling = 1.0f;
  float hadamard_scale = 0.0f;       // 1 / sqrt(head_dim) computed in fp32 on the host
  uint8_t* cache = nullptr;          // [pages, 64·(head_dim + 4)] bytes
  int tokens = 0;
  int head_dim = 0;
  int rope_dim = 0;
};
cudaError_t launch_dsa_index_keys(const DsaIndexKeyParams& params, cudaStream_t stream);

// Index queries: q (already RoPE'd when rope is done elsewhere, else rope_dim > 0 applies it here)
// → y = hadamard(q_h) · hadamard_scale → q_fp8 and w_eff[r][h] = w_raw[r][h] · weight_scale · s(r,h),
// weight_scale = heads^-0.5 · head_dim^-0.5 computed on the host. One warp per (row, head).
struct DsaIndexQueryParams {
  const void* q = nullptr;          // [rows, heads, head_dim] bf16
  const void* w_raw = nullptr;      // [rows, heads] bf16 (weights_proj output)
  const int* positions = nullptr;   // [rows], read when rope_dim > 0
  const float* inv_freq = nullptr;  // [rope_dim / 2]
  float attention_scaling = 1.0f;
  float hadamard_scale = 0.0f;
  float weight_scale = 0.0f;
  uint8_t* q_fp8 = nullptr;         // [rows, heads, head_dim]
  float* w_eff = nullptr;           // [rows, heads]
  int rows = 0;
  int heads = 0;
  int head_dim = 0;
  int rope_dim = 0;
};
cudaError_t launch_dsa_index_query(const DsaIndexQueryParams& params, cudaStream_t stream);

// logits[r][j] = k_scale[j] · Σ_h w_eff[r][h] · ReLU(q8[r][h] · k8[j]) for j in [0, len_r), FP8 tensor
// cores with fp32 accumulation (wgmma on compute capability 9.x for head_dim 128, else mma.sync);
// entries at j >= len_r are not written. Rows with len_r <= skip_len (the top-k, whose selection is
// then every token) and rows of length 0 (context 0: a padding row) are skipped entirely: nothing of
// theirs is read or written. heads 16, 32 or 64; head_dim 64 or 128. The grid derives from
// max_context_len; each block reads a run of one row's pages once (decode: once per sequence), the
// row's own pages spread over the row's blocks, so blocks past a row's length exit at once.
struct DsaIndexLogitsParams {
  const uint8_t* q_fp8 = nullptr;   // [rows, heads, head_dim]
  const float* w_eff = nullptr;     // [rows, heads]
  const uint8_t* cache = nullptr;   // index cache pages
  const int* query_start = nullptr; // [seqs + 1]
  const int* context_lens = nullptr;  // [seqs]
  const int* block_tables = nullptr;  // [seqs, max_pages]
  float* logits = nullptr;          // [rows, logits_stride]
  int64_t logits_stride = 0;        // >= max_context_len
  int seqs = 0;
  int rows = 0;
  int max_pages = 0;
  int max_context_len = 0;          // upper bound (sizes the grid)
  int heads = 0;
  int head_dim = 0;
  int skip_len = 0;                 // usually the top-k; 0 computes every row
  int num_sms = 132;                // sizes the grid
};
cudaError_t launch_dsa_index_logits(const DsaIndexLogitsParams& params, cudaStream_t stream);

// Exact top-k per row of logits[r][0, len_r): the k largest, ties to the lower index, written in
// ascending index order to indices[r][0, k), padded with -1; len_r <= k selects [0, len_r) without
// reading the row (len_r = 0, context 0: all -1). Deterministic (no atomics decide membership or order); a threshold bucket that
// overflows the on-chip candidate buffer is refined from global memory instead, never truncated.
// Scores must not be NaN. Without a workspace one 1024-thread block takes each row; with one (sized
// by dsa_topk_workspace_bytes for the same rows, max_context_len and num_sms; 0 bytes means none is
// needed) each row is split over several blocks when the rows alone would not fill the GPU.
struct DsaTopkParams {
  const float* logits = nullptr;    // [rows, logits_stride], 16-byte aligned rows when stride % 4 == 0
  const int* query_start = nullptr; // [seqs + 1]
  const int* context_lens = nullptr;  // [seqs]
  int* indices = nullptr;           // [rows, k]
  void* workspace = nullptr;        // optional, 8-byte aligned
  int64_t logits_stride = 0;
  int seqs = 0;
  int rows = 0;
  int k = 0;                        // 1..4096
  int max_context_len = 0;          // bound on every len_r (sizes the split grid); 0: logits_stride
  int num_sms = 0;                  // sizes the split grid; 0: one block per row
};
size_t dsa_topk_workspace_bytes(int rows, int max_context_len, int num_sms);
cudaError_t launch_dsa_topk(const DsaTopkParams& params, cudaStream_t stream);

// Sparse attention: every query head of row r attends to exactly the logical tokens indices[r][*]
// that are >= 0 (through the row's block table), softmax in fp32; a row with none outputs 0. All
// heads of a KV group share the selection (GQA: head h reads KV head h / (q_heads / kv_heads)).
// Block = (split, kv head, row); with num_splits > 1 each split covers a contiguous part of the
// index list and a second kernel merges the partials from the workspace.
struct DsaSparseAttentionParams {
  const void* q = nullptr;          // [rows, q_heads, head_dim] bf16
  const void* k_cache = nullptr;    // [pages, 64, kv_heads, head_dim] bf16
  const void* v_cache = nullptr;
  const int* indices = nullptr;     // [rows, topk]
  const int* query_start = nullptr; // [seqs + 1]
  const int* block_tables = nullptr;  // [seqs, max_pages]
  void* out = nullptr;              // [rows, q_heads, head_dim] bf16
  void* workspace = nullptr;        // dsa_sparse_workspace_bytes(...) when num_splits > 1
  float scale = 0.0f;
  int seqs = 0;
  int rows = 0;
  int max_pages = 0;
  int topk = 0;
  int q_heads = 0;
  int kv_heads = 0;                 // q_heads / kv_heads <= 8
  int head_dim = 0;                 // 64 or 128
  int num_splits = 1;
};
// Splits so that rows · kv_heads · splits gives about four blocks per SM, each split >= 64 indices
// and <= 2048 (launch_dsa_sparse_attention rejects longer splits).
int dsa_sparse_choose_splits(int rows, int kv_heads, int topk, int num_sms);
size_t dsa_sparse_workspace_bytes(int rows, int q_heads, int head_dim, int num_splits);
cudaError_t launch_dsa_sparse_attention(const DsaSparseAttentionParams& params, cudaStream_t stream);

// The same attention for prefill steps (many rows per sequence; sparse_prefill_attention.cu): flash
// attention over each row's context in which key j is visible to row r iff j is among indices[r],
// so a tile of 128 rows of one sequence reads each K/V page once for all its rows instead of every
// row gathering its own topk rows. Same result as launch_dsa_sparse_attention when each row's
// indices are distinct (the top-k's are); a repeated index counts once here. The key range is
// [0, 1 + the largest selected index of the tile's rows): every selected token must be written in
// the caches (it is: selections lie in the row's causal context). num_splits is ignored; workspace
// (required) is dsa_sparse_prefill_workspace_bytes(rows, max_pages) bytes, 8-byte aligned.
// max_rows_per_seq bounds any one sequence's rows (rows always does; it sizes the grid).
// kernel: kAuto takes the Hopper (TMA/wgmma) flash kernel on compute capability 9.x unless
// LONGBOW_PREFILL_KERNEL=sm80, else the mma.sync one; tests and benchmarks name one.
enum class SparsePrefillKernel { kAuto, kMmaSync, kHopper };
size_t dsa_sparse_prefill_workspace_bytes(int rows, int max_pages);
cudaError_t launch_dsa_sparse_prefill_attention(const DsaSparseAttentionParams& params, int max_rows_per_seq,
                                                cudaStream_t stream,
                                                SparsePrefillKernel kernel = SparsePrefillKernel::kAuto);

}  // namespace longbow::kernels
