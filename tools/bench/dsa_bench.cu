// DSA decode benchmark and FP8 recall measurement on the GPU machine (docs/benchmarks.md, DSA).
//
//   dsa_bench OUT.json
//
// Per layer at context 131072, Hq=32, Hkv=8, d=128, 64 index heads × 128, top-2048, B = 1, 8, 32,
// each sequence's pages shuffled across the pools: the index-query quantization, the index-key
// write of the B new tokens, FP8 index logits, exact top-k, sparse attention, the total (also as a
// CUDA graph), and our dense paged decode of the same K/V. Index-logit GB/s = B·ctx·132 B / t,
// next to the measured device copy bandwidth ((read + write) / t of a 1 GiB copy).
//
// Recall: 8 sequences of 131072 keys (4 random, 4 "structured": 16 keys planted to match the
// query strongly). The exact selection is the top-2048 of fp32 scores of the unquantized q and k
// (a plain fp32 CUDA kernel here); the FP8 selection is our pipeline's. Recall = |FP8 ∩ exact| /
// 2048 per row; for structured rows also how many planted keys the FP8 selection keeps.
#include <cuda_bf16.h>
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

#include "kernels/dsa/params.h"
#include "kernels/elementwise/params.h"
#include "kernels/paged_decode/params.h"
#include "model/backend/cpu/cpu_dsa.h"
#include "tools/bench/device_bench.cuh"

namespace {

namespace k = longbow::kernels;
namespace bench = longbow::bench;
using bench::Buf;
using bench::fill_bf16;

constexpr int kCtx = 131072, kHq = 32, kHkv = 8, kD = 128, kIdxHeads = 64, kIdxDim = 128, kTopk = 2048;

// DSA_BENCH_QUICK=1 (for profilers: ncu replays every launch) times each case once, one launch.
bool quick() {
  static const bool q = std::getenv("DSA_BENCH_QUICK") != nullptr;
  return q;
}

template <typename Fn>
double time_ms(Fn&& fn, int reps = 15, int inner = 10) {
  return quick() ? bench::time_ms(fn, 1, 1) : bench::time_ms(fn, reps, inner);
}

// Everything one DSA decode step of one layer touches, for B sequences at kCtx.
struct DecodeSetup {
  int batch, pages_per_seq, pages;
  Buf kc, vc, index_cache, tables, lens, starts, positions, slots;
  Buf q, index_q, w_raw, k_raw, gamma, beta, inv_freq;
  Buf q8, w_eff, logits, indices, out, workspace, topk_ws, dense_out, dense_ws;
  int splits, dense_splits;
  k::DsaIndexQueryParams qp;
  k::DsaIndexKeyParams kp;
  k::DsaIndexLogitsParams lp;
  k::DsaTopkParams tp;
  k::DsaSparseAttentionParams sp;
  k::PagedDecodeParams dp;

  DecodeSetup(int b, int num_sms)
      : batch(b), pages_per_seq(kCtx / 64), pages(b * (kCtx / 64)),
        kc(static_cast<size_t>(pages) * 64 * kHkv * kD * 2), vc(kc.bytes),
        index_cache(static_cast<size_t>(pages) * 64 * (kIdxDim + 4)),
        tables(static_cast<size_t>(pages) * 4), lens(b * 4), starts((b + 1) * 4), positions(b * 4), slots(b * 4),
        q(static_cast<size_t>(b) * kHq * kD * 2), index_q(static_cast<size_t>(b) * kIdxHeads * kIdxDim * 2),
        w_raw(static_cast<size_t>(b) * kIdxHeads * 2), k_raw(static_cast<size_t>(kCtx) * kIdxDim * 2),
        gamma(kIdxDim * 2), beta(kIdxDim * 2), inv_freq(32 * 4),
        q8(static_cast<size_t>(b) * kIdxHeads * kIdxDim), w_eff(static_cast<size_t>(b) * kIdxHeads * 4),
        logits(static_cast<size_t>(b) * kCtx * 4), indices(static_cast<size_t>(b) * kTopk * 4),
        out(static_cast<size_t>(b) * kHq * kD * 2),
        workspace(k::dsa_sparse_workspace_bytes(b, kHq, kD, 32)),
        topk_ws(k::dsa_topk_workspace_bytes(b, kCtx, num_sms)), dense_out(out.bytes),
        dense_ws(k::decode_workspace_bytes(b, kHq, kD, k::choose_decode_splits(b, kHkv, kCtx, num_sms))) {
    splits = k::dsa_sparse_choose_splits(b, kHkv, kTopk, num_sms);
    dense_splits = k::choose_decode_splits(b, kHkv, kCtx, num_sms);
    fill_bf16(kc, 1, 1.0f);
    fill_bf16(vc, 2, 1.0f);
    fill_bf16(q, 3, 1.0f);
    fill_bf16(index_q, 4, 1.0f);
    fill_bf16(w_raw, 5, 1.0f);
    fill_bf16(k_raw, 6, 2.0f);
    fill_bf16(gamma, 7, 1.0f);
    fill_bf16(beta, 8, 0.1f);
    std::vector<int> table(static_cast<size_t>(pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(9));
    tables.put(table);
    std::vector<int> l(static_cast<size_t>(b), kCtx), st(static_cast<size_t>(b + 1)), pos(static_cast<size_t>(b));
    std::vector<int> sl(static_cast<size_t>(b));
    for (int s = 0; s <= b; ++s) st[static_cast<size_t>(s)] = s;
    for (int s = 0; s < b; ++s) {
      pos[static_cast<size_t>(s)] = kCtx - 1;
      sl[static_cast<size_t>(s)] = table[static_cast<size_t>(s * pages_per_seq + pages_per_seq - 1)] * 64 + 63;
    }
    lens.put(l);
    starts.put(st);
    positions.put(pos);
    slots.put(sl);
    std::vector<float> f(32);
    for (int i = 0; i < 32; ++i) f[static_cast<size_t>(i)] = std::pow(10000.0f, -static_cast<float>(i) / 32.0f);
    inv_freq.put(f);

    kp.k_raw = k_raw.ptr;
    kp.gamma = gamma.ptr;
    kp.beta = beta.ptr;
    kp.inv_freq = inv_freq.as<float>();
    kp.hadamard_scale = 1.0f / std::sqrt(static_cast<float>(kIdxDim));
    kp.cache = index_cache.as<uint8_t>();
    kp.head_dim = kIdxDim;
    kp.rope_dim = 64;
    // Fill the whole index cache through the key path: kCtx tokens at a time, per sequence.
    {
      Buf all_pos(static_cast<size_t>(kCtx) * 4), all_slots(static_cast<size_t>(kCtx) * 4);
      std::vector<int> pp(kCtx), ss(kCtx);
      for (int s = 0; s < b; ++s) {
        for (int j = 0; j < kCtx; ++j) {
          pp[static_cast<size_t>(j)] = j;
          ss[static_cast<size_t>(j)] = table[static_cast<size_t>(s * pages_per_seq + j / 64)] * 64 + j % 64;
        }
        all_pos.put(pp);
        all_slots.put(ss);
        k::DsaIndexKeyParams fill = kp;
        fill.positions = all_pos.as<int>();
        fill.slots = all_slots.as<int>();
        fill.tokens = kCtx;
        CK(k::launch_dsa_index_keys(fill, nullptr));
        CK(cudaDeviceSynchronize());
      }
    }
    kp.positions = positions.as<int>();
    kp.slots = slots.as<int>();
    kp.tokens = b;

    qp.q = index_q.ptr;
    qp.w_raw = w_raw.ptr;
    qp.positions = positions.as<int>();
    qp.inv_freq = inv_freq.as<float>();
    qp.hadamard_scale = kp.hadamard_scale;
    qp.weight_scale = 1.0f / std::sqrt(static_cast<float>(kIdxHeads)) * (1.0f / std::sqrt(static_cast<float>(kIdxDim)));
    qp.q_fp8 = q8.as<uint8_t>();
    qp.w_eff = w_eff.as<float>();
    qp.rows = b;
    qp.heads = kIdxHeads;
    qp.head_dim = kIdxDim;
    qp.rope_dim = 64;

    lp.q_fp8 = q8.as<uint8_t>();
    lp.w_eff = w_eff.as<float>();
    lp.cache = index_cache.as<uint8_t>();
    lp.query_start = starts.as<int>();
    lp.context_lens = lens.as<int>();
    lp.block_tables = tables.as<int>();
    lp.logits = logits.as<float>();
    lp.logits_stride = kCtx;
    lp.seqs = b;
    lp.rows = b;
    lp.max_pages = pages_per_seq;
    lp.max_context_len = kCtx;
    lp.heads = kIdxHeads;
    lp.head_dim = kIdxDim;
    lp.skip_len = kTopk;
    lp.num_sms = num_sms;

    tp.logits = logits.as<float>();
    tp.query_start = starts.as<int>();
    tp.context_lens = lens.as<int>();
    tp.indices = indices.as<int>();
    tp.logits_stride = kCtx;
    tp.seqs = b;
    tp.rows = b;
    tp.k = kTopk;
    tp.max_context_len = kCtx;
    tp.num_sms = num_sms;
    tp.workspace = topk_ws.bytes > 0 ? topk_ws.ptr : nullptr;

    sp.q = q.ptr;
    sp.k_cache = kc.ptr;
    sp.v_cache = vc.ptr;
    sp.indices = indices.as<int>();
    sp.query_start = starts.as<int>();
    sp.block_tables = tables.as<int>();
    sp.out = out.ptr;
    sp.workspace = workspace.ptr;
    sp.scale = 1.0f / std::sqrt(static_cast<float>(kD));
    sp.seqs = b;
    sp.rows = b;
    sp.max_pages = pages_per_seq;
    sp.topk = kTopk;
    sp.q_heads = kHq;
    sp.kv_heads = kHkv;
    sp.head_dim = kD;
    sp.num_splits = splits;

    dp.attn.q = q.ptr;
    dp.attn.k_cache = kc.ptr;
    dp.attn.v_cache = vc.ptr;
    dp.attn.query_start = starts.as<int>();
    dp.attn.context_lens = lens.as<int>();
    dp.attn.block_tables = tables.as<int>();
    dp.attn.out = dense_out.ptr;
    dp.attn.num_seqs = b;
    dp.attn.num_q_heads = kHq;
    dp.attn.num_kv_heads = kHkv;
    dp.attn.head_dim = kD;
    dp.attn.max_pages_per_seq = pages_per_seq;
    dp.attn.max_query_len = 1;
    dp.attn.max_context_len = kCtx;
    dp.attn.scale = sp.scale;
    dp.num_splits = dense_splits;
    dp.workspace = dense_ws.ptr;
  }

  void step(cudaStream_t stream) {
    CK(k::launch_dsa_index_query(qp, stream));
    CK(k::launch_dsa_index_keys(kp, stream));
    CK(k::launch_dsa_index_logits(lp, stream));
    CK(k::launch_dsa_topk(tp, stream));
    CK(k::launch_dsa_sparse_attention(sp, stream));
  }
};

// Exact fp32 scores: one thread per key, keys [n, 128] fp32 contiguous, q [64, 128], w [64].
__global__ void exact_scores(const float* keys, const float* q, const float* w, int n, float* out) {
  __shared__ float qs[kIdxHeads * kIdxDim];
  __shared__ float ws[kIdxHeads];
  for (int i = threadIdx.x; i < kIdxHeads * kIdxDim; i += blockDim.x) qs[i] = q[i];
  for (int i = threadIdx.x; i < kIdxHeads; i += blockDim.x) ws[i] = w[i];
  __syncthreads();
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float kr[kIdxDim];
  for (int e = 0; e < kIdxDim; ++e) kr[e] = keys[static_cast<int64_t>(j) * kIdxDim + e];
  float total = 0.0f;
  for (int h = 0; h < kIdxHeads; ++h) {
    float dot = 0.0f;
    for (int e = 0; e < kIdxDim; ++e) dot += qs[h * kIdxDim + e] * kr[e];
    total += ws[h] * fmaxf(dot, 0.0f);
  }
  out[j] = total;
}

struct Recall {
  double mean = 0, worst = 1;
  int planted = 0, planted_found = 0;
};

// Rows 0..3 random, 4..7 structured. Keys and queries are drawn post-LayerNorm/RoPE (unit-variance
// Gaussians); both selections see the same numbers.
void measure_recall(int num_sms, Recall* random_r, Recall* structured_r, std::string* rows_json) {
  const int rows = 8, n = kCtx;
  std::mt19937 rng(123);
  std::normal_distribution<float> g01;
  std::vector<uint8_t> cache(static_cast<size_t>(rows) * (n / 64) * 64 * (kIdxDim + 4));
  std::vector<int> table(static_cast<size_t>(rows) * (n / 64));
  std::iota(table.begin(), table.end(), 0);
  std::vector<uint8_t> q8(static_cast<size_t>(rows) * kIdxHeads * kIdxDim);
  std::vector<float> w_eff(static_cast<size_t>(rows) * kIdxHeads);
  std::vector<float> exact_all(static_cast<size_t>(rows) * n);
  std::vector<std::vector<int>> planted(rows);
  Buf keys_dev(static_cast<size_t>(n) * kIdxDim * 4), q_dev(kIdxHeads * kIdxDim * 4), w_dev(kIdxHeads * 4),
      scores_dev(static_cast<size_t>(n) * 4);
  const float constant =
      1.0f / std::sqrt(static_cast<float>(kIdxHeads)) * (1.0f / std::sqrt(static_cast<float>(kIdxDim)));
  for (int r = 0; r < rows; ++r) {
    std::vector<float> q(kIdxHeads * kIdxDim), w(kIdxHeads), keys(static_cast<size_t>(n) * kIdxDim);
    for (float& x : q) x = g01(rng);
    for (float& x : w) x = g01(rng);
    for (float& x : keys) x = g01(rng);
    if (r >= 4) {  // plant 16 keys close to the direction the positively weighted heads share
      std::vector<float> dir(kIdxDim, 0.0f);
      for (int h = 0; h < kIdxHeads; ++h) {
        if (w[static_cast<size_t>(h)] <= 0) continue;
        for (int e = 0; e < kIdxDim; ++e) {
          dir[static_cast<size_t>(e)] += w[static_cast<size_t>(h)] * q[static_cast<size_t>(h * kIdxDim + e)];
        }
      }
      float norm = 0;
      for (float x : dir) norm += x * x;
      norm = std::sqrt(norm);
      for (int i = 0; i < 16; ++i) {
        int j = static_cast<int>(rng() % n);
        planted[static_cast<size_t>(r)].push_back(j);
        for (int e = 0; e < kIdxDim; ++e) {
          keys[static_cast<size_t>(j) * kIdxDim + e] = 0.5f * keys[static_cast<size_t>(j) * kIdxDim + e] +
                                                        dir[static_cast<size_t>(e)] / norm * std::sqrt(128.0f);
        }
      }
    }
    // Exact fp32 scores on the GPU.
    keys_dev.put(keys);
    std::vector<float> w_exact(kIdxHeads);
    for (int h = 0; h < kIdxHeads; ++h) w_exact[static_cast<size_t>(h)] = w[static_cast<size_t>(h)] * constant;
    q_dev.put(q);
    w_dev.put(w_exact);
    exact_scores<<<(n + 255) / 256, 256>>>(keys_dev.as<float>(), q_dev.as<float>(), w_dev.as<float>(), n,
                                           scores_dev.as<float>());
    CK(cudaGetLastError());
    CK(cudaMemcpy(exact_all.data() + static_cast<size_t>(r) * n, scores_dev.ptr, static_cast<size_t>(n) * 4,
                  cudaMemcpyDeviceToHost));
    // FP8 forms through the CPU emulation (bit-exact with kernels/dsa's quantization).
    for (int j = 0; j < n; ++j) {
      int slot = table[static_cast<size_t>(r * (n / 64) + j / 64)] * 64 + j % 64;
      uint8_t* page = cache.data() + static_cast<size_t>(slot / 64) * 64 * (kIdxDim + 4);
      float s = longbow::cpu::dsa_quantize_fp8(keys.data() + static_cast<size_t>(j) * kIdxDim, kIdxDim,
                                               page + (slot % 64) * kIdxDim);
      std::memcpy(page + 64 * kIdxDim + (slot % 64) * 4, &s, 4);
    }
    std::vector<float> wraw_f(w);
    longbow::cpu::dsa_prepare_query(q.data(), wraw_f.data(), 1, kIdxHeads, kIdxDim,
                                    q8.data() + static_cast<size_t>(r) * kIdxHeads * kIdxDim,
                                    w_eff.data() + static_cast<size_t>(r) * kIdxHeads);
  }
  Buf cache_dev(cache.size()), q8_dev(q8.size()), w_eff_dev(w_eff.size() * 4), tables_dev(table.size() * 4),
      lens_dev(rows * 4), starts_dev((rows + 1) * 4), logits_dev(static_cast<size_t>(rows) * n * 4),
      idx_dev(static_cast<size_t>(rows) * kTopk * 4);
  cache_dev.put(cache);
  q8_dev.put(q8);
  w_eff_dev.put(w_eff);
  tables_dev.put(table);
  std::vector<int> lens(rows, n), starts(rows + 1);
  std::iota(starts.begin(), starts.end(), 0);
  lens_dev.put(lens);
  starts_dev.put(starts);
  k::DsaIndexLogitsParams lp;
  lp.q_fp8 = q8_dev.as<uint8_t>();
  lp.w_eff = w_eff_dev.as<float>();
  lp.cache = cache_dev.as<uint8_t>();
  lp.query_start = starts_dev.as<int>();
  lp.context_lens = lens_dev.as<int>();
  lp.block_tables = tables_dev.as<int>();
  lp.logits = logits_dev.as<float>();
  lp.logits_stride = n;
  lp.seqs = rows;
  lp.rows = rows;
  lp.max_pages = n / 64;
  lp.max_context_len = n;
  lp.heads = kIdxHeads;
  lp.head_dim = kIdxDim;
  lp.skip_len = kTopk;
  lp.num_sms = num_sms;
  CK(k::launch_dsa_index_logits(lp, nullptr));
  k::DsaTopkParams tp;
  tp.logits = logits_dev.as<float>();
  tp.query_start = starts_dev.as<int>();
  tp.context_lens = lens_dev.as<int>();
  tp.indices = idx_dev.as<int>();
  tp.logits_stride = n;
  tp.seqs = rows;
  tp.rows = rows;
  tp.k = kTopk;
  CK(k::launch_dsa_topk(tp, nullptr));
  std::vector<int> fp8_idx(static_cast<size_t>(rows) * kTopk);
  CK(cudaMemcpy(fp8_idx.data(), idx_dev.ptr, fp8_idx.size() * 4, cudaMemcpyDeviceToHost));
  random_r->mean = structured_r->mean = 0;
  for (int r = 0; r < rows; ++r) {
    std::vector<int> exact(kTopk);
    longbow::cpu::dsa_topk(exact_all.data() + static_cast<size_t>(r) * n, n, kTopk, exact.data());
    std::vector<int> got(fp8_idx.begin() + r * kTopk, fp8_idx.begin() + (r + 1) * kTopk);
    std::vector<int> both;
    std::set_intersection(exact.begin(), exact.end(), got.begin(), got.end(), std::back_inserter(both));
    double recall = static_cast<double>(both.size()) / kTopk;
    Recall& acc = r < 4 ? *random_r : *structured_r;
    acc.mean += recall / 4;
    acc.worst = std::min(acc.worst, recall);
    for (int j : planted[static_cast<size_t>(r)]) {
      ++acc.planted;
      acc.planted_found += std::binary_search(got.begin(), got.end(), j) ? 1 : 0;
    }
    char line[160];
    std::snprintf(line, sizeof line, "%s{\"row\": %d, \"kind\": \"%s\", \"recall\": %.4f}", r ? ", " : "", r,
                  r < 4 ? "random" : "structured", recall);
    *rows_json += line;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* out_path = argc > 1 ? argv[1] : "dsa_bench.json";
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  const int sms = prop.multiProcessorCount;
  std::string json = std::string("{\"device\": \"") + prop.name + "\", \"ctx\": 131072, \"cases\": [";

  double copy_gbs = 0;
  {
    Buf a(1ull << 30), b(1ull << 30);
    double ms = time_ms([&] { CK(cudaMemcpyAsync(b.ptr, a.ptr, a.bytes, cudaMemcpyDeviceToDevice)); }, 7, 3);
    copy_gbs = 2.0 * static_cast<double>(a.bytes) / (ms * 1e-3) / 1e9;
  }
  std::printf("copy: %.0f GB/s (read + write) on %s\n", copy_gbs, prop.name);
  std::printf("dsa   B  query_us  keys_us  logits_us (GB/s, %%copy)  topk_us  sparse_us (GB/s)  total_us  graph_us"
              "  dense_us | logits_portable_us  topk_one_block_us\n");
  bool first = true;
  // DSA_BENCH_BATCH=N measures that batch alone (and skips recall).
  const char* only = std::getenv("DSA_BENCH_BATCH");
  std::vector<int> batches = {1, 8, 32};
  if (only != nullptr) batches = {std::atoi(only)};
  for (int b : batches) {
    DecodeSetup s(b, sms);
    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const double tq = time_ms([&] { CK(k::launch_dsa_index_query(s.qp, nullptr)); }) * 1e3;
    const double tk = time_ms([&] { CK(k::launch_dsa_index_keys(s.kp, nullptr)); }) * 1e3;
    const double tl = time_ms([&] { CK(k::launch_dsa_index_logits(s.lp, nullptr)); }) * 1e3;
    const double tt = time_ms([&] { CK(k::launch_dsa_topk(s.tp, nullptr)); }) * 1e3;
    // The previous schedules, same inputs: the mma.sync logits kernel and one top-k block per row.
    setenv("LONGBOW_DSA_LOGITS", "portable", 1);
    const double tl_portable = time_ms([&] { CK(k::launch_dsa_index_logits(s.lp, nullptr)); }) * 1e3;
    unsetenv("LONGBOW_DSA_LOGITS");
    k::DsaTopkParams one_block = s.tp;
    one_block.workspace = nullptr;
    const double tt_one = time_ms([&] { CK(k::launch_dsa_topk(one_block, nullptr)); }) * 1e3;
    const double ta = time_ms([&] { CK(k::launch_dsa_sparse_attention(s.sp, nullptr)); }) * 1e3;
    const double total = time_ms([&] { s.step(nullptr); }) * 1e3;
    // The same step captured in a CUDA graph (capturability and launch overhead).
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    double tg = -1.0;  // -1: the capture failed (reported)
    cudaError_t cap = cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal);
    if (cap == cudaSuccess) {
      s.step(stream);
      cap = cudaStreamEndCapture(stream, &graph);
    }
    if (cap == cudaSuccess) cap = cudaGraphInstantiate(&exec, graph, 0);
    if (cap == cudaSuccess) {
      tg = time_ms([&] { CK(cudaGraphLaunch(exec, nullptr)); }) * 1e3;
    } else {
      std::printf("graph capture failed: %s\n", cudaGetErrorString(cap));
      cudaGetLastError();
    }
    const double td = time_ms([&] { CK(k::launch_paged_decode(s.dp, nullptr)); }) * 1e3;
    // Sparse attention at other split counts (the workspace is sized for the largest).
    std::printf("sparse splits B=%d:", b);
    for (int sp_splits : {1, 2, 4, 8, 16, 32}) {
      if (k::dsa_sparse_workspace_bytes(b, kHq, kD, sp_splits) > s.workspace.bytes) continue;
      if ((kTopk + sp_splits - 1) / sp_splits > 2048) continue;
      k::DsaSparseAttentionParams other = s.sp;
      other.num_splits = sp_splits;
      std::printf(" %d:%.1fus", sp_splits, time_ms([&] { CK(k::launch_dsa_sparse_attention(other, nullptr)); }) * 1e3);
    }
    std::printf(" (chosen %d)\n", s.splits);
    const double logit_gbs = static_cast<double>(b) * kCtx * (kIdxDim + 4) / (tl * 1e-6) / 1e9;
    // Sparse attention's floor: every selected K and V row once (2048 × Hkv × d × 2 B × 2 per row).
    const double sparse_gbs = static_cast<double>(b) * kTopk * kHkv * kD * 2 * 2 / (ta * 1e-6) / 1e9;
    std::printf("dsa %3d  %8.1f %8.1f  %9.1f (%5.0f, %3.0f%%)  %7.1f  %9.1f (%5.0f)  %8.1f  %8.1f  %8.1f | %8.1f  %8.1f\n",
                b, tq, tk, tl, logit_gbs, 100.0 * logit_gbs / copy_gbs, tt, ta, sparse_gbs, total, tg, td,
                tl_portable, tt_one);
    char buf[768];
    std::snprintf(buf, sizeof buf,
                  "%s{\"batch\": %d, \"index_query_us\": %.2f, \"index_keys_us\": %.2f, \"index_logits_us\": %.2f, "
                  "\"index_logits_gbs\": %.1f, \"topk_us\": %.2f, \"sparse_attention_us\": %.2f, "
                  "\"sparse_splits\": %d, \"sparse_gbs\": %.1f, "
                  "\"total_us\": %.2f, \"graph_total_us\": %.2f, \"dense_decode_us\": %.2f, "
                  "\"index_logits_portable_us\": %.2f, \"topk_one_block_us\": %.2f}",
                  first ? "" : ", ", b, tq, tk, tl, logit_gbs, tt, ta, s.splits, sparse_gbs, total, tg, td,
                  tl_portable, tt_one);
    json += buf;
    first = false;
    if (exec != nullptr) cudaGraphExecDestroy(exec);
    if (graph != nullptr) cudaGraphDestroy(graph);
    cudaStreamDestroy(stream);
  }
  Recall rnd, st;
  std::string rows_json;
  if (only == nullptr) measure_recall(sms, &rnd, &st, &rows_json);
  std::printf("recall (FP8 vs exact fp32 top-2048 of 131072): random mean %.4f worst %.4f; structured mean %.4f "
              "worst %.4f, planted keys kept %d/%d\n",
              rnd.mean, rnd.worst, st.mean, st.worst, st.planted_found, st.planted);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "], \"copy_gbs\": %.1f, \"recall\": {\"random_mean\": %.4f, \"random_worst\": %.4f, "
                "\"structured_mean\": %.4f, \"structured_worst\": %.4f, \"planted_kept\": %d, \"planted\": %d, "
                "\"rows\": [",
                copy_gbs, rnd.mean, rnd.worst, st.mean, st.worst, st.planted_found, st.planted);
  json += buf + rows_json + "]}}\n";
  FILE* f = std::fopen(out_path, "w");
  if (f == nullptr) return 1;
  std::fputs(json.c_str(), f);
  std::fclose(f);
  return 0;
}
