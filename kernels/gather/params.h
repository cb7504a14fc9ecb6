// Row gather launch parameters: the embedding lookup and gather_rows are the same copy.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

struct GatherRowsParams {
  const void* src = nullptr;  // [src_rows, row_bytes]
  const int* rows = nullptr;  // [out_rows]; indices are clamped into [0, src_rows)
  void* out = nullptr;        // [out_rows, row_bytes]
  int64_t src_rows = 0;
  int out_rows = 0;
  int64_t row_bytes = 0;  // any element type: the copy is bytewise (16-byte vectors when aligned)
};

// out[r] = src[clamp(rows[r])].
cudaError_t launch_gather_rows(const GatherRowsParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
