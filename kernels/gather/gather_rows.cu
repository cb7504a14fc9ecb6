// Row gather: one block per output row.
#include <cstdint>

#include "kernels/gather/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;

template <typename Word>
__global__ void __launch_bounds__(kThreads) gather_rows_kernel(GatherRowsParams p) {
  int64_t row = p.rows[blockIdx.x];
  row = row < 0 ? 0 : (row >= p.src_rows ? p.src_rows - 1 : row);
  const int64_t words = p.row_bytes / static_cast<int64_t>(sizeof(Word));
  const Word* src = reinterpret_cast<const Word*>(static_cast<const char*>(p.src) + row * p.row_bytes);
  Word* dst = reinterpret_cast<Word*>(static_cast<char*>(p.out) + static_cast<int64_t>(blockIdx.x) * p.row_bytes);
  for (int64_t i = threadIdx.x; i < words; i += kThreads) dst[i] = src[i];
}

bool aligned(const void* ptr, uintptr_t bytes) { return (reinterpret_cast<uintptr_t>(ptr) % bytes) == 0; }

}  // namespace

cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
  if (p.out_rows <= 0) return p.out_rows == 0 ? cudaSuccess : cudaErrorInvalidValue;
  if (p.src_rows <= 0 || p.row_bytes <= 0) return cudaErrorInvalidValue;
  if (p.row_bytes % 16 == 0 && aligned(p.src, 16) && aligned(p.out, 16)) {
    gather_rows_kernel<uint4><<<p.out_rows, kThreads, 0, stream>>>(p);
  } else if (p.row_bytes % 4 == 0 && aligned(p.src, 4) && aligned(p.out, 4)) {
    gather_rows_kernel<uint32_t><<<p.out_rows, kThreads, 0, stream>>>(p);
  } else {
    gather_rows_kernel<uint8_t><<<p.out_rows, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace longbow::kernels
