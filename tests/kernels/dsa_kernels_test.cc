// kernels/dsa against the CPU reference (model/backend/cpu/cpu_dsa.h), on the GPU machine.
//
//  - FP8 query quantization (no LayerNorm in the path) is bit-exact: same bytes, same weights.
//  - Index keys (LayerNorm and RoPE in fp32 on both sides, different summation orders) may differ
//    only where the rotated value sits at an e4m3 rounding boundary: at most one code, rarely.
//  - FP8 index logits, both kernels (wgmma on sm_90, the portable mma.sync one), equal the CPU FP8
//    emulation up to fp32 summation order (budget 2e-4 of the row's largest magnitude), at context
//    lengths 1, 63, 64, 2047, 2048, 2049 and 131072 in one batch, and for 16/32/64 heads × 64/128.
//  - Top-k, both schedules (one block per row; rows split over pieces): the GPU index list equals
//    cpu::dsa_topk of the same scores, element for element, on those logits, on rows built with
//    masses of exact ties at the threshold, and on ties straddling piece boundaries.
//  - The decode sequence captured in a CUDA graph and replayed with new contexts, block tables and
//    inputs equals eager launches bit for bit, a padding row (context 0) among its rows.
//  - Context 0 (backend.h): index keys skip slot -1 (the cache keeps its poison there); logits of
//    a context-0 row are never written and nothing of its block-table row (-1) is read; its top-k
//    is all -1 in both schedules; its sparse attention output is 0. Logits launched for a context
//    bound far above the real contexts equal the tight launch bit for bit.
//  - Sparse attention vs the CPU within the bf16 budget, with and without splits; rows with no index
//    give 0; with index_topk >= context, top-k + sparse attention equal the dense paged decode.
// Outputs are poisoned before every launch. Built with LONGBOW_CUDA only; never run by CTest.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/dsa/params.h"
#include "kernels/paged_decode/params.h"
#include "model/backend/cpu/cpu_dsa.h"

namespace longbow {
namespace {

using kernels::kDsaPageSize;

#define CUDA_OK(call) ASSERT_EQ((call), cudaSuccess) << #call

// A device allocation filled from (and read back into) host vectors.
struct Dev {
  void* ptr = nullptr;
  size_t bytes = 0;
  Dev() = default;
  explicit Dev(size_t n) : bytes(n) {
    EXPECT_EQ(cudaMalloc(&ptr, std::max<size_t>(n, 16)), cudaSuccess);
    EXPECT_EQ(cudaMemset(ptr, 0xFF, std::max<size_t>(n, 16)), cudaSuccess);  // poison: NaN / -1
  }
  template <typename T>
  explicit Dev(const std::vector<T>& host) : Dev(host.size() * sizeof(T)) {
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~Dev() { cudaFree(ptr); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  template <typename T>
  std::vector<T> get() const {
    std::vector<T> out(bytes / sizeof(T));
    EXPECT_EQ(cudaMemcpy(out.data(), ptr, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
    return out;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

std::vector<float> random_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// bf16 bits of v, and v replaced by its bf16 value (so CPU and GPU see the same numbers).
std::vector<uint16_t> to_bf16(std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = f32_to_bf16(v[i]);
    v[i] = bf16_to_f32(bits[i]);
  }
  return bits;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (static_cast<double>(got[i]) - ref[i]) * (static_cast<double>(got[i]) - ref[i]);
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(err / std::max(norm, 1e-30));
}

std::vector<float> inv_freq_table(int rope_dim) {
  std::vector<float> f;
  for (int i = 0; i < rope_dim / 2; ++i) f.push_back(std::pow(10000.0f, -2.0f * static_cast<float>(i) / rope_dim));
  return f;
}

// A random FP8 index cache of `pages` pages: finite e4m3 codes (|v| <= 2^4) and power-of-two scales.
uint8_t finite_fp8_code(std::mt19937& rng) {
  uint8_t c;
  do c = static_cast<uint8_t>(rng() & 0xFF); while ((c & 0x7F) == 0x7F || (c & 0x78) > 0x58);
  return c;
}
std::vector<uint8_t> random_index_cache(int pages, int d, std::mt19937& rng) {
  std::vector<uint8_t> cache(static_cast<size_t>(pages) * cpu::dsa_index_page_bytes(d));
  for (int pg = 0; pg < pages; ++pg) {
    uint8_t* base = cache.data() + static_cast<size_t>(pg) * cpu::dsa_index_page_bytes(d);
    for (int i = 0; i < 64 * d; ++i) base[i] = finite_fp8_code(rng);
    for (int i = 0; i < 64; ++i) {
      float sc = std::ldexp(1.0f, static_cast<int>(rng() % 6) - 8);
      std::memcpy(base + 64 * d + 4 * i, &sc, 4);
    }
  }
  return cache;
}

// The index-key launch's fixed inputs: LayerNorm weight and bias (bf16 from seeded randoms; the
// host copies hold the same bf16 values for the CPU path) and the RoPE table, on the device; the
// per-step inputs (k_raw, positions, slots) and the cache are the caller's.
struct IndexKeyInputs {
  int d, rope;
  std::vector<float> gamma, beta, inv_freq;
  Dev dgamma, dbeta, dfreq;

  IndexKeyInputs(int head_dim, int rope_dim, uint32_t seed)
      : d(head_dim),
        rope(rope_dim),
        gamma(random_floats(head_dim, seed, 0.5f, 1.5f)),
        beta(random_floats(head_dim, seed + 1, -0.3f, 0.3f)),
        inv_freq(inv_freq_table(rope_dim)),
        dgamma(to_bf16(gamma)),
        dbeta(to_bf16(beta)),
        dfreq(inv_freq) {}

  kernels::DsaIndexKeyParams params(const Dev& k_raw, const Dev& positions, const Dev& slots, const Dev& cache,
                                    int tokens) const {
    kernels::DsaIndexKeyParams p;
    p.k_raw = k_raw.ptr;
    p.gamma = dgamma.ptr;
    p.beta = dbeta.ptr;
    p.positions = positions.as<int>();
    p.slots = slots.as<int>();
    p.inv_freq = dfreq.as<float>();
    p.hadamard_scale = 1.0f / std::sqrt(static_cast<float>(d));
    p.cache = cache.as<uint8_t>();
    p.tokens = tokens;
    p.head_dim = d;
    p.rope_dim = rope;
    return p;
  }

  // The CPU path of the same launch (k_raw as bf16-rounded floats) into `cache`.
  void cpu_keys(const std::vector<float>& k_raw, const std::vector<int32_t>& positions,
                const std::vector<int32_t>& slots, std::vector<uint8_t>& cache) const {
    cpu::DsaIndexKeyArgs a;
    a.k_raw = k_raw.data();
    a.gamma = gamma.data();
    a.beta = beta.data();
    a.positions = positions.data();
    a.slots = slots.data();
    a.inv_freq = inv_freq.data();
    a.tokens = static_cast<int64_t>(slots.size());
    a.head_dim = d;
    a.rope_dim = rope;
    a.fp8_cache = cache.data();
    cpu::dsa_write_index_keys(a);
  }
};

// The GPU top-k of logits rows (device) in one schedule: one block per row (split = false), or
// rows split over pieces with a workspace (split = true; num_sms sizes the pieces).
std::vector<int32_t> gpu_topk(const float* logits, const int* starts, const int* lens, int seqs, int rows,
                              int64_t stride, int k, int max_len, bool split, int num_sms = 132) {
  Dev didx(static_cast<size_t>(rows) * k * 4);
  EXPECT_EQ(cudaMemset(didx.ptr, 0x7F, didx.bytes), cudaSuccess);  // poison: not -1, a padding row's answer
  kernels::DsaTopkParams t;
  t.logits = logits;
  t.query_start = starts;
  t.context_lens = lens;
  t.indices = didx.as<int>();
  t.logits_stride = stride;
  t.seqs = seqs;
  t.rows = rows;
  t.k = k;
  t.max_context_len = max_len;
  Dev ws(split ? kernels::dsa_topk_workspace_bytes(rows, max_len, num_sms) : 0);
  if (split) {
    t.num_sms = num_sms;
    t.workspace = ws.ptr;
    EXPECT_GT(ws.bytes, 0u) << "the split schedule is not exercised";
  }
  EXPECT_EQ(kernels::launch_dsa_topk(t, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return didx.get<int32_t>();
}

TEST(DsaKernels, QueryQuantizationIsBitExact) {
  for (int d : {64, 128}) {
    const int rows = 37, heads = 64;
    std::vector<float> q = random_floats(static_cast<size_t>(rows * heads * d), 1, -4.0f, 4.0f);
    for (size_t i = 0; i < q.size(); i += 97) q[i] *= 300.0f;  // vary amax across decades
    std::vector<float> w = random_floats(static_cast<size_t>(rows * heads), 2, -1.0f, 1.0f);
    std::vector<uint16_t> qb = to_bf16(q), wb = to_bf16(w);
    Dev dq(qb), dw(wb), dq8(static_cast<size_t>(rows * heads * d)), dweff(static_cast<size_t>(rows * heads) * 4);
    kernels::DsaIndexQueryParams p;
    p.q = dq.ptr;
    p.w_raw = dw.ptr;
    p.hadamard_scale = 1.0f / std::sqrt(static_cast<float>(d));
    p.weight_scale = 1.0f / std::sqrt(static_cast<float>(heads)) * (1.0f / std::sqrt(static_cast<float>(d)));
    p.q_fp8 = dq8.as<uint8_t>();
    p.w_eff = dweff.as<float>();
    p.rows = rows;
    p.heads = heads;
    p.head_dim = d;
    CUDA_OK(kernels::launch_dsa_index_query(p, nullptr));
    std::vector<uint8_t> ref8(q.size());
    std::vector<float> refw(w.size());
    cpu::dsa_prepare_query(q.data(), w.data(), rows, heads, d, ref8.data(), refw.data());
    EXPECT_EQ(dq8.get<uint8_t>(), ref8) << "head_dim " << d;
    EXPECT_EQ(dweff.get<float>(), refw) << "head_dim " << d;
  }
}

// Every 7th token is a padding row (slot -1): it writes nothing, so every slot no token owns keeps
// the cache's poison (0xFF) on the GPU, as on the CPU.
TEST(DsaKernels, IndexKeysMatchTheCpuPathToOneCode) {
  const int d = 128, rope = 64, tokens = 500, pages = 12;
  const IndexKeyInputs in(d, rope, 4);
  std::vector<float> k = random_floats(static_cast<size_t>(tokens * d), 3, -3.0f, 3.0f);
  std::vector<uint16_t> kb = to_bf16(k);
  std::vector<int32_t> positions(tokens), slots(tokens);
  std::vector<int32_t> perm(pages * kDsaPageSize);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(6));
  for (int t = 0; t < tokens; ++t) {
    positions[t] = 1000 + 37 * t;
    slots[t] = t % 7 == 3 ? -1 : perm[t];
  }
  size_t cache_bytes = pages * cpu::dsa_index_page_bytes(d);
  Dev dk(kb), dpos(positions), dslots(slots), dcache(cache_bytes);
  CUDA_OK(kernels::launch_dsa_index_keys(in.params(dk, dpos, dslots, dcache, tokens), nullptr));
  std::vector<uint8_t> got = dcache.get<uint8_t>();
  std::vector<uint8_t> ref(cache_bytes, 0xFF);
  in.cpu_keys(k, positions, slots, ref);
  int value_mismatch = 0, scale_mismatch = 0, far = 0, written = 0;
  std::vector<bool> owned(static_cast<size_t>(pages) * kDsaPageSize, false);
  for (int t = 0; t < tokens; ++t) {
    if (slots[t] < 0) continue;
    ++written;
    owned[static_cast<size_t>(slots[t])] = true;
    size_t page = static_cast<size_t>(slots[t] / kDsaPageSize) * cpu::dsa_index_page_bytes(d);
    int off = slots[t] % kDsaPageSize;
    float gs, rs;
    std::memcpy(&gs, &got[page + kDsaPageSize * d + off * 4], 4);
    std::memcpy(&rs, &ref[page + kDsaPageSize * d + off * 4], 4);
    if (gs != rs) ++scale_mismatch;
    for (int e = 0; e < d; ++e) {
      uint8_t g = got[page + off * d + e], r = ref[page + off * d + e];
      if (g == r) continue;
      ++value_mismatch;
      if (gs == rs && std::abs(static_cast<int>(g & 0x7F) - static_cast<int>(r & 0x7F)) > 1) ++far;
    }
  }
  int touched = 0;  // bytes of slots no token owns that changed
  for (int slot = 0; slot < pages * kDsaPageSize; ++slot) {
    if (owned[static_cast<size_t>(slot)]) continue;
    size_t page = static_cast<size_t>(slot / kDsaPageSize) * cpu::dsa_index_page_bytes(d);
    int off = slot % kDsaPageSize;
    for (int e = 0; e < d; ++e) touched += got[page + off * d + e] != 0xFF ? 1 : 0;
    for (int e = 0; e < 4; ++e) touched += got[page + kDsaPageSize * d + off * 4 + e] != 0xFF ? 1 : 0;
  }
  std::printf("[ index keys ] %d of %d values and %d of %d scales differ from the CPU path; %d slot -1 rows\n",
              value_mismatch, written * d, scale_mismatch, written, tokens - written);
  EXPECT_EQ(far, 0);
  EXPECT_LE(value_mismatch, written * d / 1000);
  EXPECT_LE(scale_mismatch, 1);
  EXPECT_EQ(touched, 0) << "bytes written outside the real tokens' slots";
}

// A random FP8 index cache (finite codes, power-of-two scales) and random queries for `lens`.
struct LogitsCase {
  int heads = 64, d = 128;
  std::vector<int32_t> query_start{0}, lens, tables;
  int max_pages = 0, max_len = 0, rows = 0;
  std::vector<uint8_t> cache, q8;
  std::vector<float> w;
  int64_t stride = 0;

  LogitsCase(const std::vector<int>& context_lens, const std::vector<int>& q_lens, uint32_t seed, int n_heads = 64,
             int head_dim = 128)
      : heads(n_heads), d(head_dim) {
    std::mt19937 rng(seed);
    int pages = 0;
    for (size_t s = 0; s < context_lens.size(); ++s) {
      lens.push_back(context_lens[s]);
      query_start.push_back(query_start.back() + q_lens[s]);
      max_pages = std::max(max_pages, (context_lens[s] + 63) / 64);
      max_len = std::max(max_len, context_lens[s]);
      pages += (context_lens[s] + 63) / 64;
    }
    rows = query_start.back();
    stride = (max_len + 3) / 4 * 4;
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    tables.assign(context_lens.size() * max_pages, -1);  // -1 past a row's pages: never read
    int next = 0;
    for (size_t s = 0; s < context_lens.size(); ++s) {
      for (int b = 0; b < (context_lens[s] + 63) / 64; ++b) tables[s * max_pages + b] = perm[next++];
    }
    cache = random_index_cache(pages, d, rng);
    q8.resize(static_cast<size_t>(rows) * heads * d);
    for (uint8_t& c : q8) c = finite_fp8_code(rng);
    w = random_floats(static_cast<size_t>(rows) * heads, seed + 1, -1.0f, 1.0f);
  }

  std::vector<float> cpu_logits() const {
    std::vector<float> out(static_cast<size_t>(rows) * stride);
    cpu::DsaIndexLogitsArgs a;
    a.q_fp8 = q8.data();
    a.w_eff = w.data();
    a.fp8_cache = cache.data();
    a.query_start = query_start.data();
    a.context_lens = lens.data();
    a.block_tables = tables.data();
    a.seqs = static_cast<int>(lens.size());
    a.max_pages = max_pages;
    a.heads = heads;
    a.head_dim = d;
    a.logits = out.data();
    a.logits_stride = stride;
    cpu::dsa_index_logits(a);
    return out;
  }
};

// A LogitsCase's inputs on the device, and the kernel's parameters over them writing to `logits`.
struct DeviceLogitsCase {
  const LogitsCase& c;
  Dev q, w, cache, query_start, lens, tables;

  explicit DeviceLogitsCase(const LogitsCase& cpu_case)
      : c(cpu_case), q(c.q8), w(c.w), cache(c.cache), query_start(c.query_start), lens(c.lens), tables(c.tables) {}

  kernels::DsaIndexLogitsParams params(const Dev& logits) const {
    kernels::DsaIndexLogitsParams p;
    p.q_fp8 = q.as<uint8_t>();
    p.w_eff = w.as<float>();
    p.cache = cache.as<uint8_t>();
    p.query_start = query_start.as<int>();
    p.context_lens = lens.as<int>();
    p.block_tables = tables.as<int>();
    p.logits = logits.as<float>();
    p.logits_stride = c.stride;
    p.seqs = static_cast<int>(c.lens.size());
    p.rows = c.rows;
    p.max_pages = c.max_pages;
    p.max_context_len = c.max_len;
    p.heads = c.heads;
    p.head_dim = c.d;
    return p;
  }
};

int row_len(const LogitsCase& c, int row) {
  int s = 0;
  while (c.query_start[s + 1] <= row) ++s;
  return c.lens[s] - (c.query_start[s + 1] - c.query_start[s]) + (row - c.query_start[s]) + 1;
}

// Both logits kernels (wgmma on sm_90, the portable mma.sync one everywhere) and both top-k
// schedules, on one batch of rows of very different lengths (1 … 131072, plus a 3-row prefill).
TEST(DsaKernels, Fp8LogitsMatchTheCpuEmulationAndTopkIsExact) {
  LogitsCase c({1, 63, 64, 2047, 2048, 2049, 131072, 300}, {1, 1, 1, 1, 1, 1, 1, 3}, 11);
  const DeviceLogitsCase dev(c);
  const std::vector<float> ref = c.cpu_logits();
  for (const char* variant : {"default", "portable"}) {
    if (std::strcmp(variant, "portable") == 0) setenv("LONGBOW_DSA_LOGITS", "portable", 1);
    Dev dlogits(static_cast<size_t>(c.rows) * c.stride * 4);  // poisoned (NaN)
    CUDA_OK(kernels::launch_dsa_index_logits(dev.params(dlogits), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    unsetenv("LONGBOW_DSA_LOGITS");
    std::vector<float> got = dlogits.get<float>();
    // Budget: Hopper's FP8 mma keeps about 14 mantissa bits while summing its 32 products, so a dot
    // may be off by ~2^-14 of its largest terms; 2e-4 of the row's peak |logit| covers that with margin.
    double worst = 0.0;
    for (int r = 0; r < c.rows; ++r) {
      int len = row_len(c, r);
      float peak = 0.0f;
      for (int j = 0; j < len; ++j) peak = std::max(peak, std::fabs(ref[r * c.stride + j]));
      int bad = 0;
      for (int j = 0; j < len; ++j) {
        float g = got[r * c.stride + j], e = ref[r * c.stride + j];
        double rel = std::fabs(static_cast<double>(g) - e) / std::max(peak, 1e-30f);
        if (!(rel <= 2e-4)) ++bad;
        if (rel > worst || std::isnan(rel)) worst = rel;
      }
      EXPECT_EQ(bad, 0) << variant << " row " << r << " length " << len;
    }
    std::printf("[ error ] fp8 index logits (%s kernel) vs CPU emulation: max |err| / row peak %.3g (budget 2e-4)\n",
                variant, worst);
    for (int k : {64, 2048}) {
      for (bool split : {false, true}) {
        std::vector<int32_t> idx = gpu_topk(dlogits.as<float>(), dev.query_start.as<int>(), dev.lens.as<int>(),
                                            static_cast<int>(c.lens.size()), c.rows, c.stride, k, c.max_len, split);
        for (int r = 0; r < c.rows; ++r) {
          std::vector<int32_t> expect(k);
          cpu::dsa_topk(got.data() + r * c.stride, row_len(c, r), k, expect.data());
          EXPECT_TRUE(std::equal(expect.begin(), expect.end(), idx.begin() + r * k))
              << variant << " k " << k << (split ? " split" : " one block") << " row " << r << " length "
              << row_len(c, r);
        }
      }
    }
  }
}

// The other index shapes: 16 and 32 heads (wgmma m64n16 / m64n32 on sm_90), head_dim 64 (the
// portable kernel everywhere), both kernels, against the CPU emulation.
TEST(DsaKernels, Fp8LogitsOtherShapesMatchTheCpuEmulation) {
  struct Shape { int heads, d; };
  for (Shape sh : {Shape{16, 128}, Shape{32, 128}, Shape{16, 64}, Shape{64, 64}}) {
    LogitsCase c({1, 100, 2049, 5000}, {1, 1, 1, 2}, 13 + sh.heads + sh.d, sh.heads, sh.d);
    const DeviceLogitsCase dev(c);
    const std::vector<float> ref = c.cpu_logits();
    for (const char* variant : {"default", "portable"}) {
      if (std::strcmp(variant, "portable") == 0) setenv("LONGBOW_DSA_LOGITS", "portable", 1);
      Dev dlogits(static_cast<size_t>(c.rows) * c.stride * 4);  // poisoned (NaN)
      CUDA_OK(kernels::launch_dsa_index_logits(dev.params(dlogits), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      unsetenv("LONGBOW_DSA_LOGITS");
      const std::vector<float> got = dlogits.get<float>();
      double worst = 0.0;
      for (int r = 0; r < c.rows; ++r) {
        const int len = row_len(c, r);
        float peak = 0.0f;
        for (int j = 0; j < len; ++j) peak = std::max(peak, std::fabs(ref[r * c.stride + j]));
        int bad = 0;
        for (int j = 0; j < len; ++j) {
          const double rel = std::fabs(static_cast<double>(got[r * c.stride + j]) - ref[r * c.stride + j]) /
                             std::max(peak, 1e-30f);
          if (!(rel <= 2e-4)) ++bad;
          if (rel > worst || std::isnan(rel)) worst = rel;
        }
        EXPECT_EQ(bad, 0) << variant << " heads " << sh.heads << " d " << sh.d << " row " << r;
      }
      std::printf("[ error ] fp8 index logits heads=%d d=%d (%s kernel): max |err| / row peak %.3g (budget 2e-4)\n",
                  sh.heads, sh.d, variant, worst);
    }
  }
}

// Context-0 rows (padding) among real rows, launched for a tight bound and for a bound of 131072:
// both kernels leave a context-0 row's logits and every entry past a row's length untouched (NaN
// poison), its block-table row is all -1 (an out-of-pool read would fault or corrupt), the bound
// launch's scores equal the tight launch's bit for bit, and both top-k schedules give the padding
// rows all -1 and the real rows cpu::dsa_topk of the same scores.
TEST(DsaKernels, ContextZeroRowsAndABoundFarAboveTheContexts) {
  LogitsCase c({0, 3000, 0, 70, 4100, 0}, {1, 1, 1, 1, 1, 1}, 51);
  const DeviceLogitsCase dev(c);
  const int64_t bound = 131072;
  auto poisoned = [](const std::vector<float>& v, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &v[i], 4);
      if (bits != 0xFFFFFFFFu) return false;
    }
    return true;
  };
  for (const char* variant : {"default", "portable"}) {
    for (int skip : {0, 64}) {
      if (std::strcmp(variant, "portable") == 0) setenv("LONGBOW_DSA_LOGITS", "portable", 1);
      Dev tight(static_cast<size_t>(c.rows) * c.stride * 4), wide(static_cast<size_t>(c.rows) * bound * 4);
      kernels::DsaIndexLogitsParams p = dev.params(tight);
      p.skip_len = skip;
      CUDA_OK(kernels::launch_dsa_index_logits(p, nullptr));
      kernels::DsaIndexLogitsParams pw = dev.params(wide);
      pw.skip_len = skip;
      pw.logits_stride = bound;
      pw.max_context_len = static_cast<int>(bound);
      CUDA_OK(kernels::launch_dsa_index_logits(pw, nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      unsetenv("LONGBOW_DSA_LOGITS");
      const std::vector<float> t = tight.get<float>(), w = wide.get<float>();
      for (int r = 0; r < c.rows; ++r) {
        const auto len = static_cast<size_t>(row_len(c, r)), ru = static_cast<size_t>(r);
        const bool scored = len > static_cast<size_t>(skip);
        const size_t kept = scored ? len : 0;  // entries written
        EXPECT_TRUE(poisoned(w, ru * bound + kept, (ru + 1) * bound)) << variant << " row " << r << " skip " << skip;
        EXPECT_TRUE(poisoned(t, ru * c.stride + kept, (ru + 1) * c.stride)) << variant << " row " << r;
        EXPECT_EQ(0, std::memcmp(&t[ru * c.stride], &w[ru * bound], kept * 4)) << variant << " row " << r;
      }
      if (skip != 0) continue;
      for (bool split : {false, true}) {
        const std::vector<int32_t> idx = gpu_topk(wide.as<float>(), dev.query_start.as<int>(), dev.lens.as<int>(),
                                                  static_cast<int>(c.lens.size()), c.rows, bound, 64,
                                                  static_cast<int>(bound), split);
        for (int r = 0; r < c.rows; ++r) {
          std::vector<int32_t> expect(64);
          cpu::dsa_topk(w.data() + static_cast<size_t>(r) * bound, row_len(c, r), 64, expect.data());
          EXPECT_TRUE(std::equal(expect.begin(), expect.end(), idx.begin() + r * 64))
              << variant << (split ? " split" : " one block") << " row " << r << " length " << row_len(c, r);
          if (row_len(c, r) == 0) {
            EXPECT_EQ(expect, std::vector<int32_t>(64, -1));
          }
        }
      }
    }
  }
}

// Rows of logits (host) through both top-k schedules against cpu::dsa_topk.
void expect_topk_exact(const std::vector<std::vector<float>>& rows, int k, int num_sms, const char* what) {
  const int n = static_cast<int>(rows.size());
  int max_len = 0;
  for (auto& r : rows) max_len = std::max(max_len, static_cast<int>(r.size()));
  const int64_t stride = (max_len + 3) / 4 * 4;
  std::vector<float> flat(static_cast<size_t>(n) * stride, 0.0f);
  std::vector<int32_t> starts(n + 1), lens(n);
  for (int r = 0; r < n; ++r) {
    std::copy(rows[r].begin(), rows[r].end(), flat.begin() + r * stride);
    lens[r] = static_cast<int32_t>(rows[r].size());
  }
  std::iota(starts.begin(), starts.end(), 0);
  Dev dl(flat), ds(starts), dlen(lens);
  for (bool split : {false, true}) {
    std::vector<int32_t> idx =
        gpu_topk(dl.as<float>(), ds.as<int>(), dlen.as<int>(), n, n, stride, k, max_len, split, num_sms);
    for (int r = 0; r < n; ++r) {
      std::vector<int32_t> expect(k);
      cpu::dsa_topk(rows[r].data(), lens[r], k, expect.data());
      EXPECT_TRUE(std::equal(expect.begin(), expect.end(), idx.begin() + r * k))
          << what << (split ? " split" : " one block") << " row " << r << " length " << lens[r];
    }
  }
}

TEST(DsaKernels, TopkWithMassesOfTiesAtTheThreshold) {
  const int len = 131072;
  std::vector<std::vector<float>> rows;
  std::mt19937 rng(17);
  auto levels = [&](int n, float spread) {
    std::vector<float> r(len);
    std::uniform_int_distribution<int> pick(0, n - 1);
    for (float& v : r) v = static_cast<float>(pick(rng)) * spread;
    return r;
  };
  rows.push_back(levels(8, 1.0f));       // ~16K copies of each level: the bucket overflows the chip
  rows.push_back(levels(5000, 0.25f));   // ~26 copies per level at the threshold
  rows.push_back(std::vector<float>(len, 3.5f));  // one value: the first k indices
  {
    std::vector<float> r = levels(1000000, 1e-3f);
    for (int i = 0; i < len; i += 3) r[i] = -INFINITY;
    for (int i = 1; i < len; i += 7) r[i] = (i % 2) ? 0.0f : -0.0f;
    rows.push_back(r);
  }
  {
    std::vector<float> r(len);
    std::normal_distribution<float> n01;
    for (float& v : r) v = n01(rng);
    for (int i = 0; i < 3000; ++i) r[(i * 7919) % len] = 2.0f;  // a tie block straddling rank 2048
    rows.push_back(r);
  }
  expect_topk_exact(rows, 2048, 132, "ties");
}

// The split schedule: pieces of 4096 elements (or more with fewer SMs); ties placed on both sides
// of piece boundaries, rows whose length is no multiple of a piece, and a batch whose lengths
// range from below k to the bound.
TEST(DsaKernels, SplitTopkTiesAcrossPiecesAndUnevenRows) {
  std::mt19937 rng(23);
  std::normal_distribution<float> n01;
  auto gaussian = [&](int n) {
    std::vector<float> r(n);
    for (float& v : r) v = n01(rng);
    return r;
  };
  std::vector<std::vector<float>> rows;
  {
    // The threshold value straddles every boundary of 4096 and 8192: 40 copies around each.
    std::vector<float> r = gaussian(131072);
    for (int b = 4096; b < 131072; b += 4096) {
      for (int d = -20; d < 20; ++d) r[b + d] = 2.29f;  // ~1450 Gaussians lie above: rank 2048 falls in the ties
    }
    rows.push_back(r);
  }
  {
    // All selected values tie and sit in the last element of each piece and the first of the next.
    std::vector<float> r(100003, -1.0f);
    for (int b = 4096; b < 100003; b += 4096) r[b - 1] = r[b] = 7.0f;
    rows.push_back(r);
  }
  rows.push_back(gaussian(4097));
  rows.push_back(gaussian(8191));
  rows.push_back(gaussian(65537));
  rows.push_back(gaussian(2048));  // == k: every token
  rows.push_back(gaussian(17));
  for (int sms : {132, 16}) {
    expect_topk_exact(rows, 2048, sms, sms == 132 ? "split/132" : "split/16");
    expect_topk_exact(rows, 100, sms, sms == 132 ? "split/132 k100" : "split/16 k100");
  }
}

// K/V pools and queries for sparse attention; sequence s has one decode row.
struct AttnCase {
  int q_heads, kv_heads, d, pages;
  std::vector<int> ctx;
  int max_pages = 0;
  std::vector<float> q, k, v;
  std::vector<uint16_t> qb, kb, vb;
  std::vector<int32_t> tables, starts, lens;
  AttnCase(int qh, int kvh, int dim, std::vector<int> contexts, uint32_t seed)
      : q_heads(qh), kv_heads(kvh), d(dim), ctx(std::move(contexts)) {
    pages = 0;
    for (int c : ctx) {
      max_pages = std::max(max_pages, (c + 63) / 64);
      pages += (c + 63) / 64;
    }
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
    tables.assign(ctx.size() * max_pages, -1);  // -1 past a row's pages (all of a context-0 row's)
    int next = 0;
    for (size_t s = 0; s < ctx.size(); ++s) {
      for (int b = 0; b < (ctx[s] + 63) / 64; ++b) tables[s * max_pages + b] = perm[next++];
      starts.push_back(static_cast<int32_t>(s));
      lens.push_back(ctx[s]);
    }
    starts.push_back(static_cast<int32_t>(ctx.size()));
    size_t pool = static_cast<size_t>(pages) * 64 * kv_heads * d;
    k = random_floats(pool, seed + 1, -1.0f, 1.0f);
    v = random_floats(pool, seed + 2, -1.0f, 1.0f);
    q = random_floats(ctx.size() * q_heads * d, seed + 3, -2.0f, 2.0f);
    kb = to_bf16(k);
    vb = to_bf16(v);
    qb = to_bf16(q);
  }
};

void run_sparse(const AttnCase& c, const std::vector<int32_t>& indices, int topk, int splits,
                std::vector<float>* out_gpu, std::vector<float>* out_cpu) {
  const int rows = static_cast<int>(c.ctx.size());
  Dev dq(c.qb), dk(c.kb), dv(c.vb), didx(indices), dstart(c.starts), dtab(c.tables);
  Dev dout(static_cast<size_t>(rows) * c.q_heads * c.d * 2);
  Dev ws(kernels::dsa_sparse_workspace_bytes(rows, c.q_heads, c.d, splits));
  kernels::DsaSparseAttentionParams p;
  p.q = dq.ptr;
  p.k_cache = dk.ptr;
  p.v_cache = dv.ptr;
  p.indices = didx.as<int>();
  p.query_start = dstart.as<int>();
  p.block_tables = dtab.as<int>();
  p.out = dout.ptr;
  p.workspace = ws.ptr;
  p.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
  p.seqs = rows;
  p.rows = rows;
  p.max_pages = c.max_pages;
  p.topk = topk;
  p.q_heads = c.q_heads;
  p.kv_heads = c.kv_heads;
  p.head_dim = c.d;
  p.num_splits = splits;
  ASSERT_EQ(kernels::launch_dsa_sparse_attention(p, nullptr), cudaSuccess);
  std::vector<uint16_t> bits = dout.get<uint16_t>();
  out_gpu->resize(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) (*out_gpu)[i] = bf16_to_f32(bits[i]);
  if (out_cpu == nullptr) return;
  out_cpu->assign(bits.size(), 0.0f);
  cpu::DsaSparseAttentionArgs a;
  a.q = c.q.data();
  a.k_cache = c.k.data();
  a.v_cache = c.v.data();
  a.indices = indices.data();
  a.query_start = c.starts.data();
  a.block_tables = c.tables.data();
  a.seqs = rows;
  a.max_pages = c.max_pages;
  a.topk = topk;
  a.q_heads = c.q_heads;
  a.kv_heads = c.kv_heads;
  a.head_dim = c.d;
  a.scale = p.scale;
  a.out = out_cpu->data();
  cpu::dsa_sparse_attention(a);
}

TEST(DsaKernels, SparseAttentionMatchesTheCpu) {
  struct Shape { int qh, kvh, d; };
  for (Shape sh : {Shape{32, 8, 128}, Shape{16, 2, 64}}) {
    AttnCase c(sh.qh, sh.kvh, sh.d, {1, 0, 63, 2047, 2049, 9000}, 21);  // row 1: context 0 (no index)
    const int topk = 2048;
    std::mt19937 rng(5);
    std::vector<int32_t> idx(c.ctx.size() * topk, -1);
    for (size_t s = 0; s < c.ctx.size(); ++s) {
      std::vector<int32_t> all(c.ctx[s]);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      int n = std::min(topk, c.ctx[s]);
      std::copy(all.begin(), all.begin() + n, idx.begin() + s * topk);  // unsorted on purpose
    }
    for (int splits : {1, 4, 32}) {
      std::vector<float> got, ref;
      run_sparse(c, idx, topk, splits, &got, &ref);
      double err = rel_l2(got, ref);
      std::printf("[ error ] sparse attention Hq=%d Hkv=%d d=%d splits=%d rel_l2 %.3g (budget 1e-2)\n", sh.qh, sh.kvh,
                  sh.d, splits, err);
      EXPECT_LT(err, 1e-2);
      const int row = sh.qh * sh.d;  // the context-0 row: output 0 over the NaN poison
      EXPECT_EQ(std::vector<float>(got.begin() + row, got.begin() + 2 * row), std::vector<float>(row, 0.0f))
          << "splits " << splits;
    }
    std::fill(idx.begin(), idx.begin() + topk, -1);  // row 0 selects nothing: zeros
    std::vector<float> got;
    run_sparse(c, idx, topk, 4, &got, nullptr);
    for (int i = 0; i < sh.qh * sh.d; ++i) ASSERT_EQ(got[i], 0.0f) << i;
  }
}

// index_topk >= context: the top-k selects every token and sparse attention is dense attention.
TEST(DsaKernels, TopkAtLeastContextEqualsDenseDecode) {
  AttnCase c(32, 8, 128, {1, 64, 700, 2048}, 31);
  const int rows = static_cast<int>(c.ctx.size()), topk = 2048;
  Dev dstart(c.starts), dlens(c.lens), didx(static_cast<size_t>(rows) * topk * 4);
  Dev dlogits(static_cast<size_t>(rows) * 2048 * 4);
  kernels::DsaTopkParams t;
  t.logits = dlogits.as<float>();  // never read: every row is short
  t.query_start = dstart.as<int>();
  t.context_lens = dlens.as<int>();
  t.indices = didx.as<int>();
  t.logits_stride = 2048;
  t.seqs = rows;
  t.rows = rows;
  t.k = topk;
  CUDA_OK(kernels::launch_dsa_topk(t, nullptr));
  std::vector<int32_t> idx = didx.get<int32_t>();
  std::vector<float> sparse;
  run_sparse(c, idx, topk, 8, &sparse, nullptr);

  Dev dq(c.qb), dk(c.kb), dv(c.vb), dtab(c.tables), dout(static_cast<size_t>(rows) * 32 * 128 * 2);
  kernels::PagedDecodeParams d;
  d.attn.q = dq.ptr;
  d.attn.k_cache = dk.ptr;
  d.attn.v_cache = dv.ptr;
  d.attn.query_start = dstart.as<int>();
  d.attn.context_lens = dlens.as<int>();
  d.attn.block_tables = dtab.as<int>();
  d.attn.out = dout.ptr;
  d.attn.num_seqs = rows;
  d.attn.num_q_heads = 32;
  d.attn.num_kv_heads = 8;
  d.attn.head_dim = 128;
  d.attn.max_pages_per_seq = c.max_pages;
  d.attn.max_query_len = 1;
  d.attn.max_context_len = 2048;
  d.attn.scale = 1.0f / std::sqrt(128.0f);
  d.num_splits = 1;
  CUDA_OK(kernels::launch_paged_decode(d, nullptr));
  std::vector<uint16_t> bits = dout.get<uint16_t>();
  std::vector<float> dense(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) dense[i] = bf16_to_f32(bits[i]);
  double err = rel_l2(sparse, dense);
  std::printf("[ error ] DSA(topk >= ctx) vs dense decode rel_l2 %.3g (budget 1e-2)\n", err);
  EXPECT_LT(err, 1e-2);
}

// The decode DSA sequence (index key of the new token → index query → scores → top-k → sparse
// attention) captured once in a CUDA graph with bounds (max_context_len, max_pages), then replayed
// after the context lengths, block tables and inputs changed in place: every replay must equal an
// eager run of the same launches on the same inputs, bit for bit (all kernels are deterministic).
TEST(DsaKernels, DecodeSequenceCapturedInAGraphEqualsEager) {
  constexpr int kSeqs = 4, kBound = 9000, kMaxPages = (kBound + 63) / 64, kPages = kSeqs * kMaxPages;
  constexpr int kIdxHeads = 64, kIdxDim = 128, kHq = 32, kHkv = 8, kD = 128, kTopk = 2048, kRope = 64;
  constexpr int kSms = 132;
  std::mt19937 rng(41);
  // Pools: index cache of random finite codes and power-of-two scales; K/V random bf16.
  std::vector<float> k = random_floats(static_cast<size_t>(kPages) * 64 * kHkv * kD, 42, -1.0f, 1.0f);
  std::vector<float> v = random_floats(k.size(), 43, -1.0f, 1.0f);
  Dev dcache(random_index_cache(kPages, kIdxDim, rng)), dk(to_bf16(k)), dv(to_bf16(v));
  const IndexKeyInputs keys(kIdxDim, kRope, 44);
  // Per-step inputs, rewritten in place before each replay.
  Dev dkraw(kSeqs * kIdxDim * 2), dqidx(kSeqs * kIdxHeads * kIdxDim * 2), dwraw(kSeqs * kIdxHeads * 2);
  Dev dq(kSeqs * kHq * kD * 2), dpos(kSeqs * 4), dslots(kSeqs * 4), dlens(kSeqs * 4), dtables(kPages * 4);
  std::vector<int32_t> starts(kSeqs + 1);
  std::iota(starts.begin(), starts.end(), 0);
  Dev dstarts(starts);
  // Outputs and scratch.
  Dev dq8(kSeqs * kIdxHeads * kIdxDim), dweff(kSeqs * kIdxHeads * 4), dlogits(static_cast<size_t>(kSeqs) * kBound * 4);
  Dev didx(kSeqs * kTopk * 4), dout(kSeqs * kHq * kD * 2);
  Dev dtopk_ws(kernels::dsa_topk_workspace_bytes(kSeqs, kBound, kSms));
  ASSERT_GT(dtopk_ws.bytes, 0u);
  const int splits = kernels::dsa_sparse_choose_splits(kSeqs, kHkv, kTopk, kSms);
  Dev dattn_ws(kernels::dsa_sparse_workspace_bytes(kSeqs, kHq, kD, splits));

  const kernels::DsaIndexKeyParams kp = keys.params(dkraw, dpos, dslots, dcache, kSeqs);
  kernels::DsaIndexQueryParams qp;
  qp.q = dqidx.ptr;
  qp.w_raw = dwraw.ptr;
  qp.positions = dpos.as<int>();
  qp.inv_freq = keys.dfreq.as<float>();
  qp.hadamard_scale = kp.hadamard_scale;
  qp.weight_scale = 1.0f / std::sqrt(static_cast<float>(kIdxHeads)) * (1.0f / std::sqrt(static_cast<float>(kIdxDim)));
  qp.q_fp8 = dq8.as<uint8_t>();
  qp.w_eff = dweff.as<float>();
  qp.rows = kSeqs;
  qp.heads = kIdxHeads;
  qp.head_dim = kIdxDim;
  qp.rope_dim = kRope;
  kernels::DsaIndexLogitsParams lp;
  lp.q_fp8 = dq8.as<uint8_t>();
  lp.w_eff = dweff.as<float>();
  lp.cache = dcache.as<uint8_t>();
  lp.query_start = dstarts.as<int>();
  lp.context_lens = dlens.as<int>();
  lp.block_tables = dtables.as<int>();
  lp.logits = dlogits.as<float>();
  lp.logits_stride = kBound;
  lp.seqs = kSeqs;
  lp.rows = kSeqs;
  lp.max_pages = kMaxPages;
  lp.max_context_len = kBound;
  lp.heads = kIdxHeads;
  lp.head_dim = kIdxDim;
  lp.skip_len = kTopk;
  lp.num_sms = kSms;
  kernels::DsaTopkParams tp;
  tp.logits = dlogits.as<float>();
  tp.query_start = dstarts.as<int>();
  tp.context_lens = dlens.as<int>();
  tp.indices = didx.as<int>();
  tp.workspace = dtopk_ws.ptr;
  tp.logits_stride = kBound;
  tp.seqs = kSeqs;
  tp.rows = kSeqs;
  tp.k = kTopk;
  tp.max_context_len = kBound;
  tp.num_sms = kSms;
  kernels::DsaSparseAttentionParams sp;
  sp.q = dq.ptr;
  sp.k_cache = dk.ptr;
  sp.v_cache = dv.ptr;
  sp.indices = didx.as<int>();
  sp.query_start = dstarts.as<int>();
  sp.block_tables = dtables.as<int>();
  sp.out = dout.ptr;
  sp.workspace = dattn_ws.ptr;
  sp.scale = 1.0f / std::sqrt(static_cast<float>(kD));
  sp.seqs = kSeqs;
  sp.rows = kSeqs;
  sp.max_pages = kMaxPages;
  sp.topk = kTopk;
  sp.q_heads = kHq;
  sp.kv_heads = kHkv;
  sp.head_dim = kD;
  sp.num_splits = splits;

  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto step = [&]() {
    EXPECT_EQ(kernels::launch_dsa_index_keys(kp, stream), cudaSuccess);
    EXPECT_EQ(kernels::launch_dsa_index_query(qp, stream), cudaSuccess);
    EXPECT_EQ(kernels::launch_dsa_index_logits(lp, stream), cudaSuccess);
    EXPECT_EQ(kernels::launch_dsa_topk(tp, stream), cudaSuccess);
    EXPECT_EQ(kernels::launch_dsa_sparse_attention(sp, stream), cudaSuccess);
  };
  // New step inputs: contexts, a fresh page permutation, fresh activations (all bf16 from floats).
  // Context 0 is a padding row as the runtime pads graphs: position 0, slot -1, a table row of -1.
  auto new_inputs = [&](const std::vector<int>& ctx, uint32_t seed) {
    std::vector<int32_t> perm(kPages), tables(kPages, -1), pos(kSeqs), slots(kSeqs);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
    for (int s = 0; s < kSeqs; ++s) {
      pos[s] = std::max(ctx[s] - 1, 0);
      slots[s] = -1;
      if (ctx[s] == 0) continue;
      for (int b = 0; b < kMaxPages; ++b) tables[s * kMaxPages + b] = perm[s * kMaxPages + b];
      slots[s] = tables[s * kMaxPages + pos[s] / 64] * 64 + pos[s] % 64;
    }
    auto put = [&](const Dev& d, const void* src, size_t bytes) {
      ASSERT_EQ(cudaMemcpy(d.ptr, src, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    };
    std::vector<float> kraw = random_floats(kSeqs * kIdxDim, seed + 1, -3.0f, 3.0f);
    std::vector<float> qidx = random_floats(kSeqs * kIdxHeads * kIdxDim, seed + 2, -2.0f, 2.0f);
    std::vector<float> wraw = random_floats(kSeqs * kIdxHeads, seed + 3, -1.0f, 1.0f);
    std::vector<float> q = random_floats(kSeqs * kHq * kD, seed + 4, -2.0f, 2.0f);
    std::vector<uint16_t> b1 = to_bf16(kraw), b2 = to_bf16(qidx), b3 = to_bf16(wraw), b4 = to_bf16(q);
    put(dkraw, b1.data(), b1.size() * 2);
    put(dqidx, b2.data(), b2.size() * 2);
    put(dwraw, b3.data(), b3.size() * 2);
    put(dq, b4.data(), b4.size() * 2);
    put(dlens, ctx.data(), kSeqs * 4);
    put(dtables, tables.data(), tables.size() * 4);
    put(dpos, pos.data(), kSeqs * 4);
    put(dslots, slots.data(), kSeqs * 4);
  };
  auto poison = [&]() {
    ASSERT_EQ(cudaMemset(didx.ptr, 0x7F, didx.bytes), cudaSuccess);
    ASSERT_EQ(cudaMemset(dout.ptr, 0xFF, dout.bytes), cudaSuccess);
  };

  new_inputs({5000, 2049, 17, 0}, 100);
  step();  // eager first, as the runtime does: one-time launcher set-up stays out of the capture
  CUDA_OK(cudaStreamSynchronize(stream));
  cudaGraph_t graph = nullptr;
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  step();
  CUDA_OK(cudaStreamEndCapture(stream, &graph));
  cudaGraphExec_t exec = nullptr;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));

  const std::vector<std::vector<int>> contexts = {
      {5000, 2049, 17, 0}, {9000, 4097, 2048, 0}, {64, 0, 8999, 6000}, {0, 0, 0, 0}};
  for (size_t c = 0; c < contexts.size(); ++c) {
    new_inputs(contexts[c], 200 + static_cast<uint32_t>(c));
    poison();
    CUDA_OK(cudaGraphLaunch(exec, stream));
    CUDA_OK(cudaStreamSynchronize(stream));
    const std::vector<int32_t> graph_idx = didx.get<int32_t>();
    const std::vector<uint16_t> graph_out = dout.get<uint16_t>();
    poison();
    step();
    CUDA_OK(cudaStreamSynchronize(stream));
    EXPECT_EQ(didx.get<int32_t>(), graph_idx) << "replay " << c;
    EXPECT_EQ(dout.get<uint16_t>(), graph_out) << "replay " << c;
    // The selection is real: row lengths <= k give 0..len-1 then -1, longer rows k distinct indices.
    for (int s = 0; s < kSeqs; ++s) {
      const int len = contexts[c][s];
      std::vector<int32_t> row(graph_idx.begin() + s * kTopk, graph_idx.begin() + (s + 1) * kTopk);
      const int valid = static_cast<int>(std::count_if(row.begin(), row.end(), [&](int j) { return j >= 0 && j < len; }));
      EXPECT_EQ(valid, std::min(len, kTopk)) << "replay " << c << " seq " << s;
      if (len == 0) {  // a padding row: nothing selected, output 0 (poisoned before the replay)
        EXPECT_EQ(row, std::vector<int32_t>(kTopk, -1)) << "replay " << c << " seq " << s;
        const std::vector<uint16_t> out(graph_out.begin() + s * kHq * kD, graph_out.begin() + (s + 1) * kHq * kD);
        EXPECT_EQ(out, std::vector<uint16_t>(kHq * kD, 0)) << "replay " << c << " seq " << s;
      }
    }
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace longbow
