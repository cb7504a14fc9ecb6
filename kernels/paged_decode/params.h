// Paged flash-decoding: one query token per sequence, the KV length split across blocks when the
// batch alone does not fill the GPU, partial results merged by a second kernel.
#pragma once

#include <cstddef>

#include <cuda_runtime_api.h>

#include "kernels/common/paged_kv.h"

namespace longbow::kernels {

struct PagedDecodeParams {
  PagedAttentionParams attn;  // every sequence has q_len == 1 (query_start[s + 1] - query_start[s])
  int num_splits = 1;         // from choose_decode_splits; > 1 needs the workspace
  void* workspace = nullptr;  // decode_workspace_bytes(...) bytes, 16-byte aligned
};

// A split holds at least this many pages (except when the whole context is shorter).
constexpr int kDecodeMinPagesPerSplit = 8;

// The splits one sequence of `pages` pages uses in a launch of `grid_splits`: each split keeps at
// least kDecodeMinPagesPerSplit pages; the remaining splits of the grid exit at once. Depends on the
// sequence alone, so any grid at least as large as choose_decode_splits' gives the same numerics.
__host__ __device__ inline int decode_splits_for_pages(int pages, int grid_splits) {
  const int wanted = pages / kDecodeMinPagesPerSplit;
  return wanted < 1 ? 1 : (wanted < grid_splits ? wanted : grid_splits);
}

// Splits of the KV length so that num_seqs · num_kv_heads · splits blocks cover the GPU's SMs a few
// times over, each split keeping at least a few pages.
int choose_decode_splits(int num_seqs, int num_kv_heads, int max_context_len, int num_sms);

size_t decode_workspace_bytes(int num_seqs, int num_q_heads, int head_dim, int num_splits);

// Any head_dim with attention_padded_dim(head_dim) != 0 (kernels/common/paged_kv.h), num_q_heads /
// num_kv_heads <= 16, softcap >= 0 (cudaErrorInvalidValue otherwise).
cudaError_t launch_paged_decode(const PagedDecodeParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
