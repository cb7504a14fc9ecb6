// DeepSeek-V3.2's attention core on one GPU (the DeepSeek issue's sparse-MLA numbers): one layer's
// latent attention at decode, context 131072, the real shape (128 heads, latent 512 + RoPE 64),
// B = 1, 8, 32, 64 sequences with their pages shuffled across the pool:
//   sparse  each row attends to its 2048 selected tokens (kernels/mla, indices as dsa_topk writes
//           them: ascending logical tokens), the DSA path;
//   dense   each row attends to all 131072 tokens (the same kernel without indices), the absorbed
//           dense MLA decode a non-DSA layer runs.
// TFLOP/s = B · 128 heads · keys · 2 · (576 + 512) / t (scores over 576 values, the weighted sum over
// 512). The indexer's own cost (query prep, key write, FP8 logits over the whole context, top-k) is
// the same kernels and shape (64 heads × 128, top-2048) that longbow_dsa_bench measures; run both in
// the same session and add them for the layer total. Not included: the per-head absorb/expand GEMMs
// (head_matmul, cuBLAS) and the projections.
//
//   longbow_mla_bench [OUT.json]
//
// Timing: CUDA events after warm-up, median of 9 samples of 5 back-to-back calls (bench::time_ms).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/mla/params.h"
#include "tools/bench/device_bench.cuh"

namespace {

namespace k = longbow::kernels;
namespace bench = longbow::bench;
using bench::Buf;

constexpr int kCtx = 131072, kHeads = 128, kLatent = 512, kRope = 64, kTopk = 2048;
constexpr int kWidth = kLatent + kRope;

double tflops(int batch, int keys, double ms) {
  return static_cast<double>(batch) * kHeads * keys * 2.0 * (kWidth + kLatent) / (ms * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  const char* out_path = argc > 1 ? argv[1] : "mla_bench.json";
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("mla decode on %s, context %d, %d heads, latent %d + rope %d, top-%d\n", prop.name, kCtx, kHeads, kLatent,
              kRope, kTopk);
  std::printf("mla   B  sparse_us  sparse_TFLOP/s  dense_us  dense_TFLOP/s  dense/sparse\n");
  std::string json = std::string("{\"device\": \"") + prop.name + "\", \"ctx\": 131072, \"cases\": [";
  std::mt19937 rng(7);
  for (int b : {1, 8, 32, 64}) {
    const int pages_per_seq = kCtx / k::kMlaPageSize, pages = b * pages_per_seq;
    Buf cache(static_cast<size_t>(pages) * k::kMlaPageSize * kWidth * 2);
    Buf q_latent(static_cast<size_t>(b) * kHeads * kLatent * 2), q_rope(static_cast<size_t>(b) * kHeads * kRope * 2);
    Buf out(static_cast<size_t>(b) * kHeads * kLatent * 2);
    Buf tables(static_cast<size_t>(pages) * 4), lens(static_cast<size_t>(b) * 4), starts((static_cast<size_t>(b) + 1) * 4);
    Buf indices(static_cast<size_t>(b) * kTopk * 4);
    bench::fill_bf16(cache, 1, 1.0f);
    bench::fill_bf16(q_latent, 2, 0.05f);
    bench::fill_bf16(q_rope, 3, 0.05f);
    std::vector<int> table(static_cast<size_t>(pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), rng);
    tables.put(table);
    std::vector<int> l(static_cast<size_t>(b), kCtx), st(static_cast<size_t>(b) + 1);
    std::iota(st.begin(), st.end(), 0);
    lens.put(l);
    starts.put(st);
    // Each row's selection: 2048 distinct tokens of its context, ascending (as dsa_topk writes them).
    std::vector<int> all(kCtx), sel;
    std::iota(all.begin(), all.end(), 0);
    for (int r = 0; r < b; ++r) {
      std::shuffle(all.begin(), all.end(), rng);
      std::vector<int> row(all.begin(), all.begin() + kTopk);
      std::sort(row.begin(), row.end());
      sel.insert(sel.end(), row.begin(), row.end());
    }
    indices.put(sel);

    k::LatentAttentionParams p;
    p.q_latent = q_latent.ptr;
    p.q_rope = q_rope.ptr;
    p.cache = cache.ptr;
    p.query_start = starts.as<int>();
    p.context_lens = lens.as<int>();
    p.block_tables = tables.as<int>();
    p.out = out.ptr;
    p.seqs = b;
    p.rows = b;
    p.heads = kHeads;
    p.latent_dim = kLatent;
    p.rope_dim = kRope;
    p.max_pages = pages_per_seq;
    p.num_pages = pages;
    p.scale = 0.1352f;
    p.num_sms = prop.multiProcessorCount;
    k::LatentAttentionParams sparse = p;
    sparse.indices = indices.as<int>();
    sparse.topk = kTopk;
    const double sparse_ms = bench::time_ms([&] { CK(k::launch_latent_attention(sparse, nullptr)); }, 9, 5);
    const double dense_ms = bench::time_ms([&] { CK(k::launch_latent_attention(p, nullptr)); }, 9, b >= 32 ? 1 : 5);
    std::printf("mla %3d  %9.1f  %14.1f  %8.1f  %13.1f  %12.2f\n", b, sparse_ms * 1e3, tflops(b, kTopk, sparse_ms),
                dense_ms * 1e3, tflops(b, kCtx, dense_ms), dense_ms / sparse_ms);
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s{\"batch\": %d, \"sparse_us\": %.2f, \"sparse_tflops\": %.2f, \"dense_us\": %.2f, "
                  "\"dense_tflops\": %.2f}",
                  b == 1 ? "" : ", ", b, sparse_ms * 1e3, tflops(b, kTopk, sparse_ms), dense_ms * 1e3,
                  tflops(b, kCtx, dense_ms));
    json += line;
  }
  json += "]}\n";
  if (FILE* f = std::fopen(out_path, "w")) {
    std::fputs(json.c_str(), f);
    std::fclose(f);
  }
  return 0;
}
