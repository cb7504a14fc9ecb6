// Multi-head latent attention kernels (DeepSeek V2/V3 MLA, absorbed form; DESIGN §4). The contracts
// are model/backend/backend.h's AppendLatentArgs and LatentAttentionArgs; the reference is
// model/backend/cpu/cpu_mla.cc. (head_matmul, the per-head projections around the attention, is a
// strided-batched cuBLAS GEMM in model/backend/cuda/cuda_mla.cc and has no kernel here.)
//
// Latent cache: [num_pages, kMlaPageSize, width] bf16 with width = latent_dim + rope_dim; row `slot`
// (page · 64 + offset) holds one token's normed compressed KV c (latent_dim values) followed by its
// RoPE'd key k_r (rope_dim values), shared by every head. Rows, positions and block tables follow
// kernels/common/paged_kv.h: sequence s owns rows [query_start[s], query_start[s+1]); row i of s sits
// at position p = context_lens[s] − q_len + i. A padding row (context 0, one query) has p = −1.
//
// Both launchers take device pointers only: nothing is read on the host, allocated or synchronised,
// so a step can be captured in a CUDA graph.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

constexpr int kMlaPageSize = 64;
// The latent attention kernel's limits: latent_dim even in [2, 512], rope_dim even in [0, 64]
// (DeepSeek V3: 512 and 64). Even sizes keep every row 4-byte aligned for the bf16-pair loads.
constexpr int kMlaMaxLatentDim = 512;
constexpr int kMlaMaxRopeDim = 64;

// cache[slots[t]] = [latent[t] | rope_key[t]]; a token whose slot is outside [0, num_slots) (−1: a
// padding row) is not written. One block per token; any sizes.
struct AppendLatentParams {
  const void* latent = nullptr;    // [tokens, latent_dim] bf16
  const void* rope_key = nullptr;  // [tokens, rope_dim] bf16
  const int* slots = nullptr;      // [tokens]
  void* cache = nullptr;           // [num_slots, latent_dim + rope_dim] bf16
  int tokens = 0;
  int latent_dim = 0;
  int rope_dim = 0;
  int64_t num_slots = 0;           // num_pages · kMlaPageSize
};
cudaError_t launch_append_latent(const AppendLatentParams& params, cudaStream_t stream);

// For head h of row r (position p):
//   score(j) = scale · (q_latent[r][h] · c_j + q_rope[r][h] · k_r,j),
//   out[r][h] = Σ_j softmax(score)_j · c_j            (fp32 scores, softmax and sums; bf16 out)
// over the keys j = 0..p (dense, causal) or, with `indices`, over exactly the logical tokens
// indices[r][i] >= 0 (a DSA selection). A row with no key (a padding row, or a selection of only
// −1) writes zeros. Keys whose block-table entry lies outside [0, max_pages) or names a page outside
// [0, num_pages) are skipped rather than read (the CPU backend rejects such tables).
struct LatentAttentionParams {
  const void* q_latent = nullptr;     // [rows, heads, latent_dim] bf16
  const void* q_rope = nullptr;       // [rows, heads, rope_dim] bf16 (unused when rope_dim == 0)
  const void* cache = nullptr;        // [num_pages, kMlaPageSize, latent_dim + rope_dim] bf16
  const int* query_start = nullptr;   // [seqs + 1]
  const int* context_lens = nullptr;  // [seqs]
  const int* block_tables = nullptr;  // [seqs, max_pages]
  const int* indices = nullptr;       // [rows, topk] logical token indices, or nullptr: dense causal
  void* out = nullptr;                // [rows, heads, latent_dim] bf16
  int seqs = 0;
  int rows = 0;
  int heads = 0;
  int latent_dim = 0;
  int rope_dim = 0;
  int max_pages = 0;
  int num_pages = 0;
  int topk = 0;                       // indices' row length (sparse only)
  float scale = 0.0f;
  int num_sms = 132;                  // sizes the head groups (more blocks when there are few rows)
};
cudaError_t launch_latent_attention(const LatentAttentionParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
