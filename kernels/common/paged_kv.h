// The paged KV layout shared by the attention families (DESIGN §5).
//
// K and V pools are [num_pages][kKvPageSize][num_kv_heads][head_dim] bf16. Logical token i of
// sequence s lives in slot block_tables[s * max_pages_per_seq + i / kKvPageSize] * kKvPageSize +
// i % kKvPageSize. Queries of sequence s are rows [query_start[s], query_start[s + 1]) of q; they
// are the last q_len positions of its context: query i sits at position context_lens[s] - q_len + i
// and sees keys j <= position (and j > position - sliding_window when sliding_window > 0).
#pragma once

namespace longbow::kernels {

constexpr int kKvPageSize = 64;

struct PagedAttentionParams {
  const void* q = nullptr;         // [total_q, num_q_heads, head_dim] bf16
  const void* k_cache = nullptr;   // [num_pages, kKvPageSize, num_kv_heads, head_dim] bf16
  const void* v_cache = nullptr;
  const int* query_start = nullptr;   // [num_seqs + 1]
  const int* context_lens = nullptr;  // [num_seqs], >= 1
  const int* block_tables = nullptr;  // [num_seqs, max_pages_per_seq]
  void* out = nullptr;             // [total_q, num_q_heads, head_dim] bf16
  int num_seqs = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;  // num_q_heads % num_kv_heads == 0
  int head_dim = 0;      // 64 or 128
  int max_pages_per_seq = 0;
  int max_query_len = 0;    // upper bound over sequences (sizes the grid)
  int max_context_len = 0;  // upper bound over sequences
  float scale = 0.0f;       // softmax scale applied to q·k
  int sliding_window = 0;   // 0: full causal prefix
};

}  // namespace longbow::kernels
