// Latent attention (params.h): MQA of many query heads over one shared latent row per token, in fp32
// on CUDA cores. A correct, plain kernel; tensor cores (FlashMLA-style) and a split over long
// contexts are the next steps.
//
// Block = (row, group of heads), 8 warps; warp w owns hpw = 1..4 heads of the group (the launcher
// picks hpw: 4 when the grid is large, fewer for small decode batches so that more blocks run), so a
// block serves 8 · hpw heads and reads each key row once for all of them. The row's keys (0..p, or its
// selected indices) stream through shared memory in tiles of 32:
//  1. slots: the tile's 32 logical keys through the block table (−1 for a missing or masked key);
//  2. load: the tile's cache rows (latent | rope, bf16 pairs), warps over rows, lanes over words;
//  3. scores: lane j of every warp takes key j and dots it with each of the warp's heads (queries in
//     shared memory, fp32 accumulation); masked keys score −∞;
//  4. online softmax per head in the log2 domain over the warp (max and sum are warp shuffles, so the
//     statistics of a head stay in its warp);
//  5. O += P·C: lane l owns latent pairs l, l + 32, ..., each weight broadcast from lane j by shuffle.
// Everything but the three block barriers per tile is warp-local. Output: O / l rounded to bf16,
// zeros for a row with no key.
//
// Shared memory (32-bit words, each a bf16 pair): queries [8·hpw heads][W/2], then keys
// [32][(W/2) | 1] (W = latent + rope dims): the odd key row stride puts the 32 lanes' words of the
// score phase in 32 different banks; the queries are read as warp-wide broadcasts. At the DeepSeek
// shape (W = 576, 32 heads) that is 72 KB: three blocks per SM.
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/mla/params.h"

namespace longbow::kernels {
namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kTile = 32;                   // keys per tile: one per lane in the score phase
constexpr int kMaxHeadsPerWarp = 4;
constexpr int kMaxPairsPerLane = kMlaMaxLatentDim / 2 / 32;  // latent bf16 pairs each lane accumulates
constexpr int kMaxWidthWords = (kMlaMaxLatentDim + kMlaMaxRopeDim) / 2;
constexpr float kLog2e = 1.4426950408889634f;

// Words per key row in shared memory: odd, so that lane j reading word w of row j hits bank
// (j · stride + w) mod 32, a different bank for every lane.
__host__ __device__ constexpr int key_stride_words(int width_words) { return width_words | 1; }

__host__ __device__ constexpr int smem_words(int heads_per_block, int width_words) {
  return heads_per_block * width_words + kTile * key_stride_words(width_words);
}

constexpr int kMaxSmemBytes = smem_words(kWarps * kMaxHeadsPerWarp, kMaxWidthWords) * 4;
static_assert(kMaxSmemBytes <= 227 * 1024, "shared memory per block");

// A bf16 pair (element 0 in the low half) as two floats; exact.
__device__ __forceinline__ float2 unpack_bf16x2(uint32_t v) {
  return make_float2(__uint_as_float(v << 16), __uint_as_float(v & 0xffff0000u));
}

__global__ void __launch_bounds__(kThreads, 2)
    latent_attention_kernel(LatentAttentionParams p, int heads_per_warp) {
  extern __shared__ uint32_t smem[];
  __shared__ int tile_slots[kTile];  // the tile's physical cache rows, −1: masked

  const int row = static_cast<int>(blockIdx.x);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int heads_per_block = kWarps * heads_per_warp;
  const int head0 = static_cast<int>(blockIdx.y) * heads_per_block;
  const int latent_words = p.latent_dim / 2, rope_words = p.rope_dim / 2;
  const int width_words = latent_words + rope_words;
  const int key_stride = key_stride_words(width_words);
  uint32_t* q_s = smem;                                  // [heads_per_block][width_words]
  uint32_t* k_s = smem + heads_per_block * width_words;  // [kTile][key_stride]

  // The row's sequence: the last s with query_start[s] <= row.
  int lo = 0, hi = p.seqs - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (p.query_start[mid] <= row) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const int seq = lo;
  const int q_begin = p.query_start[seq], q_end = p.query_start[seq + 1];
  // Position of the row; −1 (no key) for a padding row and for a row no sequence owns.
  const int pos = row >= q_begin && row < q_end ? p.context_lens[seq] - (q_end - q_begin) + (row - q_begin) : -1;
  const int num_keys = p.indices != nullptr ? (pos >= 0 ? p.topk : 0) : pos + 1;
  const int* table = p.block_tables + static_cast<int64_t>(seq) * p.max_pages;
  const int* selection = p.indices != nullptr ? p.indices + static_cast<int64_t>(row) * p.topk : nullptr;

  // Queries of the block's heads, latent then rope words; heads past the last are zeros.
  const auto* q_latent = static_cast<const uint32_t*>(p.q_latent);
  const auto* q_rope = static_cast<const uint32_t*>(p.q_rope);
  for (int i = static_cast<int>(threadIdx.x); i < heads_per_block * width_words; i += kThreads) {
    const int local = i / width_words, w = i % width_words, h = head0 + local;
    uint32_t v = 0u;
    if (h < p.heads) {
      const int64_t rh = static_cast<int64_t>(row) * p.heads + h;
      v = w < latent_words ? q_latent[rh * latent_words + w] : q_rope[rh * rope_words + (w - latent_words)];
    }
    q_s[i] = v;
  }

  const int warp_head0 = head0 + warp * heads_per_warp;  // the warp's first head
  const bool warp_active = warp_head0 < p.heads;         // warp-uniform
  const uint32_t* q_warp = q_s + warp * heads_per_warp * width_words;
  const float score_scale = p.scale * kLog2e;
  float m[kMaxHeadsPerWarp], l[kMaxHeadsPerWarp];
  float2 acc[kMaxHeadsPerWarp][kMaxPairsPerLane];
#pragma unroll
  for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) {
    m[hh] = -INFINITY;
    l[hh] = 0.0f;
#pragma unroll
    for (int i = 0; i < kMaxPairsPerLane; ++i) acc[hh][i] = make_float2(0.0f, 0.0f);
  }
  const auto* cache = static_cast<const uint32_t*>(p.cache);

  for (int t0 = 0; t0 < num_keys; t0 += kTile) {
    __syncthreads();  // the previous tile is no longer read (first tile: the queries are written)
    // 1. slots
    if (threadIdx.x < kTile) {
      const int i = t0 + static_cast<int>(threadIdx.x);
      int key = -1;
      if (i < num_keys) key = selection != nullptr ? selection[i] : i;
      int slot = -1;
      if (key >= 0 && key / kMlaPageSize < p.max_pages) {
        const int page = table[key / kMlaPageSize];
        if (page >= 0 && page < p.num_pages) slot = page * kMlaPageSize + key % kMlaPageSize;
      }
      tile_slots[threadIdx.x] = slot;
    }
    __syncthreads();
    // 2. load (masked rows are zeroed, never read from the pool)
    for (int j = warp; j < kTile; j += kWarps) {
      const int slot = tile_slots[j];
      const uint32_t* src = cache + static_cast<int64_t>(slot < 0 ? 0 : slot) * width_words;
      uint32_t* dst = k_s + j * key_stride;
#pragma unroll 3
      for (int w = lane; w < width_words; w += 32) dst[w] = slot >= 0 ? src[w] : 0u;
    }
    __syncthreads();
    if (!warp_active) continue;

    // 3. scores: lane = key
    float s[kMaxHeadsPerWarp] = {};
    const uint32_t* k_row = k_s + lane * key_stride;
    for (int w = 0; w < width_words; ++w) {
      const float2 k = unpack_bf16x2(k_row[w]);
#pragma unroll
      for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) {
        if (hh < heads_per_warp) {
          const float2 q = unpack_bf16x2(q_warp[hh * width_words + w]);
          s[hh] = fmaf(q.x, k.x, fmaf(q.y, k.y, s[hh]));
        }
      }
    }
    // 4. online softmax (log2 domain)
    const bool valid = tile_slots[lane] >= 0;
    float prob[kMaxHeadsPerWarp];
#pragma unroll
    for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) {
      prob[hh] = 0.0f;
      if (hh >= heads_per_warp) continue;
      const float score = valid ? s[hh] * score_scale : -INFINITY;
      const float m_new = fmaxf(m[hh], warp_max(score));
      // With no finite score yet m stays −∞; the accumulators are then still zero.
      const float corr = m[hh] == -INFINITY ? 0.0f : exp2f(m[hh] - m_new);
      prob[hh] = score == -INFINITY ? 0.0f : exp2f(score - m_new);
      l[hh] = l[hh] * corr + warp_sum(prob[hh]);
      m[hh] = m_new;
#pragma unroll
      for (int i = 0; i < kMaxPairsPerLane; ++i) {
        acc[hh][i].x *= corr;
        acc[hh][i].y *= corr;
      }
    }
    // 5. O += P·C over the tile's valid keys (tile_slots[j] is the same for every lane)
    for (int j = 0; j < kTile; ++j) {
      if (tile_slots[j] < 0) continue;
      float weight[kMaxHeadsPerWarp];
#pragma unroll
      for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) weight[hh] = __shfl_sync(0xffffffffu, prob[hh], j);
      const uint32_t* c_row = k_s + j * key_stride;
#pragma unroll
      for (int i = 0; i < kMaxPairsPerLane; ++i) {
        const int w = lane + 32 * i;
        if (w >= latent_words) break;
        const float2 c = unpack_bf16x2(c_row[w]);
#pragma unroll
        for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) {
          if (hh < heads_per_warp) {
            acc[hh][i].x = fmaf(weight[hh], c.x, acc[hh][i].x);
            acc[hh][i].y = fmaf(weight[hh], c.y, acc[hh][i].y);
          }
        }
      }
    }
  }

  if (!warp_active) return;
  auto* out = static_cast<uint32_t*>(p.out);
#pragma unroll
  for (int hh = 0; hh < kMaxHeadsPerWarp; ++hh) {
    const int h = warp_head0 + hh;
    if (hh >= heads_per_warp || h >= p.heads) continue;
    const float inv = l[hh] > 0.0f ? 1.0f / l[hh] : 0.0f;  // no key: zeros
    uint32_t* o = out + (static_cast<int64_t>(row) * p.heads + h) * latent_words;
#pragma unroll
    for (int i = 0; i < kMaxPairsPerLane; ++i) {
      const int w = lane + 32 * i;
      if (w < latent_words) o[w] = pack_bf16x2(acc[hh][i].x * inv, acc[hh][i].y * inv);
    }
  }
}

bool aligned4(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 3u) == 0; }

// Heads per warp: 4 (a block of 32 heads reads each key row once for all of them) unless the grid
// would then not cover the GPU twice over (small decode batches), where halving it doubles the
// blocks at the price of reading each key row (from L2) once per extra block.
int choose_heads_per_warp(int rows, int heads, int num_sms) {
  int hpw = std::min(kMaxHeadsPerWarp, (heads + kWarps - 1) / kWarps);
  auto blocks = [&](int h) { return static_cast<int64_t>(rows) * ((heads + kWarps * h - 1) / (kWarps * h)); };
  while (hpw > 1 && blocks(hpw) < 2 * static_cast<int64_t>(num_sms)) hpw = (hpw + 1) / 2;
  return std::max(hpw, 1);
}

}  // namespace

cudaError_t launch_latent_attention(const LatentAttentionParams& p, cudaStream_t stream) {
  if (p.rows < 0 || p.heads <= 0 || p.latent_dim < 2 || p.latent_dim > kMlaMaxLatentDim || p.latent_dim % 2 != 0 ||
      p.rope_dim < 0 || p.rope_dim > kMlaMaxRopeDim || p.rope_dim % 2 != 0 || p.max_pages < 0 || p.num_pages < 0 ||
      (p.indices != nullptr && p.topk < 0)) {
    return cudaErrorInvalidValue;
  }
  if (p.rows == 0) return cudaSuccess;
  if (p.seqs <= 0 || !aligned4(p.q_latent) || !aligned4(p.q_rope) || !aligned4(p.cache) || !aligned4(p.out)) {
    return cudaErrorInvalidValue;
  }
  const int hpw = choose_heads_per_warp(p.rows, p.heads, p.num_sms > 0 ? p.num_sms : 1);
  const int groups = (p.heads + kWarps * hpw - 1) / (kWarps * hpw);
  if (groups > 65535) return cudaErrorInvalidValue;
  static const cudaError_t attribute =
      cudaFuncSetAttribute(latent_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmemBytes);
  if (attribute != cudaSuccess) return attribute;
  const size_t smem = static_cast<size_t>(smem_words(kWarps * hpw, (p.latent_dim + p.rope_dim) / 2)) * 4;
  const dim3 grid(static_cast<unsigned>(p.rows), static_cast<unsigned>(groups));
  latent_attention_kernel<<<grid, kThreads, smem, stream>>>(p, hpw);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
