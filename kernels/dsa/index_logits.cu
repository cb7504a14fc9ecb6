// FP8 index logits over the paged index cache on tensor cores (contract in kernels/dsa/params.h).
// This is the portable kernel (mma.sync, sm_80+); on compute capability 9.x the launcher uses the
// wgmma kernel of index_logits_sm90.cu for the shapes it serves (same grid, same results).
//
// Block = (page run, row), 4 warps. The row's q [H, D] e4m3 is staged once in shared memory; every
// warp keeps all of it as mma A fragments (H/16 m-tiles × D/32 k-steps) and its head weights in
// registers, then streams 16 tokens of each page (two n-tiles of 8) straight from global memory,
// the fragments of the next two pages loaded before the current page's mma.sync m16n8k32 e4m3 run.
//
// The k dimension is permuted identically in A and B (any permutation leaves q·k unchanged): lane
// (g = lane/4, c = lane%4) holds the 16-byte pieces at c·16 + 64·v (v < D/64) of its row, so each
// load instruction reads whole 64-byte runs of 8 tokens; register j stands for byte
// 64·(j/4) + 16·c + 4·(j%4) and for mma k-step j/2, half j%2. Logits of a token
// are Σ over heads of w·ReLU(acc), reduced across the 8 lane groups by shuffles, times k's scale.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/dsa/dsa_device.cuh"
#include "kernels/dsa/index_logits_variants.h"
#include "kernels/dsa/params.h"

namespace longbow::kernels {
namespace {

constexpr int kWarps = 4;
constexpr int kTokensPerWarp = kDsaPageSize / kWarps;  // 16 = two n-tiles

__device__ __forceinline__ void mma_e4m3(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <int H, int D>
__global__ void __launch_bounds__(kWarps * 32) index_logits_kernel(DsaIndexLogitsParams p) {
  constexpr int kMt = H / 16;
  constexpr int kKs = D / 32;
  constexpr int kBRegs = D / 16;  // per lane per token: D/4 bytes
  constexpr int kPageBytes = kDsaPageSize * (D + 4);
  __shared__ __align__(16) uint8_t q_smem[H * D];
  __shared__ float w_smem[H];

  const int row = blockIdx.y;
  int seq;
  const int len = dsa::row_length(p.query_start, p.context_lens, p.seqs, row, &seq);
  if (len <= p.skip_len) return;
  const int pages = (len + kDsaPageSize - 1) / kDsaPageSize;
  const int run = dsa::logits_page_run(pages, static_cast<int>(gridDim.x));
  const int page_begin = blockIdx.x * run;
  const int page_end = min(pages, page_begin + run);
  if (page_begin >= page_end) return;

  const uint4* q_src = reinterpret_cast<const uint4*>(p.q_fp8 + static_cast<int64_t>(row) * H * D);
  for (int i = threadIdx.x; i < H * D / 16; i += kWarps * 32) reinterpret_cast<uint4*>(q_smem)[i] = q_src[i];
  for (int i = threadIdx.x; i < H; i += kWarps * 32) w_smem[i] = p.w_eff[static_cast<int64_t>(row) * H + i];
  __syncthreads();

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, c = lane & 3;
  uint32_t a[kMt][kKs][4];
  float w[kMt][2];
  auto byte_of = [c](int j) { return 64 * (j / 4) + 16 * c + 4 * (j % 4); };
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt) {
    const uint8_t* r0 = q_smem + (mt * 16 + g) * D;
    const uint8_t* r1 = r0 + 8 * D;
#pragma unroll
    for (int ks = 0; ks < kKs; ++ks) {
      a[mt][ks][0] = *reinterpret_cast<const uint32_t*>(r0 + byte_of(2 * ks));
      a[mt][ks][1] = *reinterpret_cast<const uint32_t*>(r1 + byte_of(2 * ks));
      a[mt][ks][2] = *reinterpret_cast<const uint32_t*>(r0 + byte_of(2 * ks + 1));
      a[mt][ks][3] = *reinterpret_cast<const uint32_t*>(r1 + byte_of(2 * ks + 1));
    }
    w[mt][0] = w_smem[mt * 16 + g];
    w[mt][1] = w_smem[mt * 16 + g + 8];
  }

  const int* table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages;
  float* out = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  auto load_b = [&](int page, uint32_t (&b)[2][kBRegs]) {
    const uint8_t* base = p.cache + static_cast<int64_t>(table[page]) * kPageBytes;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      const uint8_t* src = base + (warp * kTokensPerWarp + nt * 8 + g) * D + 16 * c;
#pragma unroll
      for (int v = 0; v < kBRegs / 4; ++v) {
        uint4 u = __ldg(reinterpret_cast<const uint4*>(src + 64 * v));
        b[nt][4 * v] = u.x;
        b[nt][4 * v + 1] = u.y;
        b[nt][4 * v + 2] = u.z;
        b[nt][4 * v + 3] = u.w;
      }
    }
  };

  // Three register stages: the fragments of the next two pages are in flight during each page's mma.
  uint32_t b_cur[2][kBRegs], b_next[2][kBRegs], b_after[2][kBRegs];
  load_b(page_begin, b_cur);
  if (page_begin + 1 < page_end) load_b(page_begin + 1, b_next);
  for (int page = page_begin; page < page_end; ++page) {
    if (page + 2 < page_end) load_b(page + 2, b_after);
    const uint8_t* base = p.cache + static_cast<int64_t>(table[page]) * kPageBytes;
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
      float col0 = 0.0f, col1 = 0.0f;
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int ks = 0; ks < kKs; ++ks) mma_e4m3(acc, a[mt][ks], b_cur[nt][2 * ks], b_cur[nt][2 * ks + 1]);
        col0 += w[mt][0] * fmaxf(acc[0], 0.0f) + w[mt][1] * fmaxf(acc[2], 0.0f);
        col1 += w[mt][0] * fmaxf(acc[1], 0.0f) + w[mt][1] * fmaxf(acc[3], 0.0f);
      }
#pragma unroll
      for (int o = 4; o < 32; o <<= 1) {
        col0 += __shfl_xor_sync(0xffffffffu, col0, o);
        col1 += __shfl_xor_sync(0xffffffffu, col1, o);
      }
      if (g == 0) {
        const int tok = warp * kTokensPerWarp + nt * 8 + 2 * c;
        const float2 scale = *reinterpret_cast<const float2*>(base + kDsaPageSize * D + tok * 4);
        const int j = page * kDsaPageSize + tok;
        if (j + 1 < len) {
          *reinterpret_cast<float2*>(out + j) = make_float2(col0 * scale.x, col1 * scale.y);
        } else if (j < len) {
          out[j] = col0 * scale.x;
        }
      }
    }
#pragma unroll
    for (int nt = 0; nt < 2; ++nt) {
#pragma unroll
      for (int r = 0; r < kBRegs; ++r) {
        b_cur[nt][r] = b_next[nt][r];
        b_next[nt][r] = b_after[nt][r];
      }
    }
  }
}

// The grid's page runs per row: at most four blocks per SM over the whole batch (one wave of the
// sm_90 kernel, which fits four per SM; rounding down keeps a second, mostly idle wave away), each
// covering at least four pages of the bound (DSA run 9 with eight: B = 1 filled only half the slots
// and read at 51 % of copy bandwidth). Each row then spreads its own pages over these blocks
// (dsa::logits_page_run); blocks past its length exit at once.
int pages_per_block(const DsaIndexLogitsParams& p) {
  const int max_pages = (p.max_context_len + kDsaPageSize - 1) / kDsaPageSize;
  const int blocks_per_row = std::max(1, 4 * p.num_sms / p.rows);
  return std::max(dsa::kMinPagesPerBlock, (max_pages + blocks_per_row - 1) / blocks_per_row);
}

bool device_is_sm90() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    return false;
  }
  return major == 9;
}

// wgmma on compute capability 9.x; LONGBOW_DSA_LOGITS=portable (read at every launch, so tests and
// benchmarks can compare both) forces the mma.sync kernel.
bool use_sm90() {
  static const bool sm90 = device_is_sm90();  // one device per process in longbow
  const char* forced = std::getenv("LONGBOW_DSA_LOGITS");
  return sm90 && !(forced != nullptr && std::strcmp(forced, "portable") == 0);
}

template <int H, int D>
cudaError_t launch_for(const DsaIndexLogitsParams& p, cudaStream_t stream) {
  const int max_pages = (p.max_context_len + kDsaPageSize - 1) / kDsaPageSize;
  const int run = pages_per_block(p);
  const dim3 grid((max_pages + run - 1) / run, p.rows);
  index_logits_kernel<H, D><<<grid, kWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_dsa_index_logits(const DsaIndexLogitsParams& p, cudaStream_t stream) {
  if (p.rows == 0 || p.max_context_len == 0) return cudaSuccess;
  // skip_len >= 0 also skips rows of length 0 (the kernels' `len <= skip_len`).
  if (p.rows < 0 || p.rows > 65535 || p.seqs <= 0 || p.max_context_len < 0 || p.skip_len < 0 ||
      p.logits_stride < p.max_context_len || p.logits_stride % 2 != 0 || p.num_sms <= 0) {
    return cudaErrorInvalidValue;
  }
  if (dsa_index_logits_sm90_supports(p.heads, p.head_dim) && use_sm90()) {
    return launch_dsa_index_logits_sm90(p, pages_per_block(p), stream);
  }
  if (p.head_dim == 128) {
    switch (p.heads) {
      case 16: return launch_for<16, 128>(p, stream);
      case 32: return launch_for<32, 128>(p, stream);
      case 64: return launch_for<64, 128>(p, stream);
      default: return cudaErrorInvalidValue;
    }
  }
  if (p.head_dim == 64) {
    switch (p.heads) {
      case 16: return launch_for<16, 64>(p, stream);
      case 64: return launch_for<64, 64>(p, stream);
      default: return cudaErrorInvalidValue;
    }
  }
  return cudaErrorInvalidValue;
}

}  // namespace longbow::kernels
