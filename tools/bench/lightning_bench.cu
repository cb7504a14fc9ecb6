// Lightning (linear) attention against softmax attention at MiniMax-Text-01's widths, on one GPU, in
// one run (the MiniMax issue's numbers). Attention cores only: no projections, no norms, no FFN/MoE,
// no KV-cache writes.
//
//   longbow_lightning_bench [--json PATH] [--quick] [--softmax-max-len N] [--only prefill,decode,slice]
//
// 0. Correctness guard (always first): 300 tokens × 4 heads × 128 through the CUDA op
//    (cuda_lightning::lightning_attention), then 2 decode steps carrying the state, against an fp64
//    recurrence on the host (lightning_check.cc). Exit status 2 if the max relative error of the
//    outputs or the final state is above 2e-2 (or the op fails); nothing is timed then.
// 1. Prefill, one sequence from a fresh state, N = 8K, 32K, 128K, 512K: one linear layer (64 heads ×
//    128, bf16 qkv, fp32 state; kernels/linear_attention) against our flash prefill of a softmax
//    layer with the same query heads (64 q / 8 kv heads × 128, causal, K/V already in the paged
//    cache; kernels/flash_prefill). Softmax lengths above --softmax-max-len (default 131072) are
//    skipped and say so (512K softmax is ~16× the 128K time). Target: linear ≥ 20× faster at 128K.
// 2. Decode µs per step, one layer, contexts 4K, 16K, 64K, 128K, 512K, B = 1 and 8: lightning decode
//    (q_len 1, a carried state slot per sequence) against paged softmax decode (64 q / 8 kv heads ×
//    128, bf16 pages of 64 tokens, each sequence `context` tokens; kernels/paged_decode). Target:
//    linear at 512K within 10% of linear at 4K.
// 3. A MiniMax-shaped 8-layer slice, attention only, per decode step: 7 lightning decodes + 1 paged
//    softmax decode against 8 paged softmax decodes, contexts 32K and 512K, B = 1 and 8: µs per step,
//    the implied attention-only tokens/s (B / step), and the KV + state bytes per sequence of each
//    layout (state 7·64·128·128·4 B; KV layers·ctx·8·128·2·2 B).
//
// Timing: CUDA events on the default stream after warm-up calls; the median over `runs` samples
// (10 for prefill up to 128K, 5 linear / 3 softmax above; 15 for decode and the slice). A prefill
// sample is one call. A decode sample averages enough back-to-back calls to last ~2 ms, queued behind
// a short spin kernel so that host launch overhead does not enter (GPU execution time, as under the
// runtime's CUDA graphs). Decode calls rotate over copies of their memory (state slots, KV pages and
// block tables) so that one cycle touches >= 256 MB: no call finds its state or KV in the 50 MB L2,
// as in a whole model where the other layers run in between. The L2-warm time (the same memory every
// call) is printed beside it for comparison with kernel_bench. K/V, q and qkv hold random bf16 (the
// contents do not change the timing).
// --quick: 1K and 4K prefill, 4K and 16K decode, 4K and 16K slice, 3 runs each (a smoke run).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/elementwise/params.h"
#include "kernels/flash_prefill/params.h"
#include "kernels/linear_attention/params.h"
#include "kernels/paged_decode/params.h"
#include "tools/bench/device_bench.cuh"
#include "tools/bench/lightning_check.h"

namespace {

namespace k = longbow::kernels;
namespace bench = longbow::bench;
using bench::Buf;

// MiniMax-Text-01: 64 query heads × 128 in both layer kinds, 8 KV heads in the softmax layers.
constexpr int kHeads = 64, kKvHeads = 8, kD = 128;
constexpr int kSliceLinear = 7, kSliceSoftmax = 1, kSliceLayers = kSliceLinear + kSliceSoftmax;
constexpr double kCheckBudget = 2e-2;
constexpr double kPrefillGoal = 20.0;  // linear ≥ 20× faster than softmax at 128K
constexpr double kDecodeFlatness = 0.10;  // linear decode at 512K within 10% of 4K
constexpr size_t kRotateBytes = size_t{256} << 20;
constexpr size_t kStateBytesPerSeq = size_t{kHeads} * kD * kD * 4;  // one layer, one sequence
constexpr size_t kKvBytesPerToken = size_t{kKvHeads} * kD * 2 * 2;  // one layer: K and V

struct Options {
  std::string json_path;
  bool quick = false;
  int softmax_max_len = 131072;
  bool prefill = true, decode = true, slice = true;
};

[[noreturn]] void usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--json PATH] [--quick] [--softmax-max-len N] [--only prefill,decode,slice]\n", argv0);
  std::exit(64);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--json" && has_value) {
      o.json_path = argv[++i];
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--softmax-max-len" && has_value) {
      o.softmax_max_len = std::atoi(argv[++i]);
    } else if (a == "--only" && has_value) {
      const std::string list = std::string(",") + argv[++i] + ",";
      o.prefill = list.find(",prefill,") != std::string::npos;
      o.decode = list.find(",decode,") != std::string::npos;
      o.slice = list.find(",slice,") != std::string::npos;
      if (!o.prefill && !o.decode && !o.slice) usage(argv[0]);
    } else {
      usage(argv[0]);
    }
  }
  return o;
}

// MiniMax's per-head decay rates at layer 0 (2^(−8(h+1)/H)); they do not change the timing.
std::vector<float> minimax_slopes() {
  std::vector<float> s(kHeads);
  for (int h = 0; h < kHeads; ++h) s[static_cast<size_t>(h)] = std::exp2f(-8.0f * static_cast<float>(h + 1) / kHeads);
  return s;
}

void fill_f32(Buf& b, uint64_t seed, float scale) {
  k::FillRandomParams p;
  p.out = b.ptr;
  p.count = static_cast<int64_t>(b.bytes / 4);
  p.seed = seed;
  p.low = -scale;
  p.high = scale;
  CK(k::launch_fill_random_f32(p, nullptr));
}

size_t free_bytes() {
  size_t free = 0, total = 0;
  CK(cudaMemGetInfo(&free, &total));
  return free;
}

// Copies of a call's memory so that one rotation touches ≥ kRotateBytes (at least `min_copies`),
// within `budget` bytes.
int rotation_copies(size_t per_copy, int min_copies, size_t budget) {
  size_t want = per_copy >= kRotateBytes ? 1 : (kRotateBytes + per_copy - 1) / per_copy;
  want = std::max<size_t>(want, static_cast<size_t>(min_copies));
  const size_t cap = std::max<size_t>(1, budget / std::max<size_t>(per_copy, 1));
  return static_cast<int>(std::min(want, cap));
}

struct Timed {
  double us = -1.0;  // median µs per call; < 0: not measured
  int runs = 0;      // samples the median is over
  int inner = 0;     // back-to-back calls per sample
};

// Holds the stream for `ns` nanoseconds of GPU time (one thread).
__global__ void spin_kernel(unsigned long long ns) {
  unsigned long long start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}

// Warm-up calls (two; one with sample_ms <= 0), a probe call that sizes `inner` (sample_ms <= 0: one
// call per sample, no probe), then the
// median of `runs` samples, each the mean of `inner` calls, timed with CUDA events. With sample_ms > 0
// each sample is queued behind a spin kernel of 2·sample_ms, so the host has enqueued every call of
// the sample before the first starts: the time is the GPU's back-to-back execution, not the host's
// launch rate (the runtime replays decode steps as CUDA graphs).
template <typename Fn>
Timed time_calls(Fn&& fn, int runs, double sample_ms) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  fn();
  if (sample_ms > 0) fn();  // a second warm-up call, except for the long prefill calls
  CK(cudaDeviceSynchronize());
  Timed t;
  t.runs = runs;
  t.inner = 1;
  if (sample_ms > 0) {
    CK(cudaEventRecord(a));
    fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float probe = 0;
    CK(cudaEventElapsedTime(&probe, a, b));
    t.inner = std::clamp(static_cast<int>(std::ceil(sample_ms / std::max(probe, 1e-4f))), 1, 200);
  }
  std::vector<double> samples;
  for (int r = 0; r < runs; ++r) {
    if (sample_ms > 0) {
      spin_kernel<<<1, 1>>>(static_cast<unsigned long long>(2e6 * sample_ms));
      CK(cudaGetLastError());
    }
    CK(cudaEventRecord(a));
    for (int i = 0; i < t.inner; ++i) fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    samples.push_back(1e3 * ms / t.inner);
  }
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  t.us = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  return t;
}

// ---- the layers ----

// Lightning decode of B sequences (one token each, state carried) over `copies` disjoint sets of B
// state slots of one pool; launch() moves to the next set.
struct LightningDecode {
  int batch, copies, next = 0;
  Buf state, qkv, out, slopes, starts, lens, slots;
  std::vector<k::LightningParams> params;

  static size_t bytes_per_copy(int b) { return static_cast<size_t>(b) * kStateBytesPerSeq; }

  LightningDecode(int b, int ctx, int n_copies)
      : batch(b), copies(n_copies), state(bytes_per_copy(b) * static_cast<size_t>(n_copies)),
        qkv(static_cast<size_t>(b) * kHeads * 3 * kD * 2), out(static_cast<size_t>(b) * kHeads * kD * 2),
        slopes(kHeads * 4), starts(static_cast<size_t>(b + 1) * 4), lens(static_cast<size_t>(b) * 4),
        slots(static_cast<size_t>(b) * n_copies * 4) {
    fill_f32(state, 11, 1.0f);
    bench::fill_bf16(qkv, 12, 1.0f);
    slopes.put(minimax_slopes());
    std::vector<int> st(static_cast<size_t>(b + 1)), ln(static_cast<size_t>(b), ctx);
    std::iota(st.begin(), st.end(), 0);
    starts.put(st);
    lens.put(ln);
    std::vector<int> sl(static_cast<size_t>(b) * n_copies);
    std::iota(sl.begin(), sl.end(), 0);
    std::shuffle(sl.begin(), sl.end(), std::mt19937(13));
    slots.put(sl);
    for (int c = 0; c < n_copies; ++c) {
      k::LightningParams p;
      p.qkv = qkv.ptr;
      p.slopes = slopes.as<float>();
      p.state = state.as<float>();
      p.query_start = starts.as<int>();
      p.context_lens = lens.as<int>();
      p.slots = slots.as<int>() + static_cast<size_t>(c) * b;
      p.out = out.ptr;
      p.seqs = b;
      p.heads = kHeads;
      p.head_dim = kD;
      p.num_slots = b * n_copies;
      p.max_query_len = 1;
      params.push_back(p);
    }
  }

  void launch() {
    CK(k::launch_lightning_attention(params[static_cast<size_t>(next)], nullptr));
    next = (next + 1) % copies;
  }
  void launch_first() { CK(k::launch_lightning_attention(params[0], nullptr)); }
};

// Paged softmax decode of B sequences of `ctx` tokens over `copies` disjoint sets of KV pages
// (pages shuffled across the pool); launch() moves to the next set.
struct PagedDecode {
  int batch, ctx, pages_per_seq, copies, next = 0;
  Buf kc, vc, tables, q, out, starts, lens, ws;
  std::vector<k::PagedDecodeParams> params;

  static size_t bytes_per_copy(int b, int ctx) {
    const size_t pages = (static_cast<size_t>(ctx) + k::kKvPageSize - 1) / k::kKvPageSize;
    return static_cast<size_t>(b) * pages * k::kKvPageSize * kKvBytesPerToken;
  }

  PagedDecode(int b, int context, int n_copies, int sms)
      : batch(b), ctx(context), pages_per_seq((context + k::kKvPageSize - 1) / k::kKvPageSize), copies(n_copies),
        kc(bytes_per_copy(b, context) * static_cast<size_t>(n_copies) / 2), vc(kc.bytes),
        tables(static_cast<size_t>(b) * pages_per_seq * n_copies * 4),
        q(static_cast<size_t>(b) * kHeads * kD * 2), out(q.bytes), starts(static_cast<size_t>(b + 1) * 4),
        lens(static_cast<size_t>(b) * 4),
        ws(k::decode_workspace_bytes(b, kHeads, kD, k::choose_decode_splits(b, kKvHeads, context, sms))) {
    bench::fill_bf16(kc, 21, 1.0f);
    bench::fill_bf16(vc, 22, 1.0f);
    bench::fill_bf16(q, 23, 1.0f);
    std::vector<int> table(static_cast<size_t>(b) * pages_per_seq * n_copies);
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(24));
    tables.put(table);
    std::vector<int> st(static_cast<size_t>(b + 1)), ln(static_cast<size_t>(b), context);
    std::iota(st.begin(), st.end(), 0);
    starts.put(st);
    lens.put(ln);
    const int splits = k::choose_decode_splits(b, kKvHeads, context, sms);
    for (int c = 0; c < n_copies; ++c) {
      k::PagedDecodeParams p;
      p.attn.q = q.ptr;
      p.attn.k_cache = kc.ptr;
      p.attn.v_cache = vc.ptr;
      p.attn.query_start = starts.as<int>();
      p.attn.context_lens = lens.as<int>();
      p.attn.block_tables = tables.as<int>() + static_cast<size_t>(c) * b * pages_per_seq;
      p.attn.out = out.ptr;
      p.attn.num_seqs = b;
      p.attn.num_q_heads = kHeads;
      p.attn.num_kv_heads = kKvHeads;
      p.attn.head_dim = kD;
      p.attn.max_pages_per_seq = pages_per_seq;
      p.attn.max_query_len = 1;
      p.attn.max_context_len = context;
      p.attn.scale = 1.0f / std::sqrt(static_cast<float>(kD));
      p.num_splits = splits;
      p.workspace = ws.ptr;
      params.push_back(p);
    }
  }

  int splits() const { return params[0].num_splits; }
  void launch() {
    CK(k::launch_paged_decode(params[static_cast<size_t>(next)], nullptr));
    next = (next + 1) % copies;
  }
  void launch_first() { CK(k::launch_paged_decode(params[0], nullptr)); }
};

// ---- output ----

std::string num(double x, const char* fmt = "%.4f") {
  if (!(x >= 0) || !std::isfinite(x)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, fmt, x);
  return b;
}

std::string mb(size_t bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return b;
}

std::string len_name(int n) {
  char b[16];
  if (n % 1024 == 0) {
    std::snprintf(b, sizeof b, "%dK", n / 1024);
  } else {
    std::snprintf(b, sizeof b, "%d", n);
  }
  return b;
}

// ---- 1. prefill ----

struct PrefillRow {
  int n = 0;
  Timed linear, softmax;
  bool softmax_skipped = false;
  double softmax_tflops = -1.0;
};

PrefillRow prefill_case(int n, const Options& o) {
  PrefillRow r;
  r.n = n;
  const int lin_runs = o.quick ? 3 : (n > 131072 ? 5 : 10);
  const int soft_runs = o.quick ? 3 : (n > 131072 ? 3 : 10);
  {  // one lightning layer, fresh state
    Buf qkv(static_cast<size_t>(n) * kHeads * 3 * kD * 2), out(static_cast<size_t>(n) * kHeads * kD * 2),
        state(kStateBytesPerSeq), slopes(kHeads * 4), starts(8), lens(4), slots(4);
    bench::fill_bf16(qkv, 1, 1.0f);
    slopes.put(minimax_slopes());
    starts.put(std::vector<int>{0, n});
    lens.put(std::vector<int>{n});
    slots.put(std::vector<int>{0});
    k::LightningParams p;
    p.qkv = qkv.ptr;
    p.slopes = slopes.as<float>();
    p.state = state.as<float>();
    p.query_start = starts.as<int>();
    p.context_lens = lens.as<int>();
    p.slots = slots.as<int>();
    p.out = out.ptr;
    p.seqs = 1;
    p.heads = kHeads;
    p.head_dim = kD;
    p.num_slots = 1;
    p.max_query_len = n;
    r.linear = time_calls([&] { CK(k::launch_lightning_attention(p, nullptr)); }, lin_runs, 0.0);
  }
  if (n > o.softmax_max_len) {
    r.softmax_skipped = true;
    return r;
  }
  {  // one softmax layer: causal flash prefill over its K/V in the paged cache
    const int pages = (n + k::kKvPageSize - 1) / k::kKvPageSize;
    Buf q(static_cast<size_t>(n) * kHeads * kD * 2), out(q.bytes),
        kc(static_cast<size_t>(pages) * k::kKvPageSize * kKvBytesPerToken / 2), vc(kc.bytes),
        tables(static_cast<size_t>(pages) * 4), starts(8), lens(4);
    bench::fill_bf16(q, 2, 1.0f);
    bench::fill_bf16(kc, 3, 1.0f);
    bench::fill_bf16(vc, 4, 1.0f);
    std::vector<int> table(static_cast<size_t>(pages));
    std::iota(table.begin(), table.end(), 0);
    tables.put(table);
    starts.put(std::vector<int>{0, n});
    lens.put(std::vector<int>{n});
    k::FlashPrefillParams p;
    p.q = q.ptr;
    p.k_cache = kc.ptr;
    p.v_cache = vc.ptr;
    p.query_start = starts.as<int>();
    p.context_lens = lens.as<int>();
    p.block_tables = tables.as<int>();
    p.out = out.ptr;
    p.num_seqs = 1;
    p.num_q_heads = kHeads;
    p.num_kv_heads = kKvHeads;
    p.head_dim = kD;
    p.max_pages_per_seq = pages;
    p.max_query_len = n;
    p.max_context_len = n;
    p.scale = 1.0f / std::sqrt(static_cast<float>(kD));
    r.softmax = time_calls([&] { CK(k::launch_flash_prefill(p, nullptr)); }, soft_runs, 0.0);
    // Causal FLOPs as kernel_bench counts them: 2·Hq·N²·d (QKᵀ and PV, half the square each).
    r.softmax_tflops = 2.0 * kHeads * static_cast<double>(n) * n * kD / (r.softmax.us * 1e-6) / 1e12;
  }
  return r;
}

// ---- 2. decode ----

struct DecodeRow {
  int ctx = 0, batch = 0, linear_copies = 0, softmax_copies = 0, softmax_splits = 0;
  Timed linear, linear_warm, softmax, softmax_warm;
};

DecodeRow decode_case(int ctx, int b, int sms, const Options& o) {
  DecodeRow r;
  r.ctx = ctx;
  r.batch = b;
  const int runs = o.quick ? 3 : 15;
  const double sample_ms = o.quick ? 0.5 : 2.0;
  const size_t budget = free_bytes() > (size_t{4} << 30) ? free_bytes() - (size_t{4} << 30) : 0;
  r.softmax_copies = rotation_copies(PagedDecode::bytes_per_copy(b, ctx), 1, budget);
  {
    PagedDecode s(b, ctx, r.softmax_copies, sms);
    r.softmax_splits = s.splits();
    r.softmax = time_calls([&] { s.launch(); }, runs, sample_ms);
    r.softmax_warm = time_calls([&] { s.launch_first(); }, runs, sample_ms);
  }
  r.linear_copies = rotation_copies(LightningDecode::bytes_per_copy(b), 1, budget);
  LightningDecode l(b, ctx, r.linear_copies);
  r.linear = time_calls([&] { l.launch(); }, runs, sample_ms);
  r.linear_warm = time_calls([&] { l.launch_first(); }, runs, sample_ms);
  return r;
}

// ---- 3. the 8-layer slice ----

struct SliceRow {
  int ctx = 0, batch = 0, linear_copies = 0, softmax_copies = 0;
  Timed hybrid, softmax;
  size_t hybrid_state_bytes = 0, hybrid_kv_bytes = 0, softmax_kv_bytes = 0;  // per sequence
};

SliceRow slice_case(int ctx, int b, int sms, const Options& o) {
  SliceRow r;
  r.ctx = ctx;
  r.batch = b;
  const int runs = o.quick ? 3 : 15;
  const double sample_ms = o.quick ? 0.5 : 2.0;
  const size_t budget = free_bytes() > (size_t{4} << 30) ? free_bytes() - (size_t{4} << 30) : 0;
  // Up to kSliceLayers separate KV layers when they fit (and more while one rotation is < 256 MB);
  // above that the layers share pools far larger than L2, which cannot change the timing.
  r.softmax_copies = rotation_copies(PagedDecode::bytes_per_copy(b, ctx), kSliceLayers,
                                     std::min(budget, size_t{24} << 30));
  r.linear_copies = rotation_copies(LightningDecode::bytes_per_copy(b), kSliceLinear, budget / 4);
  PagedDecode s(b, ctx, r.softmax_copies, sms);
  LightningDecode l(b, ctx, r.linear_copies);
  r.hybrid = time_calls(
      [&] {
        for (int i = 0; i < kSliceLinear; ++i) l.launch();
        for (int i = 0; i < kSliceSoftmax; ++i) s.launch();
      },
      runs, sample_ms);
  r.softmax = time_calls(
      [&] {
        for (int i = 0; i < kSliceLayers; ++i) s.launch();
      },
      runs, sample_ms);
  r.hybrid_state_bytes = kSliceLinear * kStateBytesPerSeq;
  r.hybrid_kv_bytes = kSliceSoftmax * static_cast<size_t>(ctx) * kKvBytesPerToken;
  r.softmax_kv_bytes = kSliceLayers * static_cast<size_t>(ctx) * kKvBytesPerToken;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  std::printf("== lightning vs softmax attention on %s (%d SMs, %.1f GB free)%s ==\n", prop.name, sms,
              static_cast<double>(free_bytes()) / 1e9, o.quick ? " [--quick]" : "");
  std::printf("shapes: %d q heads x %d, softmax %d kv heads, bf16 in/out, lightning state fp32\n", kHeads, kD,
              kKvHeads);

  // ---- 0. correctness guard ----
  const bench::LightningCheck check = bench::run_lightning_check(300, 4, kD, 2);
  const double check_worst = std::max(check.max_rel_out, check.max_rel_state);
  const bool check_ok = check.error[0] == '\0' && check_worst <= kCheckBudget;
  if (check.error[0] != '\0') std::printf("check: %s\n", check.error);
  std::printf("check: lightning op (prefill %d tokens + %d decode steps, %d heads x %d) vs fp64 recurrence: "
              "max rel err out %.2e, state %.2e (budget %.0e): %s\n",
              check.tokens, check.decode_steps, check.heads, check.head_dim, check.max_rel_out, check.max_rel_state,
              kCheckBudget, check_ok ? "ok" : "FAILED");
  std::string json = std::string("{\n  \"device\": \"") + prop.name + "\",\n  \"sms\": " + std::to_string(sms) +
                     ",\n  \"quick\": " + (o.quick ? "true" : "false") + ",\n  \"heads\": " +
                     std::to_string(kHeads) + ", \"kv_heads\": " + std::to_string(kKvHeads) +
                     ", \"head_dim\": " + std::to_string(kD) + ",\n  \"softmax_max_len\": " +
                     std::to_string(o.softmax_max_len) + ",\n  \"decode_rotate_bytes\": " +
                     std::to_string(kRotateBytes) + ",\n";
  json += "  \"check\": {\"tokens\": " + std::to_string(check.tokens) + ", \"decode_steps\": " +
          std::to_string(check.decode_steps) + ", \"heads\": " + std::to_string(check.heads) +
          ", \"max_rel_out\": " + num(check.max_rel_out, "%.3e") + ", \"max_rel_state\": " +
          num(check.max_rel_state, "%.3e") + ", \"budget\": " + num(kCheckBudget, "%.0e") + ", \"ok\": " +
          (check_ok ? "true" : "false") + "}";
  auto write_json = [&] {
    if (o.json_path.empty()) return true;
    FILE* f = std::fopen(o.json_path.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "cannot write %s\n", o.json_path.c_str());
      return false;
    }
    std::fputs((json + "\n}\n").c_str(), f);
    std::fclose(f);
    return true;
  };
  if (!check_ok) {
    write_json();
    return 2;
  }

  // ---- 1. prefill ----
  if (o.prefill) {
    const std::vector<int> lens = o.quick ? std::vector<int>{1024, 4096} : std::vector<int>{8192, 32768, 131072, 524288};
    std::printf("\n-- prefill: one layer, one sequence from a fresh state (linear: 64 heads; softmax: flash "
                "prefill 64 q / 8 kv heads, causal) --\n");
    json += ",\n  \"prefill\": [";
    double ratio_goal_n = -1.0;
    for (size_t i = 0; i < lens.size(); ++i) {
      const int n = lens[i];
      const PrefillRow r = prefill_case(n, o);
      const double ratio = r.softmax_skipped ? -1.0 : r.softmax.us / r.linear.us;
      char soft[160];
      if (r.softmax_skipped) {
        std::snprintf(soft, sizeof soft, "softmax skipped (N > --softmax-max-len %d)", o.softmax_max_len);
      } else {
        std::snprintf(soft, sizeof soft, "softmax %10.3f ms (%3.0f TFLOP/s, %d runs)  softmax/linear %6.1fx",
                      r.softmax.us * 1e-3, r.softmax_tflops, r.softmax.runs, ratio);
      }
      std::printf("prefill N=%-5s linear %9.3f ms (%.3f ms/Ktok, %2d runs)  %s\n", len_name(n).c_str(),
                  r.linear.us * 1e-3, r.linear.us * 1e-3 / (n / 1024.0), r.linear.runs, soft);
      json += std::string(i ? "," : "") + "\n    {\"n\": " + std::to_string(n) + ", \"linear_ms\": " +
              num(r.linear.us * 1e-3) + ", \"linear_runs\": " + std::to_string(r.linear.runs) +
              ", \"softmax_ms\": " + num(r.softmax.us * 1e-3) + ", \"softmax_runs\": " +
              std::to_string(r.softmax.runs) + ", \"softmax_tflops\": " + num(r.softmax_tflops, "%.1f") +
              ", \"softmax_skipped\": " + (r.softmax_skipped ? "true" : "false") + ", \"softmax_over_linear\": " +
              num(ratio, "%.3f") + "}";
      if (n == 131072) ratio_goal_n = ratio;
    }
    json += "\n  ]";
    if (ratio_goal_n > 0) {
      const bool met = ratio_goal_n >= kPrefillGoal;
      std::printf("target: linear >= %.0fx faster than softmax at 128K: %.1fx, %s\n", kPrefillGoal, ratio_goal_n,
                  met ? "met" : "NOT met");
      json += ",\n  \"prefill_target\": {\"n\": 131072, \"goal\": " + num(kPrefillGoal, "%.0f") + ", \"ratio\": " +
              num(ratio_goal_n, "%.3f") + ", \"met\": " + (met ? "true" : "false") + "}";
    } else {
      std::printf("target: linear >= %.0fx faster than softmax at 128K: not measured in this run\n", kPrefillGoal);
    }
  }

  // ---- 2. decode ----
  if (o.decode) {
    const std::vector<int> ctxs =
        o.quick ? std::vector<int>{4096, 16384} : std::vector<int>{4096, 16384, 65536, 131072, 524288};
    const std::vector<int> batches = {1, 8};
    std::printf("\n-- decode: one layer, us per step (cold: rotating over >= 256 MB of state / KV copies; "
                "warm: the same memory every call) --\n");
    json += ",\n  \"decode\": [";
    std::vector<DecodeRow> rows;
    for (int b : batches) {
      for (int ctx : ctxs) {
        const DecodeRow r = decode_case(ctx, b, sms, o);
        rows.push_back(r);
        // Bytes each call must move: the state read and written; the K/V read.
        const double lin_tbps = 2.0 * static_cast<double>(LightningDecode::bytes_per_copy(b)) / (r.linear.us * 1e6);
        const double soft_tbps =
            static_cast<double>(b) * ctx * static_cast<double>(kKvBytesPerToken) / (r.softmax.us * 1e6);
        std::printf("decode ctx=%-5s B=%d  linear %8.1f us (%4.2f TB/s; warm %7.1f)  softmax %8.1f us (%4.2f TB/s; "
                    "warm %7.1f; %3d splits)  softmax/linear %6.1fx  [copies %d / %d]\n",
                    len_name(ctx).c_str(), b, r.linear.us, lin_tbps, r.linear_warm.us, r.softmax.us, soft_tbps,
                    r.softmax_warm.us, r.softmax_splits, r.softmax.us / r.linear.us, r.linear_copies,
                    r.softmax_copies);
        json += std::string(rows.size() > 1 ? "," : "") + "\n    {\"ctx\": " + std::to_string(ctx) +
                ", \"batch\": " + std::to_string(b) + ", \"linear_us\": " + num(r.linear.us, "%.2f") +
                ", \"linear_tbps\": " + num(lin_tbps, "%.3f") + ", \"softmax_tbps\": " + num(soft_tbps, "%.3f") +
                ", \"linear_warm_us\": " + num(r.linear_warm.us, "%.2f") + ", \"linear_copies\": " +
                std::to_string(r.linear_copies) + ", \"softmax_us\": " + num(r.softmax.us, "%.2f") +
                ", \"softmax_warm_us\": " + num(r.softmax_warm.us, "%.2f") + ", \"softmax_copies\": " +
                std::to_string(r.softmax_copies) + ", \"softmax_splits\": " + std::to_string(r.softmax_splits) +
                ", \"runs\": " + std::to_string(r.linear.runs) + ", \"softmax_over_linear\": " +
                num(r.softmax.us / r.linear.us, "%.3f") + "}";
      }
    }
    json += "\n  ],\n  \"decode_target\": [";
    for (size_t bi = 0; bi < batches.size(); ++bi) {
      const DecodeRow* lo = nullptr;
      const DecodeRow* hi = nullptr;
      for (const DecodeRow& r : rows) {
        if (r.batch != batches[bi]) continue;
        if (r.ctx == ctxs.front()) lo = &r;
        if (r.ctx == ctxs.back()) hi = &r;
      }
      const double change = hi->linear.us / lo->linear.us - 1.0;
      const bool met = std::abs(change) <= kDecodeFlatness;
      std::printf("target: linear decode at %s within %.0f%% of %s, B=%d: %.1f vs %.1f us (%+.1f%%), %s\n",
                  len_name(ctxs.back()).c_str(), 100 * kDecodeFlatness, len_name(ctxs.front()).c_str(), batches[bi],
                  hi->linear.us, lo->linear.us, 100 * change, met ? "met" : "NOT met");
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "%s\n    {\"batch\": %d, \"ctx_low\": %d, \"ctx_high\": %d, \"linear_us_low\": %.2f, "
                    "\"linear_us_high\": %.2f, \"change\": %.4f, \"goal\": %.2f, \"met\": %s}",
                    bi ? "," : "", batches[bi], ctxs.front(), ctxs.back(), lo->linear.us, hi->linear.us, change,
                    kDecodeFlatness, met ? "true" : "false");
      json += buf;
    }
    json += "\n  ]";
  }

  // ---- 3. slice ----
  if (o.slice) {
    const std::vector<int> ctxs = o.quick ? std::vector<int>{4096, 16384} : std::vector<int>{32768, 524288};
    std::printf("\n-- MiniMax-shaped slice, ATTENTION ONLY (no projections, norms, FFN/MoE, KV writes): per decode "
                "step %d lightning + %d softmax decode vs %d softmax decode; tok/s = B / step --\n",
                kSliceLinear, kSliceSoftmax, kSliceLayers);
    json += ",\n  \"slice_note\": \"attention only: per decode step 7 lightning decodes + 1 paged softmax decode "
            "(hybrid) vs 8 paged softmax decodes; no projections, norms, FFN/MoE or KV writes; tok_s = batch / "
            "step\",\n  \"slice\": [";
    bool first = true;
    for (int b : {1, 8}) {
      for (int ctx : ctxs) {
        const SliceRow r = slice_case(ctx, b, sms, o);
        const double hyb_tok = b / (r.hybrid.us * 1e-6), soft_tok = b / (r.softmax.us * 1e-6);
        std::printf("slice ctx=%-5s B=%d  7 lin + 1 softmax %8.1f us/step (%8.0f tok/s)  8 softmax %8.1f us/step "
                    "(%8.0f tok/s)  speed-up %5.2fx\n",
                    len_name(ctx).c_str(), b, r.hybrid.us, hyb_tok, r.softmax.us, soft_tok, r.softmax.us / r.hybrid.us);
        std::printf("      bytes per sequence: hybrid %s (state %s + KV %s), all-softmax KV %s  [copies %d / %d]\n",
                    mb(r.hybrid_state_bytes + r.hybrid_kv_bytes).c_str(), mb(r.hybrid_state_bytes).c_str(),
                    mb(r.hybrid_kv_bytes).c_str(), mb(r.softmax_kv_bytes).c_str(), r.linear_copies, r.softmax_copies);
        char buf[768];
        std::snprintf(buf, sizeof buf,
                      "%s\n    {\"ctx\": %d, \"batch\": %d, \"hybrid_step_us\": %.2f, \"hybrid_tok_s\": %.1f, "
                      "\"softmax_step_us\": %.2f, \"softmax_tok_s\": %.1f, \"speedup\": %.3f, \"runs\": %d, "
                      "\"hybrid_state_bytes_per_seq\": %zu, \"hybrid_kv_bytes_per_seq\": %zu, "
                      "\"hybrid_bytes_per_seq\": %zu, \"softmax_kv_bytes_per_seq\": %zu, "
                      "\"linear_copies\": %d, \"softmax_copies\": %d}",
                      first ? "" : ",", ctx, b, r.hybrid.us, hyb_tok, r.softmax.us, soft_tok,
                      r.softmax.us / r.hybrid.us, r.hybrid.runs, r.hybrid_state_bytes, r.hybrid_kv_bytes,
                      r.hybrid_state_bytes + r.hybrid_kv_bytes, r.softmax_kv_bytes, r.linear_copies,
                      r.softmax_copies);
        json += buf;
        first = false;
      }
    }
    json += "\n  ]";
  }
  return write_json() ? 0 : 1;
}
