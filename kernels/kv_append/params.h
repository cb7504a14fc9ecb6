// Paged KV-cache append launch parameters.
#pragma once

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct KvAppendParams {
  const void* k = nullptr;    // [tokens, row_elems] bf16 (row_elems = num_kv_heads · head_dim)
  const void* v = nullptr;    // [tokens, row_elems] bf16
  const int* slots = nullptr;  // [tokens]; slot = page · page_size + offset; negative slots are skipped
  void* k_cache = nullptr;    // [num_slots, row_elems] bf16 (the [P, page_size, Hkv, D] pool, flattened)
  void* v_cache = nullptr;
  int tokens = 0;
  int row_elems = 0;
  int64_t num_slots = 0;  // slots >= num_slots are skipped too (the host validates; this is a guard)
};

cudaError_t launch_kv_append(const KvAppendParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
