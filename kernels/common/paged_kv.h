// The paged KV layout shared by the attention families (DESIGN §5).
//
// K and V pools are [num_pages][kKvPageSize][num_kv_heads][head_dim] bf16. Logical token i of
// sequence s lives in slot block_tables[s * max_pages_per_seq + i / kKvPageSize] * kKvPageSize +
// i % kKvPageSize. Queries of sequence s are rows [query_start[s], query_start[s + 1]) of q; they
// are the last q_len positions of its context: query i sits at position context_lens[s] - q_len + i
// and sees keys j <= position (and j > position - sliding_window when sliding_window > 0).
//
// Head sizes: every head_dim that is a multiple of 8 from 8 to 256. Each kernel is compiled for the
// three padded sizes of attention_padded_dim (64, 128, 256) only; a head_dim below its padded size
// runs the same kernel with the dims past head_dim zero-filled on load (they add 0 to every dot
// product) and never stored, so the instantiation count stays fixed whatever the model.
#pragma once

namespace longbow::kernels {

constexpr int kKvPageSize = 64;

// The kernel size that serves `head_dim`: 64, 128 or 256; 0 when no kernel takes it (not a
// multiple of 8 — rows must stay 16-byte aligned for the vector loads — or outside [8, 256]).
constexpr int attention_padded_dim(int head_dim) {
  if (head_dim < 8 || head_dim > 256 || head_dim % 8 != 0) return 0;
  return head_dim <= 64 ? 64 : (head_dim <= 128 ? 128 : 256);
}

struct PagedAttentionParams {
  const void* q = nullptr;         // [total_q, num_q_heads, head_dim] bf16
  const void* k_cache = nullptr;   // [num_pages, kKvPageSize, num_kv_heads, head_dim] bf16
  const void* v_cache = nullptr;
  const int* query_start = nullptr;   // [num_seqs + 1]
  const int* context_lens = nullptr;  // [num_seqs], >= 1 (0: a one-query padding row, output 0)
  // [num_seqs, max_pages_per_seq]. Entries of pages wholly before the window of the sequence's first
  // query (released pages: -1, or a shared null page) are never dereferenced: every kernel derives
  // the pages it loads from the window, and keys before a row's window contribute nothing whatever
  // the memory behind them holds.
  const int* block_tables = nullptr;
  void* out = nullptr;             // [total_q, num_q_heads, head_dim] bf16
  int num_seqs = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;  // num_q_heads % num_kv_heads == 0
  int head_dim = 0;      // attention_padded_dim(head_dim) != 0; the row stride of q, out and the pools
  int max_pages_per_seq = 0;
  int max_query_len = 0;    // upper bound over sequences (sizes the grid)
  int max_context_len = 0;  // upper bound over sequences
  float scale = 0.0f;       // softmax scale applied to q·k
  int sliding_window = 0;   // 0: full causal prefix
  // Logit soft-cap: each scaled score x becomes softcap · tanh(x / softcap) before the softmax
  // (Gemma 2). 0: none.
  float softcap = 0.0f;
};

}  // namespace longbow::kernels
