// Exact, deterministic top-k per row (contract in kernels/dsa/params.h; reference cpu::dsa_topk).
//
// Each element gets a unique 64-bit composite key (order-preserving score key << 32 | ~index), so
// "the k largest composites" is exactly "the k largest scores, ties to the lower index". A radix
// select finds the k-th largest composite digit by digit from the top (widths 12, 8, 8, 4 over the
// score key, then 8 × 4 over ~index), stopping as soon as the threshold bucket is taken whole; the
// selection is then every element whose composite prefix is >= the threshold prefix, emitted in
// index order through block-wide prefix sums (no atomics decide membership or order).
//
// Two schedules of the same algorithm:
//  - one block per row (no workspace, or rows enough to fill the GPU): a 4096-bin histogram of the
//    row (global memory, 16-byte loads, eight private copies against shared atomic collisions),
//    the threshold bucket compacted on chip (order irrelevant: later rounds only count) and refined
//    there (a bucket larger than the buffer is refined by re-reading the row, never truncated), then
//    the emission pass;
//  - split rows (few rows): each row is cut into `chunk`-element pieces, one block each.
//      histogram: per-piece 4096-bin histograms summed into the row's global histogram (integer
//        atomics: the sums do not depend on order);
//      collect: every piece block finds the threshold bin from that histogram, counts its elements
//        above the bin and in it, and appends the bin's elements to the row's candidate list;
//      threshold: one block per row refines the candidates on chip (or, when the bucket exceeds the
//        buffer, re-reads the row as the one-block schedule does), then counts each piece's share
//        of the selection and turns the counts into output offsets;
//      emit: every piece writes its selected indices, in index order, from its offset.
//    Five graph nodes (a memset and four kernels); grids come from max_context_len, pieces beyond a
//    row's length exit at once.
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cstdint>

#include "kernels/dsa/dsa_device.cuh"
#include "kernels/dsa/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 1024;       // whole-row kernels (one-block schedule, split threshold)
constexpr int kPieceThreads = 512;   // per-piece kernels of the split schedule
constexpr int kTopBits = 12;
constexpr int kTopBins = 1 << kTopBits;
constexpr int kCopies = 8;  // private histograms (warp w counts into copy w % 8): fewer atomic collisions
constexpr int kCapacity = 8192;  // candidates kept on chip
constexpr int kRounds = 8;
constexpr int kMaxPieces = 256;
constexpr int kMinChunk = 4096;  // elements per piece, at least (a multiple of 4: 16-byte loads stay aligned)
__constant__ int kWidths[kRounds] = {kTopBits, 8, 8, 4, 8, 8, 8, 8};  // sums to 64

using Scan = cub::BlockScan<uint32_t, kThreads>;
using PieceScan = cub::BlockScan<uint32_t, kPieceThreads>;

struct Smem {
  uint32_t hist[kCopies][kTopBins];  // copy 0 holds the merged counts find_bin reads
  uint32_t cand_key[kCapacity];
  uint32_t cand_idx[kCapacity];
  uint32_t piece_count[kMaxPieces];  // split threshold: selected elements per piece
  typename Scan::TempStorage scan;
  uint32_t bin, need, count, fill;
};

// The split schedule's global workspace: hist and cand_count are zeroed before every launch.
struct SplitWorkspace {
  uint32_t* hist;        // [rows][kTopBins] top-bit histogram of the row
  uint32_t* cand_count;  // [rows] appended candidates (may exceed kCapacity: then none is kept)
  uint32_t* above;       // [rows][pieces] elements above the threshold bin, per piece
  uint32_t* in_bin;      // [rows][pieces] elements in the threshold bin, per piece
  uint32_t* offset;      // [rows][pieces] where each piece's selection starts in the output row
  uint32_t* thresh;      // [rows][4]: threshold prefix (low, high word), bits dropped
  uint64_t* cand;        // [rows][kCapacity] composites of the threshold bin's elements
};

struct SplitPlan {
  int pieces = 1;
  int chunk = 0;
};

__host__ __device__ inline size_t zeroed_words(int rows) { return static_cast<size_t>(rows) * (kTopBins + 1); }

__host__ __device__ inline SplitWorkspace carve(void* base, int rows, int pieces) {
  SplitWorkspace w;
  w.hist = static_cast<uint32_t*>(base);
  w.cand_count = w.hist + static_cast<size_t>(rows) * kTopBins;
  w.above = w.cand_count + rows;
  w.in_bin = w.above + static_cast<size_t>(rows) * pieces;
  w.offset = w.in_bin + static_cast<size_t>(rows) * pieces;
  w.thresh = w.offset + static_cast<size_t>(rows) * pieces;
  const size_t words = static_cast<size_t>(w.thresh + 4 * static_cast<size_t>(rows) - w.hist);
  w.cand = reinterpret_cast<uint64_t*>(w.hist + (words + 1) / 2 * 2);
  return w;
}

size_t split_bytes(int rows, int pieces) {
  const size_t words = zeroed_words(rows) + 3 * static_cast<size_t>(rows) * pieces + 4 * static_cast<size_t>(rows);
  return (words + 1) / 2 * 8 + static_cast<size_t>(rows) * kCapacity * 8;
}

// Pieces so that rows · pieces is about two blocks per SM, each piece >= kMinChunk elements.
SplitPlan plan_split(int rows, int max_len, int num_sms) {
  SplitPlan plan;
  const int want = std::min(kMaxPieces, std::max(1, (2 * num_sms + rows - 1) / rows));
  const int per = (max_len + want - 1) / want;
  plan.chunk = std::max(kMinChunk, (per + kMinChunk - 1) / kMinChunk * kMinChunk);
  plan.pieces = std::max(1, (max_len + plan.chunk - 1) / plan.chunk);
  return plan;
}

__device__ __forceinline__ uint64_t composite(float v, uint32_t index) {
  return (static_cast<uint64_t>(dsa::score_key(v)) << 32) | static_cast<uint32_t>(~index);
}

// The bin holding the need-th largest element counting from the top bin of hist[0, bins); writes
// *bin, *need_in (what is still needed inside that bin) and *count (its size). All kBlock threads.
template <int kBlock>
__device__ void find_bin(const uint32_t* hist, int bins, uint32_t need,
                         typename cub::BlockScan<uint32_t, kBlock>::TempStorage& scan, uint32_t* bin,
                         uint32_t* need_in, uint32_t* count) {
  const int per = (bins + kBlock - 1) / kBlock;
  const int first = threadIdx.x * per;  // positions counted from the top bin
  uint32_t local = 0;
  for (int q = first; q < first + per && q < bins; ++q) local += hist[bins - 1 - q];
  uint32_t before;
  cub::BlockScan<uint32_t, kBlock>(scan).ExclusiveSum(local, before);
  for (int q = first; q < first + per && q < bins; ++q) {
    const uint32_t c = hist[bins - 1 - q];
    if (before < need && before + c >= need) {
      *bin = static_cast<uint32_t>(bins - 1 - q);
      *need_in = need - before;
      *count = c;
    }
    before += c;
  }
  __syncthreads();
}

// Calls fn(i, x[i]) for every i < len, each element by one of kBlock threads; 16-byte loads, eight
// in flight per thread, when x is 16-byte aligned.
template <int kBlock, typename Fn>
__device__ __forceinline__ void for_each(const float* x, int len, bool vec, Fn&& fn) {
  int tail = 0;
  if (vec) {
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const int n4 = len / 4;
    int i = threadIdx.x;
    for (; i + 7 * kBlock < n4; i += 8 * kBlock) {
      float4 v[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) v[u] = __ldg(x4 + i + u * kBlock);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const int b = 4 * (i + u * kBlock);
        fn(b, v[u].x);
        fn(b + 1, v[u].y);
        fn(b + 2, v[u].z);
        fn(b + 3, v[u].w);
      }
    }
    for (; i < n4; i += kBlock) {
      const float4 v = __ldg(x4 + i);
      fn(4 * i, v.x);
      fn(4 * i + 1, v.y);
      fn(4 * i + 2, v.z);
      fn(4 * i + 3, v.w);
    }
    tail = 4 * n4;
  }
  for (int i = tail + threadIdx.x; i < len; i += kBlock) fn(i, __ldg(x + i));
}

struct Threshold {
  uint64_t prefix;  // the threshold's top `used` composite bits
  int used;
};

// Radix rounds from `round` on, with the state after the previous rounds: selects while prefix's
// bucket is not taken whole. On chip, the candidates s.cand_*[0, s.fill) are exactly the elements
// of the current bucket; otherwise the row is re-read each round, and a bucket that fits is
// compacted on chip. One 1024-thread block.
__device__ Threshold refine(Smem& s, const float* x, int len, bool vec, int round, Threshold t, uint32_t need,
                            bool on_chip) {
  uint32_t* my_hist = s.hist[(threadIdx.x >> 5) % kCopies];
  for (; round < kRounds; ++round) {
    const int width = kWidths[round];
    const int bins = 1 << width;
    const int shift = 64 - t.used - width;
    const uint64_t prefix = t.prefix;
    const int used = t.used;
    for (int i = threadIdx.x; i < kCopies * bins; i += kThreads) s.hist[i / bins][i % bins] = 0;
    __syncthreads();
    if (on_chip) {
      for (uint32_t i = threadIdx.x; i < s.fill; i += kThreads) {
        const uint64_t v = (static_cast<uint64_t>(s.cand_key[i]) << 32) | s.cand_idx[i];
        if (used == 0 || (v >> (64 - used)) == prefix) atomicAdd(&my_hist[(v >> shift) & (bins - 1)], 1u);
      }
    } else {
      for_each<kThreads>(x, len, vec, [&](int i, float value) {
        const uint64_t v = composite(value, static_cast<uint32_t>(i));
        if (used == 0 || (v >> (64 - used)) == prefix) atomicAdd(&my_hist[(v >> shift) & (bins - 1)], 1u);
      });
    }
    __syncthreads();
    for (int i = threadIdx.x; i < bins; i += kThreads) {
      uint32_t total = 0;
#pragma unroll
      for (int c = 0; c < kCopies; ++c) total += s.hist[c][i];
      s.hist[0][i] = total;
    }
    __syncthreads();
    find_bin<kThreads>(s.hist[0], bins, need, s.scan, &s.bin, &s.need, &s.count);
    t.prefix = (prefix << width) | s.bin;
    t.used += width;
    need = s.need;
    if (s.count == need) break;  // the whole bucket is taken: the threshold is this prefix
    if (!on_chip && s.count <= kCapacity) {
      // Compact the bucket's elements on chip (their order does not matter to later rounds).
      if (threadIdx.x == 0) s.fill = 0;
      __syncthreads();
      const uint64_t bucket = t.prefix;
      const int kept = t.used;
      for_each<kThreads>(x, len, vec, [&](int i, float value) {
        const uint64_t v = composite(value, static_cast<uint32_t>(i));
        if ((v >> (64 - kept)) == bucket) {
          const uint32_t slot = atomicAdd(&s.fill, 1u);
          s.cand_key[slot] = static_cast<uint32_t>(v >> 32);
          s.cand_idx[slot] = static_cast<uint32_t>(v);
        }
      });
      __syncthreads();
      on_chip = true;
    }
  }
  return t;
}

// Writes, in index order from out[base], every i in [0, len) whose composite prefix is >= the
// threshold (x and i are relative to the piece; first is the piece's first index). Each thread
// takes 16 consecutive elements per tile (four 16-byte loads in flight), one prefix sum per tile.
template <int kBlock>
__device__ void emit(const float* x, int first, int len, bool vec, Threshold t, int* out, uint32_t base,
                     typename cub::BlockScan<uint32_t, kBlock>::TempStorage& scan) {
  constexpr int kPer = 16;
  const int drop = 64 - t.used;
  for (int tile = 0; tile < len; tile += kPer * kBlock) {
    const int mine0 = tile + kPer * threadIdx.x;
    float val[kPer];
    if (vec && mine0 + kPer <= len) {
#pragma unroll
      for (int u = 0; u < kPer / 4; ++u) {
        const float4 v = __ldg(reinterpret_cast<const float4*>(x + mine0) + u);
        val[4 * u] = v.x;
        val[4 * u + 1] = v.y;
        val[4 * u + 2] = v.z;
        val[4 * u + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int e = 0; e < kPer; ++e) val[e] = mine0 + e < len ? __ldg(x + mine0 + e) : 0.0f;
    }
    uint32_t take = 0, mine = 0;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const int i = mine0 + e;
      if (i < len && (composite(val[e], static_cast<uint32_t>(first + i)) >> drop) >= t.prefix) {
        take |= 1u << e;
        ++mine;
      }
    }
    uint32_t offset, total;
    cub::BlockScan<uint32_t, kBlock>(scan).ExclusiveSum(mine, offset, total);
    offset += base;
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      if (take & (1u << e)) out[offset++] = first + mine0 + e;
    }
    base += total;
    __syncthreads();  // the scan storage is reused by the next tile
  }
}

__device__ __forceinline__ int row_len(const DsaTopkParams& p, int row) {
  int seq;
  return dsa::row_length(p.query_start, p.context_lens, p.seqs, row, &seq);
}

// len <= k: every token, then -1.
__device__ __forceinline__ void write_all(int* out, int len, int k) {
  for (int i = threadIdx.x; i < k; i += blockDim.x) out[i] = i < len ? i : -1;
}

__global__ void __launch_bounds__(kThreads) topk_row_kernel(DsaTopkParams p) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const int row = blockIdx.x;
  const int len = row_len(p, row);
  int* out = p.indices + static_cast<int64_t>(row) * p.k;
  if (len <= p.k) {
    write_all(out, len, p.k);
    return;
  }
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  const Threshold t = refine(s, x, len, vec, 0, Threshold{0, 0}, static_cast<uint32_t>(p.k), false);
  emit<kThreads>(x, 0, len, vec, t, out, 0, s.scan);
}

// ---- split schedule ----

struct PieceRange {
  int len, begin, end;
};

__device__ __forceinline__ PieceRange piece_range(const DsaTopkParams& p, int row, int chunk) {
  PieceRange r;
  r.len = row_len(p, row);
  r.begin = blockIdx.x * chunk;
  r.end = min(r.len, r.begin + chunk);
  return r;
}

__global__ void __launch_bounds__(kPieceThreads) topk_histogram_kernel(DsaTopkParams p, int pieces, int chunk) {
  constexpr int kPieceCopies = 2;
  __shared__ uint32_t hist[kPieceCopies][kTopBins];
  const int row = blockIdx.y;
  const PieceRange r = piece_range(p, row, chunk);
  if (r.len <= p.k || r.begin >= r.end) return;
  for (int i = threadIdx.x; i < kPieceCopies * kTopBins; i += kPieceThreads) hist[i / kTopBins][i % kTopBins] = 0;
  __syncthreads();
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride + r.begin;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  uint32_t* mine = hist[(threadIdx.x >> 5) % kPieceCopies];
  for_each<kPieceThreads>(x, r.end - r.begin, vec,
                          [&](int, float value) { atomicAdd(&mine[dsa::score_key(value) >> (32 - kTopBits)], 1u); });
  __syncthreads();
  SplitWorkspace w = carve(p.workspace, p.rows, pieces);
  uint32_t* global = w.hist + static_cast<int64_t>(row) * kTopBins;
  for (int i = threadIdx.x; i < kTopBins; i += kPieceThreads) {
    const uint32_t total = hist[0][i] + hist[1][i];
    if (total != 0) atomicAdd(global + i, total);
  }
}

__global__ void __launch_bounds__(kPieceThreads) topk_collect_kernel(DsaTopkParams p, int pieces, int chunk) {
  __shared__ uint32_t hist[kTopBins];
  __shared__ typename PieceScan::TempStorage scan;
  __shared__ uint32_t bin, need, count, above, in_bin;
  const int row = blockIdx.y;
  const PieceRange r = piece_range(p, row, chunk);
  if (r.len <= p.k || r.begin >= r.end) return;
  SplitWorkspace w = carve(p.workspace, p.rows, pieces);
  const uint32_t* global = w.hist + static_cast<int64_t>(row) * kTopBins;
  for (int i = threadIdx.x; i < kTopBins; i += kPieceThreads) hist[i] = global[i];
  if (threadIdx.x == 0) above = in_bin = 0;
  __syncthreads();
  find_bin<kPieceThreads>(hist, kTopBins, static_cast<uint32_t>(p.k), scan, &bin, &need, &count);
  const uint32_t b = bin;
  // Candidates only when the bin must be refined and fits on chip (the threshold kernel re-reads
  // the row otherwise).
  const bool keep = count != need && count <= kCapacity;
  uint64_t* cand = w.cand + static_cast<int64_t>(row) * kCapacity;
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride + r.begin;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  uint32_t n_above = 0, n_in = 0;
  for_each<kPieceThreads>(x, r.end - r.begin, vec, [&](int i, float value) {
    const uint32_t key = dsa::score_key(value);
    const uint32_t top = key >> (32 - kTopBits);
    n_above += top > b;
    if (top == b) {
      ++n_in;
      if (keep) {
        const uint32_t slot = atomicAdd(w.cand_count + row, 1u);
        if (slot < kCapacity) cand[slot] = composite(value, static_cast<uint32_t>(r.begin + i));
      }
    }
  });
  if (n_above != 0) atomicAdd(&above, n_above);
  if (n_in != 0) atomicAdd(&in_bin, n_in);
  __syncthreads();
  if (threadIdx.x == 0) {
    w.above[static_cast<int64_t>(row) * pieces + blockIdx.x] = above;
    w.in_bin[static_cast<int64_t>(row) * pieces + blockIdx.x] = in_bin;
  }
}

__global__ void __launch_bounds__(kThreads) topk_threshold_kernel(DsaTopkParams p, int pieces, int chunk) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  Smem& s = *reinterpret_cast<Smem*>(smem_raw);
  const int row = blockIdx.x;
  const int len = row_len(p, row);
  if (len <= p.k) {
    write_all(p.indices + static_cast<int64_t>(row) * p.k, len, p.k);
    return;
  }
  SplitWorkspace w = carve(p.workspace, p.rows, pieces);
  const int64_t row_pieces = static_cast<int64_t>(row) * pieces;
  const int used_pieces = (len + chunk - 1) / chunk;
  const uint32_t* global = w.hist + static_cast<int64_t>(row) * kTopBins;
  for (int i = threadIdx.x; i < kTopBins; i += kThreads) s.hist[0][i] = global[i];
  for (int i = threadIdx.x; i < kMaxPieces; i += kThreads) s.piece_count[i] = 0;
  __syncthreads();
  find_bin<kThreads>(s.hist[0], kTopBins, static_cast<uint32_t>(p.k), s.scan, &s.bin, &s.need, &s.count);
  Threshold t{s.bin, kTopBits};
  const uint32_t need = s.need, count = s.count;
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  if (count == need) {
    // The whole bin is taken: each piece keeps what is above the bin and in it.
    for (int i = threadIdx.x; i < used_pieces; i += kThreads) {
      s.piece_count[i] = w.above[row_pieces + i] + w.in_bin[row_pieces + i];
    }
  } else if (count <= kCapacity) {
    const uint64_t* cand = w.cand + static_cast<int64_t>(row) * kCapacity;
    for (uint32_t i = threadIdx.x; i < count; i += kThreads) {
      const uint64_t v = cand[i];
      s.cand_key[i] = static_cast<uint32_t>(v >> 32);
      s.cand_idx[i] = static_cast<uint32_t>(v);
    }
    if (threadIdx.x == 0) s.fill = count;
    __syncthreads();
    t = refine(s, x, len, vec, 1, t, need, true);
    const int drop = 64 - t.used;
    for (int i = threadIdx.x; i < used_pieces; i += kThreads) atomicAdd(&s.piece_count[i], w.above[row_pieces + i]);
    for (uint32_t i = threadIdx.x; i < count; i += kThreads) {
      const uint64_t v = (static_cast<uint64_t>(s.cand_key[i]) << 32) | s.cand_idx[i];
      if ((v >> drop) >= t.prefix) atomicAdd(&s.piece_count[~s.cand_idx[i] / chunk], 1u);
    }
  } else {
    // The bin overflows the chip (masses of ties): the one-block refinement over the row, then a
    // pass counting each piece's selected elements.
    t = refine(s, x, len, vec, 1, t, need, false);
    const int drop = 64 - t.used;
    const Threshold fixed = t;
    for_each<kThreads>(x, len, vec, [&](int i, float value) {
      if ((composite(value, static_cast<uint32_t>(i)) >> drop) >= fixed.prefix) atomicAdd(&s.piece_count[i / chunk], 1u);
    });
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    uint32_t run = 0;
    for (int i = 0; i < used_pieces; ++i) {
      w.offset[row_pieces + i] = run;
      run += s.piece_count[i];
    }
    uint32_t* th = w.thresh + 4 * static_cast<int64_t>(row);
    th[0] = static_cast<uint32_t>(t.prefix);
    th[1] = static_cast<uint32_t>(t.prefix >> 32);
    th[2] = static_cast<uint32_t>(t.used);
  }
}

__global__ void __launch_bounds__(kPieceThreads) topk_emit_kernel(DsaTopkParams p, int pieces, int chunk) {
  __shared__ typename PieceScan::TempStorage scan;
  const int row = blockIdx.y;
  const PieceRange r = piece_range(p, row, chunk);
  if (r.len <= p.k || r.begin >= r.end) return;
  SplitWorkspace w = carve(p.workspace, p.rows, pieces);
  const uint32_t* th = w.thresh + 4 * static_cast<int64_t>(row);
  const Threshold t{(static_cast<uint64_t>(th[1]) << 32) | th[0], static_cast<int>(th[2])};
  const float* x = p.logits + static_cast<int64_t>(row) * p.logits_stride + r.begin;
  const bool vec = (reinterpret_cast<uintptr_t>(x) & 15) == 0;
  emit<kPieceThreads>(x, r.begin, r.end - r.begin, vec, t, p.indices + static_cast<int64_t>(row) * p.k,
                      w.offset[static_cast<int64_t>(row) * pieces + blockIdx.x], scan);
}

int bound(const DsaTopkParams& p) {
  return p.max_context_len > 0 ? p.max_context_len : static_cast<int>(std::min<int64_t>(p.logits_stride, 1 << 30));
}

cudaError_t set_smem(const void* kernel) {
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(sizeof(Smem)));
}

}  // namespace

size_t dsa_topk_workspace_bytes(int rows, int max_context_len, int num_sms) {
  if (rows <= 0 || num_sms <= 0) return 0;
  const SplitPlan plan = plan_split(rows, max_context_len, num_sms);
  return plan.pieces > 1 ? split_bytes(rows, plan.pieces) : 0;
}

cudaError_t launch_dsa_topk(const DsaTopkParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.seqs <= 0 || p.k <= 0 || p.k > 4096 || p.max_context_len < 0 ||
      (p.max_context_len > 0 && p.logits_stride < p.max_context_len)) {
    return cudaErrorInvalidValue;
  }
  const int smem = static_cast<int>(sizeof(Smem));
  // Once per process (not stream operations, so graph capture never sees them after the first call).
  static const cudaError_t row_attr = set_smem(reinterpret_cast<const void*>(topk_row_kernel));
  static const cudaError_t threshold_attr = set_smem(reinterpret_cast<const void*>(topk_threshold_kernel));
  if (row_attr != cudaSuccess) return row_attr;
  if (threshold_attr != cudaSuccess) return threshold_attr;
  const SplitPlan plan = p.workspace == nullptr || p.num_sms <= 0 ? SplitPlan{} : plan_split(p.rows, bound(p), p.num_sms);
  if (plan.pieces <= 1) {
    topk_row_kernel<<<p.rows, kThreads, smem, stream>>>(p);
    return cudaGetLastError();
  }
  const cudaError_t zero = cudaMemsetAsync(p.workspace, 0, zeroed_words(p.rows) * sizeof(uint32_t), stream);
  if (zero != cudaSuccess) return zero;
  const dim3 grid(plan.pieces, p.rows);
  topk_histogram_kernel<<<grid, kPieceThreads, 0, stream>>>(p, plan.pieces, plan.chunk);
  topk_collect_kernel<<<grid, kPieceThreads, 0, stream>>>(p, plan.pieces, plan.chunk);
  topk_threshold_kernel<<<p.rows, kThreads, smem, stream>>>(p, plan.pieces, plan.chunk);
  topk_emit_kernel<<<grid, kPieceThreads, 0, stream>>>(p, plan.pieces, plan.chunk);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
