// Sampling on the device: one block of kThreads per row of F32 logits, in the order of
// model/sampling/sampling_row.h, matching model/sampling/reference_sampler.cc:
//   1. NaN and ids outside the allow mask become -inf, in place;
//   2. logprobs: the row max, a double sum of exp(x - max) (a block reduction: a different order of
//      the same terms than the reference, so a logprob may differ from it in the last float bit), and
//      the N best by N rounds of a block argmax (N ≤ kMaxTopLogprobs; each round reads the row);
//   3-5. bias (one thread, list order), masks and penalties (a thread per entry: distinct ids) in place,
//      after saving each listed id's step-1 value for the token's logprob;
//   6. greedy: a block argmax over 64-bit keys (value, then lower id). Otherwise: the candidates and
//      their order are the reference's; selections by rank (top_k's k-th key), by mass (top_p's end,
//      and the draw when the candidates are sorted) descend a radix tree of the 64-bit keys, 8 bits a
//      level, over per-warp shared histograms (counts and double masses); unsorted draws scan the
//      row in id order (per-thread chunks, a block prefix sum).
// Cost (one block per row, so B rows use B SMs; each pass reads the row, 512 KB at a 128K vocabulary,
// from L2 after the first): greedy 2 passes; logprobs 2 + N; a draw about 3 more, plus one pass per
// radix level of each selection (top_k, top_p's end, the sorted draw), at most 8 and usually 3-4 (a
// level whose bin holds one element ends it). No limit on k or on the nucleus size: nothing is sorted.
// Every product and sum that the reference rounds separately is rounded separately here too (__fmul_rn
// and friends: nvcc would otherwise fuse them), so processed logits and weights are the reference's.
// Where the device's double sums differ from the reference's (their order; exp to within an ulp),
// a draw can differ only when u · total lies within about 1e-15 · total of a CDF boundary, a top_p
// target of a prefix mass, or a weight of min_p: the knife edges the tests stay away from.
#include <cstdint>

#include "common/rng.h"
#include "kernels/sampling/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 256;
__device__ __forceinline__ float neg_inf() { return __int_as_float(static_cast<int>(0xff800000u)); }

// Unsigned order of floats (-0 counted as +0: the reference compares values, not bits).
__device__ __forceinline__ uint32_t ordered_bits(float x) {
  if (x == 0.0f) x = 0.0f;
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) != 0 ? ~b : (b | 0x80000000u);
}

// Larger key = better candidate: larger value, then lower id.
__device__ __forceinline__ uint64_t sort_key(float x, int id) {
  return (static_cast<uint64_t>(ordered_bits(x)) << 32) | static_cast<uint64_t>(0xffffffffu - static_cast<uint32_t>(id));
}
__device__ __forceinline__ int key_id(uint64_t key) {
  return static_cast<int>(0xffffffffu - static_cast<uint32_t>(key & 0xffffffffu));
}

struct Histograms {
  double mass[kWarps][kBins];
  int count[kWarps][kBins];
  int index[kWarps][kBins];
};
constexpr size_t kDynamicSmem = sizeof(Histograms);

struct Shared {
  double red_d[kWarps];
  uint64_t red_k[kWarps];
  int red_i[kWarps];
  double bin_mass[kBins];
  int bin_count[kBins];
  int bin_index[kBins];
  int found_digit;
  double found_above;
  float token_raw;
  int token_raw_found;
};

// Sum over the block in a fixed order (warps, then the kWarps partials in turn): every thread gets
// the same value, and the same inputs give the same sum on every run. `partials` is shared scratch.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T (&partials)[kWarps]) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) partials[threadIdx.x >> 5] = v;
  __syncthreads();
  T r = 0;
  for (int w = 0; w < kWarps; ++w) r += partials[w];
  __syncthreads();
  return r;
}

__device__ __forceinline__ uint64_t block_max_key(uint64_t v, Shared& s) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t other = __shfl_xor_sync(0xffffffffu, v, o);
    v = other > v ? other : v;
  }
  if ((threadIdx.x & 31) == 0) s.red_k[threadIdx.x >> 5] = v;
  __syncthreads();
  uint64_t r = 0;
  for (int w = 0; w < kWarps; ++w) r = s.red_k[w] > r ? s.red_k[w] : r;
  __syncthreads();
  return r;
}

__device__ __forceinline__ uint64_t block_min_key(uint64_t v, Shared& s) {
  return ~block_max_key(~v, s);
}

// Among the row's elements i for which member(i, x[i], &metric) holds, the first in descending key
// order whose running metric (inclusive) exceeds `target` (strict) or reaches it (not strict); its
// key in *key. False (in every thread) when none does.
template <typename Member>
__device__ bool select_by_metric(const float* x, int vocab, const Member& member, double target, bool strict,
                                 uint64_t* key, Histograms& h, Shared& s) {
  const int warp = static_cast<int>(threadIdx.x >> 5);
  uint64_t prefix = 0;
  double above = 0.0;
  for (int level = 0; level < 8; ++level) {
    const int shift = 56 - 8 * level;
    for (int j = static_cast<int>(threadIdx.x); j < kWarps * kBins; j += kThreads) {
      (&h.mass[0][0])[j] = 0.0;
      (&h.count[0][0])[j] = 0;
    }
    __syncthreads();
    for (int i = static_cast<int>(threadIdx.x); i < vocab; i += kThreads) {
      const float xi = x[i];
      const uint64_t k = sort_key(xi, i);
      if (level > 0 && (k >> (shift + 8)) != (prefix >> (shift + 8))) continue;  // before member()'s exp
      double metric = 0.0;
      if (!member(i, xi, &metric)) continue;
      const int bin = static_cast<int>((k >> shift) & 0xff);
      atomicAdd(&h.mass[warp][bin], metric);
      atomicAdd(&h.count[warp][bin], 1);
      h.index[warp][bin] = i;  // meaningful only where the bin's count is 1
    }
    __syncthreads();
    if (threadIdx.x < kBins) {
      double m = 0.0;
      int c = 0, index = -1;
      for (int w = 0; w < kWarps; ++w) {
        m += h.mass[w][threadIdx.x];
        c += h.count[w][threadIdx.x];
        if (h.count[w][threadIdx.x] > 0) index = h.index[w][threadIdx.x];
      }
      s.bin_mass[threadIdx.x] = m;
      s.bin_count[threadIdx.x] = c;
      s.bin_index[threadIdx.x] = index;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double cum = above;
      int found = -1;
      for (int d = kBins - 1; d >= 0; --d) {
        if (s.bin_count[d] == 0) continue;
        const double next = cum + s.bin_mass[d];
        if (strict ? next > target : next >= target) {
          found = d;
          break;
        }
        cum = next;
      }
      s.found_digit = found;
      s.found_above = cum;
    }
    __syncthreads();
    const int found = s.found_digit;
    if (found < 0) return false;
    above = s.found_above;
    prefix |= static_cast<uint64_t>(found) << shift;
    if (s.bin_count[found] == 1) {
      const int i = s.bin_index[found];
      *key = sort_key(x[i], i);
      __syncthreads();
      return true;
    }
    __syncthreads();
  }
  *key = prefix;
  return true;
}

// The first id (ascending) among members whose running metric exceeds `target`; when rounding leaves
// none, the last member. -1 when there is no member.
template <typename Member>
__device__ int scan_ids(const float* x, int vocab, const Member& member, double target, Shared& s) {
  const int chunk = (vocab + kThreads - 1) / kThreads;
  const int begin = min(vocab, static_cast<int>(threadIdx.x) * chunk);
  const int end = min(vocab, begin + chunk);
  double local = 0.0;
  int last = -1;
  for (int i = begin; i < end; ++i) {
    double metric = 0.0;
    if (member(i, x[i], &metric)) {
      local += metric;
      last = i;
    }
  }
  // The chunk's mass lies in [before, end): `end` of a thread is, bit for bit, `before` of the next
  // (the same sums in the same order), so at most one chunk holds the crossing.
  const int lane = static_cast<int>(threadIdx.x & 31), warp = static_cast<int>(threadIdx.x >> 5);
  double inclusive = local;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const double up = __shfl_up_sync(0xffffffffu, inclusive, o);
    if (lane >= o) inclusive += up;
  }
  double exclusive = __shfl_up_sync(0xffffffffu, inclusive, 1);
  if (lane == 0) exclusive = 0.0;
  if (lane == 31) s.red_d[warp] = inclusive;
  __syncthreads();
  double warp_offset = 0.0;
  for (int w = 0; w < warp; ++w) warp_offset += s.red_d[w];
  const double before = warp_offset + exclusive;
  const double end_mass = warp_offset + inclusive;
  if (threadIdx.x == 0) s.red_i[0] = -1;
  const int last_member = static_cast<int>(block_max_key(static_cast<uint64_t>(last + 1), s)) - 1;
  if (before <= target && end_mass > target) {
    double cum = before;
    int chosen = last;
    for (int i = begin; i < end; ++i) {
      double metric = 0.0;
      if (member(i, x[i], &metric)) {
        cum += metric;
        if (cum > target) {
          chosen = i;
          break;
        }
      }
    }
    s.red_i[0] = chosen;
  }
  __syncthreads();
  const int chosen = s.red_i[0];
  __syncthreads();
  return chosen >= 0 ? chosen : last_member;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(SampleParams p) {
  extern __shared__ __align__(16) unsigned char dynamic_smem[];
  Histograms& h = *reinterpret_cast<Histograms*>(dynamic_smem);
  __shared__ Shared s;
  const SamplingRowParams rp = p.row_params[blockIdx.x];
  float* x = p.logits + static_cast<int64_t>(blockIdx.x) * p.vocab;
  const int vocab = p.vocab;
  const int tid = static_cast<int>(threadIdx.x);

  // 1. NaN and disallowed ids → -inf.
  for (int i = tid; i < vocab; i += kThreads) {
    const float v = x[i];
    bool allowed = true;
    if (rp.allow_begin >= 0) allowed = ((p.allow_words[rp.allow_begin + i / 32] >> (i % 32)) & 1u) != 0;
    if (v != v || !allowed) x[i] = neg_inf();
  }
  __syncthreads();

  // 2. Logprobs of the step-1 row.
  double log_total = 0.0;
  const bool want_logprobs = rp.num_logprobs >= 0;
  if (want_logprobs) {
    uint64_t best = 0;
    for (int i = tid; i < vocab; i += kThreads) {
      const uint64_t k = sort_key(x[i], i);
      best = k > best ? k : best;
    }
    best = block_max_key(best, s);
    const float max_value = x[key_id(best)];
    double sum = 0.0;
    for (int i = tid; i < vocab; i += kThreads) sum += exp(static_cast<double>(x[i] - max_value));
    sum = block_sum(sum, s.red_d);
    log_total = static_cast<double>(max_value) + log(sum);
    uint64_t previous = ~uint64_t{0};
    for (int n = 0; n < rp.num_logprobs && n < vocab; ++n) {
      uint64_t round = 0;
      for (int i = tid; i < vocab; i += kThreads) {
        const uint64_t k = sort_key(x[i], i);
        if (k < previous && k > round) round = k;
      }
      round = block_max_key(round, s);
      previous = round;
      if (tid == 0) {
        const int id = key_id(round);
        p.out_top_ids[blockIdx.x * p.top_stride + n] = id;
        p.out_top_logprobs[blockIdx.x * p.top_stride + n] =
            static_cast<float>(static_cast<double>(x[id]) - log_total);
      }
    }
  }

  // 3-5. Save the listed ids' step-1 values, then bias, masks and penalties in place.
  for (int j = tid; j < rp.bias_count; j += kThreads) {
    const int id = p.bias[rp.bias_begin + j].id;
    p.bias_raw[rp.bias_begin + j] = id >= 0 && id < vocab ? x[id] : 0.0f;
  }
  for (int j = tid; j < rp.mask_count; j += kThreads) {
    const int id = p.mask_ids[rp.mask_begin + j];
    p.mask_raw[rp.mask_begin + j] = id >= 0 && id < vocab ? x[id] : 0.0f;
  }
  for (int j = tid; j < rp.penalty_count; j += kThreads) {
    const int id = p.penalties[rp.penalty_begin + j].id;
    p.penalty_raw[rp.penalty_begin + j] = id >= 0 && id < vocab ? x[id] : 0.0f;
  }
  __syncthreads();
  if (tid == 0) {
    for (int j = 0; j < rp.bias_count; ++j) {
      const SamplingBias b = p.bias[rp.bias_begin + j];
      if (b.id >= 0 && b.id < vocab) x[b.id] += b.value;
    }
  }
  __syncthreads();
  for (int j = tid; j < rp.mask_count; j += kThreads) {
    const int id = p.mask_ids[rp.mask_begin + j];
    if (id >= 0 && id < vocab) x[id] = neg_inf();
  }
  __syncthreads();
  {
    const float r = rp.repetition_penalty;
    const bool counts = rp.presence_penalty != 0.0f || rp.frequency_penalty != 0.0f;
    for (int j = tid; j < rp.penalty_count; j += kThreads) {
      const SamplingPenalty e = p.penalties[rp.penalty_begin + j];
      if (e.id < 0 || e.id >= vocab) continue;
      float v = x[e.id];
      if (r != 1.0f && (e.in_prompt != 0 || e.output_count > 0)) v = v > 0.0f ? v / r : v * r;
      if (counts && e.output_count > 0) {
        // Rounded op by op, as the host computes it (nvcc would fuse a multiply-add).
        v = __fsub_rn(v, __fadd_rn(__fmul_rn(rp.frequency_penalty, static_cast<float>(e.output_count)),
                                   rp.presence_penalty));
      }
      x[e.id] = v;
    }
  }
  __syncthreads();

  // 6. The token.
  int token = -1;
  if (rp.temperature == 0.0f || rp.top_k == 1) {
    uint64_t best = 0;
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = x[i];
      if (v > neg_inf()) {
        const uint64_t k = sort_key(v, i);
        best = k > best ? k : best;
      }
    }
    best = block_max_key(best, s);
    token = best == 0 ? -1 : key_id(best);
  } else {
    // Finite candidates and the best value.
    int finite = 0;
    uint64_t best = 0;
    for (int i = tid; i < vocab; i += kThreads) {
      const float v = x[i];
      if (v > neg_inf()) {
        ++finite;
        const uint64_t k = sort_key(v, i);
        best = k > best ? k : best;
      }
    }
    finite = block_sum(finite, s.red_i);
    best = block_max_key(best, s);
    if (finite > 0) {
      const double inv_t = 1.0 / static_cast<double>(rp.temperature);
      const double v_max = static_cast<double>(x[key_id(best)]) * inv_t;
      // top_k: keys at or above the k-th best.
      uint64_t k_key = 0;
      const bool cut_k = rp.top_k > 0 && rp.top_k < finite;
      if (cut_k) {
        auto finite_member = [](int, float v, double* metric) {
          *metric = 1.0;
          return v > neg_inf();
        };
        select_by_metric(x, vocab, finite_member, static_cast<double>(rp.top_k), /*strict=*/false, &k_key, h, s);
      }
      const double min_p = static_cast<double>(rp.min_p);
      auto kept = [=](int i, float v, double* weight) {
        if (!(v > neg_inf())) return false;
        if (cut_k && sort_key(v, i) < k_key) return false;
        *weight = exp(__dsub_rn(__dmul_rn(static_cast<double>(v), inv_t), v_max));  // no fused multiply-add
        return !(min_p > 0.0 && *weight < min_p);
      };
      double total = 0.0;
      for (int i = tid; i < vocab; i += kThreads) {
        double w = 0.0;
        if (kept(i, x[i], &w)) total += w;
      }
      total = block_sum(total, s.red_d);
      // top_p: the shortest best-first prefix whose mass reaches top_p · total.
      uint64_t p_key = 0;
      bool cut_p = false;
      if (rp.top_p < 1.0f) {
        cut_p = select_by_metric(x, vocab, kept, static_cast<double>(rp.top_p) * total, /*strict=*/false, &p_key, h, s);
      }
      auto nucleus = [=](int i, float v, double* weight) {
        if (!kept(i, v, weight)) return false;
        return !(cut_p && sort_key(v, i) < p_key);
      };
      if (cut_p) {
        total = 0.0;
        for (int i = tid; i < vocab; i += kThreads) {
          double w = 0.0;
          if (nucleus(i, x[i], &w)) total += w;
        }
        total = block_sum(total, s.red_d);
      }
      const double target = uniform_draw(rp.stream, rp.counter) * total;
      if (cut_k || rp.top_p < 1.0f) {
        uint64_t key = 0;
        if (select_by_metric(x, vocab, nucleus, target, /*strict=*/true, &key, h, s)) {
          token = key_id(key);
        } else {
          uint64_t worst = ~uint64_t{0};
          for (int i = tid; i < vocab; i += kThreads) {
            double w = 0.0;
            if (nucleus(i, x[i], &w)) {
              const uint64_t k = sort_key(x[i], i);
              worst = k < worst ? k : worst;
            }
          }
          worst = block_min_key(worst, s);
          token = key_id(worst);
        }
      } else {
        token = scan_ids(x, vocab, nucleus, target, s);
      }
    }
  }

  // The token's logprob, from its step-1 value.
  if (tid == 0) s.token_raw_found = 0;
  __syncthreads();
  if (want_logprobs && token >= 0) {
    for (int j = tid; j < rp.bias_count; j += kThreads) {
      if (p.bias[rp.bias_begin + j].id == token) s.token_raw = p.bias_raw[rp.bias_begin + j], s.token_raw_found = 1;
    }
    for (int j = tid; j < rp.mask_count; j += kThreads) {
      if (p.mask_ids[rp.mask_begin + j] == token) s.token_raw = p.mask_raw[rp.mask_begin + j], s.token_raw_found = 1;
    }
    for (int j = tid; j < rp.penalty_count; j += kThreads) {
      if (p.penalties[rp.penalty_begin + j].id == token) {
        s.token_raw = p.penalty_raw[rp.penalty_begin + j], s.token_raw_found = 1;
      }
    }
  }
  __syncthreads();
  if (tid == 0) {
    p.out_tokens[blockIdx.x] = token;
    if (want_logprobs && token >= 0) {
      const float raw = s.token_raw_found != 0 ? s.token_raw : x[token];
      p.out_logprobs[blockIdx.x] = static_cast<float>(static_cast<double>(raw) - log_total);
    }
  }
}

}  // namespace

cudaError_t launch_sample(const SampleParams& p, cudaStream_t stream) {
  if (p.rows == 0) return cudaSuccess;
  if (p.rows < 0 || p.vocab <= 0) return cudaErrorInvalidValue;
  static const cudaError_t attribute = cudaFuncSetAttribute(
      sample_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kDynamicSmem));
  if (attribute != cudaSuccess) return attribute;
  sample_kernel<<<p.rows, kThreads, kDynamicSmem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
