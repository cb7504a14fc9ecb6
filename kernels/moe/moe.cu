// Mixture-of-experts kernels (params.h): top-k routing (one warp per token) and the routed experts
// as two grouped GEMMs over pairs grouped by expert on the device.
//
// The grouped GEMM (v1) is a plain shared-memory tiled kernel: 64 grouped rows × 64 weight rows per
// block, 32-deep k steps, bf16 operands widened to fp32 in shared memory, fp32 FMAs on CUDA cores
// with 4×4 register tiles. What bounds it: at decode sizes (a few rows per expert) reading each
// active expert's weights once per row tile, i.e. HBM bandwidth, with scalar (2-byte) global loads
// that keep it below the copy rate; at prefill sizes the CUDA-core FMA rate (~1/20 of the tensor
// cores'). mma.sync / wgmma tiles with 16-byte cp.async loads are the upgrade path.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/moe/params.h"

namespace longbow::kernels {
namespace {

constexpr int kTileM = 64;   // grouped rows per GEMM tile
constexpr int kTileN = 64;   // weight rows per GEMM tile (gate_up: 32 gate + 32 up)
constexpr int kTileK = 32;
constexpr int kGemmThreads = 256;
constexpr int kSmemStride = kTileM + 4;

// ---- routing ----

constexpr int kRouteWarps = 4;
constexpr int kRoutePerLane = kMoeRouteMaxExperts / 32;

__device__ __forceinline__ bool better(float a, int a_id, float b, int b_id) {
  return a > b || (a == b && a_id < b_id);
}

// The index of the warp-wide best of (value, id) over lanes holding a candidate (id != INT32_MAX),
// ties to the lower id; every lane gets the result.
__device__ __forceinline__ void warp_best(float& best, int& best_id) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
    if (other_id != INT32_MAX && (best_id == INT32_MAX || better(other, other_id, best, best_id))) {
      best = other;
      best_id = other_id;
    }
  }
}

__global__ void __launch_bounds__(kRouteWarps * 32) moe_route_kernel(MoeRouteParams p) {
  const int lane = threadIdx.x & 31;
  const int t = blockIdx.x * kRouteWarps + (threadIdx.x >> 5);
  if (t >= p.tokens) return;
  const float* row = p.logits + static_cast<int64_t>(t) * p.experts;
  float x[kRoutePerLane];
  unsigned taken = 0;
#pragma unroll
  for (int i = 0; i < kRoutePerLane; ++i) {
    const int e = lane + 32 * i;
    x[i] = e < p.experts ? row[e] : 0.0f;
    if (e >= p.experts) taken |= 1u << i;  // not an expert: never chosen
  }
  // The softmax is monotone in the logits, so the k largest probabilities are the k largest logits;
  // p_j / Σ p = exp(x_j − x_max) / Σ exp(x_j' − x_max) over the chosen.
  float chosen[kMoeRouteMaxTopk];
  int chosen_id[kMoeRouteMaxTopk];
#pragma unroll
  for (int j = 0; j < kMoeRouteMaxTopk; ++j) {
    chosen[j] = 0.0f;
    chosen_id[j] = 0;
    if (j >= p.k) continue;
    float best = 0.0f;
    int best_id = INT32_MAX;
#pragma unroll
    for (int i = 0; i < kRoutePerLane; ++i) {
      const int e = lane + 32 * i;
      if (!(taken & (1u << i)) && (best_id == INT32_MAX || better(x[i], e, best, best_id))) {
        best = x[i];
        best_id = e;
      }
    }
    warp_best(best, best_id);
    if ((best_id & 31) == lane) taken |= 1u << (best_id >> 5);
    chosen[j] = best;
    chosen_id[j] = best_id;
  }
  const float top = chosen[0];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kMoeRouteMaxTopk; ++j) {
    if (j < p.k) {
      chosen[j] = expf(chosen[j] - top);
      sum += chosen[j];
    }
  }
  const float inv = 1.0f / sum;
#pragma unroll
  for (int j = 0; j < kMoeRouteMaxTopk; ++j) {
    if (j < p.k && lane == j) {
      p.ids[static_cast<int64_t>(t) * p.k + j] = chosen_id[j];
      p.weights[static_cast<int64_t>(t) * p.k + j] = chosen[j] * inv;
    }
  }
}

__global__ void __launch_bounds__(kRouteWarps * 32) moe_sigmoid_route_kernel(MoeSigmoidRouteParams p) {
  __shared__ float choice_smem[kRouteWarps][kMoeRouteMaxExperts];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x * kRouteWarps + warp;
  if (t >= p.tokens) return;
  const float* row = p.logits + static_cast<int64_t>(t) * p.experts;
  float* choice = choice_smem[warp];
  float score[kRoutePerLane];  // s of expert lane + 32·i
#pragma unroll
  for (int i = 0; i < kRoutePerLane; ++i) {
    const int e = lane + 32 * i;
    score[i] = 0.0f;
    if (e < p.experts) {
      score[i] = 1.0f / (1.0f + expf(-row[e]));
      choice[e] = score[i] + (p.bias != nullptr ? p.bias[e] : 0.0f);
    }
  }
  __syncwarp();
  // Lane g scores group g by its two largest choice values.
  const int group_size = p.experts / p.groups;
  float group_score = 0.0f;
  int group_id = INT32_MAX;
  if (lane < p.groups) {
    float first = -INFINITY, second = -INFINITY;
    for (int e = lane * group_size; e < (lane + 1) * group_size; ++e) {
      const float c = choice[e];
      if (c > first) {
        second = first;
        first = c;
      } else if (c > second) {
        second = c;
      }
    }
    group_score = first + second;
    group_id = lane;
  }
  unsigned kept = 0;  // bit g: group g stays
  for (int j = 0; j < p.topk_groups; ++j) {
    float best = group_score;
    int best_id = group_id;
    warp_best(best, best_id);
    kept |= 1u << best_id;
    if (lane == best_id) group_id = INT32_MAX;
  }
  float x[kRoutePerLane];
  unsigned taken = 0;
#pragma unroll
  for (int i = 0; i < kRoutePerLane; ++i) {
    const int e = lane + 32 * i;
    x[i] = e < p.experts ? choice[e] : 0.0f;
    if (e >= p.experts || !(kept & (1u << (e / group_size)))) taken |= 1u << i;  // never chosen
  }
  float chosen[kMoeRouteMaxTopk];
  int chosen_id[kMoeRouteMaxTopk];
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kMoeRouteMaxTopk; ++j) {
    chosen[j] = 0.0f;
    chosen_id[j] = 0;
    if (j >= p.k) continue;
    float best = 0.0f, best_score = 0.0f;
    int best_id = INT32_MAX;
#pragma unroll
    for (int i = 0; i < kRoutePerLane; ++i) {
      const int e = lane + 32 * i;
      if (!(taken & (1u << i)) && (best_id == INT32_MAX || better(x[i], e, best, best_id))) {
        best = x[i];
        best_id = e;
        best_score = score[i];
      }
    }
    // The winner's unbiased score travels with it.
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float other = __shfl_xor_sync(0xffffffffu, best, offset);
      const int other_id = __shfl_xor_sync(0xffffffffu, best_id, offset);
      const float other_score = __shfl_xor_sync(0xffffffffu, best_score, offset);
      if (other_id != INT32_MAX && (best_id == INT32_MAX || better(other, other_id, best, best_id))) {
        best = other;
        best_id = other_id;
        best_score = other_score;
      }
    }
    if ((best_id & 31) == lane) taken |= 1u << (best_id >> 5);
    chosen[j] = best_score;
    chosen_id[j] = best_id;
    sum += best_score;
  }
  const float inv = p.renormalize ? 1.0f / (sum + 1e-20f) : 1.0f;
#pragma unroll
  for (int j = 0; j < kMoeRouteMaxTopk; ++j) {
    if (j < p.k && lane == j) {
      p.ids[static_cast<int64_t>(t) * p.k + j] = chosen_id[j];
      p.weights[static_cast<int64_t>(t) * p.k + j] = chosen[j] * inv * p.scaling;
    }
  }
}

// ---- grouping: counts, prefix sums, tiles, scatter (one block) ----

struct Workspace {
  int* offsets = nullptr;    // [experts + 1] start of each expert's group in grouped order
  int* num_tiles = nullptr;  // [1]
  int2* tiles = nullptr;     // [max_tiles] (expert, first grouped row)
  int* sorted = nullptr;     // [pairs] pair index (t·k + j) at each grouped row
  __nv_bfloat16* h = nullptr;  // [pairs, inter] in grouped order
  float* y = nullptr;          // [pairs, hidden] by pair index
};

size_t align16(size_t bytes) { return (bytes + 15) & ~size_t{15}; }

int max_tiles(int64_t pairs, int experts) { return static_cast<int>((pairs + kTileM - 1) / kTileM + experts); }

// Byte offsets of the workspace pieces; returns the total.
size_t layout(int tokens, int k, int experts, int hidden, int inter, void* base, Workspace* ws) {
  const int64_t pairs = static_cast<int64_t>(tokens) * k;
  size_t at = 0;
  auto take = [&](size_t bytes) {
    const size_t here = at;
    at += align16(bytes);
    return static_cast<char*>(base) + here;
  };
  char* offsets = take(static_cast<size_t>(experts + 1) * 4);
  char* num_tiles = take(4);
  char* tiles = take(static_cast<size_t>(max_tiles(pairs, experts)) * sizeof(int2));
  char* sorted = take(static_cast<size_t>(pairs) * 4);
  char* h = take(static_cast<size_t>(pairs) * inter * 2);
  char* y = take(static_cast<size_t>(pairs) * hidden * 4);
  if (ws != nullptr) {
    ws->offsets = reinterpret_cast<int*>(offsets);
    ws->num_tiles = reinterpret_cast<int*>(num_tiles);
    ws->tiles = reinterpret_cast<int2*>(tiles);
    ws->sorted = reinterpret_cast<int*>(sorted);
    ws->h = reinterpret_cast<__nv_bfloat16*>(h);
    ws->y = reinterpret_cast<float*>(y);
  }
  return at;
}

constexpr int kGroupThreads = 1024;

// Within a group the order of pairs follows the scatter's atomics; every GEMM row is computed alone
// (the same k order for any position in a tile), so results do not depend on it.
__global__ void __launch_bounds__(kGroupThreads) moe_group_kernel(const int* ids, int pairs, int experts, Workspace ws) {
  extern __shared__ int counts[];  // [experts] counts, then [experts] cursors
  int* cursor = counts + experts;
  for (int e = threadIdx.x; e < experts; e += kGroupThreads) counts[e] = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += kGroupThreads) atomicAdd(&counts[min(max(ids[i], 0), experts - 1)], 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0, tile = 0;
    for (int e = 0; e < experts; ++e) {
      cursor[e] = run;
      ws.offsets[e] = run;
      for (int r = 0; r < counts[e]; r += kTileM) ws.tiles[tile++] = make_int2(e, run + r);
      run += counts[e];
    }
    ws.offsets[experts] = run;
    *ws.num_tiles = tile;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < pairs; i += kGroupThreads) {
    const int pos = atomicAdd(&cursor[min(max(ids[i], 0), experts - 1)], 1);
    ws.sorted[pos] = i;
  }
}

// ---- grouped GEMM ----

__device__ __forceinline__ float activate(GatedActivation act, float g) {
  switch (act) {
    case GatedActivation::kSilu: return g / (1.0f + expf(-g));
    case GatedActivation::kGeluTanh: {
      constexpr float kSqrt2OverPi = 0.7978845608028654f;
      return 0.5f * g * (1.0f + tanhf(kSqrt2OverPi * (g + 0.044715f * g * g * g)));
    }
    case GatedActivation::kGelu: return 0.5f * g * (1.0f + erff(g * 0.7071067811865476f));
    case GatedActivation::kSigmoid: return 1.0f / (1.0f + expf(-g));
  }
  return 0.0f;
}

struct GemmArgs {
  const __nv_bfloat16* a = nullptr;  // gate_up: x [tokens, K]; down: h [pairs, K] in grouped order
  const __nv_bfloat16* w = nullptr;  // [experts, w_rows, K]
  const float* weights = nullptr;    // [pairs] route weights (down)
  Workspace ws;
  int64_t w_rows = 0;                // 2·inter (gate_up) or hidden (down)
  int kdim = 0;                      // hidden (gate_up) or inter (down)
  int n = 0;                         // output columns: inter (gate_up) or hidden (down)
  int k = 0;                         // top-k
  GatedActivation act = GatedActivation::kSilu;
};

// gate_up (kGateUp): h[row][c] = act(x·gate[c]) · (x·up[c]) for 32 columns c of inter per block.
// down: y[pair][c] = weight[pair] · (h·down[c]) for 64 columns c of hidden per block.
template <bool kGateUp>
__global__ void __launch_bounds__(kGemmThreads) moe_gemm_kernel(GemmArgs g) {
  if (static_cast<int>(blockIdx.x) >= *g.ws.num_tiles) return;
  const int2 tile = g.ws.tiles[blockIdx.x];
  const int expert = tile.x, pos0 = tile.y;
  const int rows = min(kTileM, g.ws.offsets[expert + 1] - pos0);
  constexpr int kCols = kGateUp ? kTileN / 2 : kTileN;
  const int n0 = blockIdx.y * kCols;

  __shared__ __align__(16) float as[kTileK][kSmemStride];
  __shared__ __align__(16) float wt[kTileK][kSmemStride];
  __shared__ int64_t a_row[kTileM];  // element offset of each tile row's A row, −1 past the group
  __shared__ int64_t w_row[kTileN];  // element offset of each tile weight row, −1 past n
  const int tid = threadIdx.x;
  if (tid < kTileM) {
    int64_t offset = -1;
    if (tid < rows) {
      const int64_t src = kGateUp ? g.ws.sorted[pos0 + tid] / g.k : pos0 + tid;
      offset = src * g.kdim;
    }
    a_row[tid] = offset;
  } else if (tid < kTileM + kTileN) {
    const int c = tid - kTileM;
    const int col = n0 + (kGateUp ? c % kCols : c);
    int64_t offset = -1;
    if (col < g.n) offset = (static_cast<int64_t>(expert) * g.w_rows + (kGateUp && c >= kCols ? g.n : 0) + col) * g.kdim;
    w_row[c] = offset;
  }
  __syncthreads();

  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < g.kdim; k0 += kTileK) {
#pragma unroll
    for (int u = 0; u < kTileM * kTileK / kGemmThreads; ++u) {
      const int i = tid + u * kGemmThreads, r = i / kTileK, kk = i % kTileK;
      const bool in_k = k0 + kk < g.kdim;
      as[kk][r] = in_k && a_row[r] >= 0 ? __bfloat162float(g.a[a_row[r] + k0 + kk]) : 0.0f;
      wt[kk][r] = in_k && w_row[r] >= 0 ? __bfloat162float(g.w[w_row[r] + k0 + kk]) : 0.0f;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      const float4 a4 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
      float b[4];
      if constexpr (kGateUp) {  // gate columns 2tx, 2tx+1 and the matching up columns
        const float2 gate = *reinterpret_cast<const float2*>(&wt[kk][2 * tx]);
        const float2 up = *reinterpret_cast<const float2*>(&wt[kk][kCols + 2 * tx]);
        b[0] = gate.x, b[1] = gate.y, b[2] = up.x, b[3] = up.y;
      } else {
        const float4 w4 = *reinterpret_cast<const float4*>(&wt[kk][4 * tx]);
        b[0] = w4.x, b[1] = w4.y, b[2] = w4.z, b[3] = w4.w;
      }
      const float a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
      for (int r = 0; r < 4; ++r) {
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(a[r], b[c], acc[r][c]);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const int row = ty * 4 + r;
    if (row >= rows) continue;
    if constexpr (kGateUp) {
      __nv_bfloat16* dst = g.ws.h + static_cast<int64_t>(pos0 + row) * g.n;
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const int col = n0 + 2 * tx + c;
        if (col < g.n) dst[col] = __float2bfloat16(activate(g.act, acc[r][c]) * acc[r][2 + c]);
      }
    } else {
      const int pair = g.ws.sorted[pos0 + row];
      const float weight = g.weights[pair];
      float* dst = g.ws.y + static_cast<int64_t>(pair) * g.n;
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int col = n0 + 4 * tx + c;
        if (col < g.n) dst[col] = weight * acc[r][c];
      }
    }
  }
}

// out[t][c] = Σ_j y[t·k + j][c], j in order (accumulate: out[t][c] + that sum, in fp32).
__global__ void moe_combine_kernel(const float* y, __nv_bfloat16* out, int tokens, int hidden, int k,
                                   bool accumulate) {
  const int64_t total = static_cast<int64_t>(tokens) * hidden;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / hidden, c = i % hidden;
    float sum = 0.0f;
    for (int j = 0; j < k; ++j) sum += y[(t * k + j) * hidden + c];
    out[i] = __float2bfloat16(accumulate ? __bfloat162float(out[i]) + sum : sum);
  }
}

}  // namespace

cudaError_t launch_moe_route(const MoeRouteParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.experts < 1 || p.experts > kMoeRouteMaxExperts || p.k < 1 || p.k > kMoeRouteMaxTopk ||
      p.k > p.experts) {
    return cudaErrorInvalidValue;
  }
  if (p.tokens == 0) return cudaSuccess;
  moe_route_kernel<<<(p.tokens + kRouteWarps - 1) / kRouteWarps, kRouteWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_moe_sigmoid_route(const MoeSigmoidRouteParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.experts < 1 || p.experts > kMoeRouteMaxExperts || p.k < 1 || p.k > kMoeRouteMaxTopk ||
      p.groups < 1 || p.groups > kMoeRouteMaxGroups || p.experts % p.groups != 0 || p.experts / p.groups < 2 ||
      p.topk_groups < 1 || p.topk_groups > p.groups || p.k > p.topk_groups * (p.experts / p.groups)) {
    return cudaErrorInvalidValue;
  }
  if (p.tokens == 0) return cudaSuccess;
  moe_sigmoid_route_kernel<<<(p.tokens + kRouteWarps - 1) / kRouteWarps, kRouteWarps * 32, 0, stream>>>(p);
  return cudaGetLastError();
}

size_t moe_experts_workspace_bytes(int tokens, int k, int experts, int hidden, int inter) {
  return layout(tokens, k, experts, hidden, inter, nullptr, nullptr);
}

cudaError_t launch_moe_experts(const MoeExpertsParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.k < 1 || p.experts < 1 || p.experts > kMoeMaxExperts || p.hidden < 1 || p.inter < 1 ||
      (p.inter + kTileN / 2 - 1) / (kTileN / 2) > 65535 || (p.hidden + kTileN - 1) / kTileN > 65535) {
    return cudaErrorInvalidValue;
  }
  if (p.tokens == 0) return cudaSuccess;
  if (p.workspace == nullptr) return cudaErrorInvalidValue;
  Workspace ws;
  layout(p.tokens, p.k, p.experts, p.hidden, p.inter, p.workspace, &ws);
  const int64_t pairs = static_cast<int64_t>(p.tokens) * p.k;
  if (pairs > INT32_MAX) return cudaErrorInvalidValue;

  moe_group_kernel<<<1, kGroupThreads, 2 * p.experts * sizeof(int), stream>>>(p.ids, static_cast<int>(pairs),
                                                                             p.experts, ws);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  const unsigned tiles = static_cast<unsigned>(max_tiles(pairs, p.experts));
  GemmArgs g;
  g.ws = ws;
  g.k = p.k;
  g.act = p.act;
  g.a = static_cast<const __nv_bfloat16*>(p.x);
  g.w = static_cast<const __nv_bfloat16*>(p.gate_up);
  g.w_rows = 2 * static_cast<int64_t>(p.inter);
  g.kdim = p.hidden;
  g.n = p.inter;
  moe_gemm_kernel<true><<<dim3(tiles, (p.inter + kTileN / 2 - 1) / (kTileN / 2)), kGemmThreads, 0, stream>>>(g);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  g.a = ws.h;
  g.w = static_cast<const __nv_bfloat16*>(p.down);
  g.weights = p.weights;
  g.w_rows = p.hidden;
  g.kdim = p.inter;
  g.n = p.hidden;
  moe_gemm_kernel<false><<<dim3(tiles, (p.hidden + kTileN - 1) / kTileN), kGemmThreads, 0, stream>>>(g);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;

  const int64_t total = static_cast<int64_t>(p.tokens) * p.hidden;
  const unsigned blocks = static_cast<unsigned>(total / 256 + 1 < 4096 ? total / 256 + 1 : 4096);
  moe_combine_kernel<<<blocks, 256, 0, stream>>>(ws.y, static_cast<__nv_bfloat16*>(p.out), p.tokens, p.hidden, p.k,
                                                     p.accumulate);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
