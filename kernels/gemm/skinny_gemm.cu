// Skinny GEMM: out[m][n] = x[m][k] · w[n][k]ᵀ for m ≤ 2 (small decode steps), one warp per kCols output
// columns. The product is bound by reading w (n·k bf16) once; each lane streams 16-byte vectors of
// its columns' w rows, kUnroll k-slices in flight, multiplies them with the same k-slice of every x
// row (x is a few KB, read through the read-only cache and shared by all warps) and the warp
// reduces at the end. w bypasses L1 (each byte is read once); nothing is staged in shared memory.
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/gemm/params.h"

namespace longbow::kernels {
namespace {

constexpr int kWarps = 8;  // output columns per block
constexpr int kThreads = 32 * kWarps;

// A 16-byte load of data read exactly once: not kept in L1.
__device__ __forceinline__ Bf16x8 load_streaming(const Bf16x8* ptr) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(ptr));
  Bf16x8 v;
  static_assert(sizeof(v) == sizeof(r));
  __builtin_memcpy(&v, &r, sizeof(v));
  return v;
}

// acc[r][c] += w[c] · x[r] over one 8-element k-slice at vector v, for the kRows rows of x (rows past
// m repeat row m - 1 and are never stored, so every lane runs the same unbranched code). Each x
// vector is loaded once and used for all kCols columns: x's traffic through L1 is kRows / kCols
// times w's.
template <int kRows, int kCols>
__device__ __forceinline__ void accumulate_slice(const Bf16x8 (&w_vecs)[kCols], const Bf16x8* x,
                                                 int64_t x_row_vectors, int last_row, int64_t v,
                                                 float (&acc)[kRows][kCols]) {
  float w_vals[kCols][8];
#pragma unroll
  for (int c = 0; c < kCols; ++c) bf16x8_to_float(w_vecs[c], w_vals[c]);
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int row = r < last_row ? r : last_row;
    const uint4 x_raw = __ldg(reinterpret_cast<const uint4*>(x + row * x_row_vectors + v));
    Bf16x8 x_vec;
    __builtin_memcpy(&x_vec, &x_raw, sizeof(x_vec));
    float x_vals[8];
    bf16x8_to_float(x_vec, x_vals);
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[r][c] = fmaf(w_vals[c][j], x_vals[j], acc[r][c]);
    }
  }
}

// One warp per kCols adjacent output columns; kUnroll k-slices of each column in flight per lane.
template <int kRows, int kCols, int kUnroll>
__global__ void __launch_bounds__(kThreads) skinny_gemm_kernel(SkinnyGemmParams p) {
  const int warp = static_cast<int>(threadIdx.x) >> 5;
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const int first_col = (static_cast<int>(blockIdx.x) * kWarps + warp) * kCols;
  if (first_col >= p.n) return;
  const int64_t row_vectors = p.k / 8;
  // Columns past n repeat column n - 1 (loaded, never stored).
  const Bf16x8* w[kCols];
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = first_col + c < p.n ? first_col + c : p.n - 1;
    w[c] = reinterpret_cast<const Bf16x8*>(p.w) + static_cast<int64_t>(col) * row_vectors;
  }
  const Bf16x8* x = reinterpret_cast<const Bf16x8*>(p.x);
  const int last_row = p.m - 1;
  float acc[kRows][kCols];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[r][c] = 0.0f;
  }

  int64_t v = lane;
  for (; v + (kUnroll - 1) * 32 < row_vectors; v += kUnroll * 32) {
    Bf16x8 w_vecs[kUnroll][kCols];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
      for (int c = 0; c < kCols; ++c) w_vecs[u][c] = load_streaming(w[c] + v + u * 32);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) accumulate_slice<kRows, kCols>(w_vecs[u], x, row_vectors, last_row, v + u * 32, acc);
  }
  for (; v < row_vectors; v += 32) {
    Bf16x8 w_vecs[kCols];
#pragma unroll
    for (int c = 0; c < kCols; ++c) w_vecs[c] = load_streaming(w[c] + v);
    accumulate_slice<kRows, kCols>(w_vecs, x, row_vectors, last_row, v, acc);
  }

#pragma unroll
  for (int r = 0; r < kRows; ++r) {
#pragma unroll
    for (int c = 0; c < kCols; ++c) acc[r][c] = warp_sum(acc[r][c]);
  }
  if (lane != 0) return;
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int col = first_col + c;
    if (col >= p.n) break;
    const float bias = p.bias != nullptr ? __bfloat162float(static_cast<const __nv_bfloat16*>(p.bias)[col]) : 0.0f;
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (r > last_row) break;
      const int64_t at = static_cast<int64_t>(r) * p.n + col;
      if (p.out_f32) {
        static_cast<float*>(p.out)[at] = acc[r][c] + bias;
      } else {
        static_cast<__nv_bfloat16*>(p.out)[at] = __float2bfloat16_rn(acc[r][c] + bias);
      }
    }
  }
}

template <int kRows, int kCols, int kUnroll>
void launch(const SkinnyGemmParams& p, cudaStream_t stream) {
  const int cols_per_block = kWarps * kCols;
  const unsigned blocks = static_cast<unsigned>((p.n + cols_per_block - 1) / cols_per_block);
  skinny_gemm_kernel<kRows, kCols, kUnroll><<<blocks, kThreads, 0, stream>>>(p);
}

bool aligned(const void* ptr, uintptr_t bytes) { return reinterpret_cast<uintptr_t>(ptr) % bytes == 0; }

}  // namespace

bool skinny_gemm_supported(const SkinnyGemmParams& p) {
  return p.m >= 1 && p.m <= kSkinnyGemmMaxRows && p.n >= 1 && p.k >= 8 && p.k % 8 == 0 && aligned(p.x, 16) &&
         aligned(p.w, 16) && aligned(p.out, p.out_f32 ? 4 : 2) && (p.bias == nullptr || aligned(p.bias, 2));
}

cudaError_t launch_skinny_gemm(const SkinnyGemmParams& p, cudaStream_t stream) {
  if (!skinny_gemm_supported(p)) return cudaErrorInvalidValue;
  // One row: one column per warp with four k-slices in flight; two rows: two columns per warp, so
  // each x vector serves two w vectors.
  if (p.m == 1) {
    launch<1, 1, 4>(p, stream);
  } else {
    launch<2, 2, 2>(p, stream);
  }
  return cudaGetLastError();
}

}  // namespace longbow::kernels
