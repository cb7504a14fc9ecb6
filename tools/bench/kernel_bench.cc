// Kernel benchmarks on the GPU machine: device copy bandwidth, cuBLAS bf16 GEMM rate, flash prefill
// TFLOP/s and paged decode µs per layer. Writes one JSON document (argv[1], default
// kernel_bench.json) and prints a table.
//
//   kernel_bench OUT.json [--quick | --prefill | --prefill-only | --attention | --skinny] [--head-dim 256]
//   --skinny: decode-sized GEMMs (M = 1, 2) of the Llama-3.1-8B projections, cuBLAS against the
//     skinny GEMM (kernels/gemm), as GB/s of the bytes they must move and % of the copy rate.
//   --prefill: the prefill table alone (every N, every variant), for short GPU runs.
//   --attention: the prefill and decode tables (no copy/GEMM ceilings).
//   --head-dim 256: the attention tables at head_dim 256 with Hq=16, Hkv=8 (Gemma-2-9B / Gemma-3-12B
//     heads; the same prefill FLOPs as the default shape, twice its KV bytes per token).
//
// Shapes follow docs/benchmarks.md: causal prefill Hq=32, Hkv=8, d=128, B=1, N = 4K..128K
// (FLOPs = 2·Hq·N²·d); decode q_len 1, same heads, context 4K/32K/128K, B = 1/8/32. K/V live in
// the paged layout with each sequence's pages scattered over the pool (a shuffled page table).
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/common/paged_kv.h"
#include "kernels/elementwise/params.h"
#include "kernels/flash_prefill/flash_prefill_variants.h"
#include "kernels/flash_prefill/params.h"
#include "kernels/gemm/params.h"
#include "kernels/paged_decode/params.h"

namespace {

using longbow::kernels::kKvPageSize;

bool check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return true;
  std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(err));
  return false;
}

#define CHECK_OR_EXIT(call)                 \
  do {                                      \
    if (!check((call), #call)) std::exit(1); \
  } while (0)

struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) { CHECK_OR_EXIT(cudaMalloc(&ptr, n)); }
  ~DeviceBuffer() { cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
};

void fill_random(DeviceBuffer& buf, uint64_t seed, float scale) {
  longbow::kernels::FillRandomParams p;
  p.out = buf.ptr;
  p.count = static_cast<int64_t>(buf.bytes / 2);
  p.seed = seed;
  p.low = -scale;
  p.high = scale;
  CHECK_OR_EXIT(longbow::kernels::launch_fill_random_bf16(p, nullptr));
}

// Median of `reps` timings of `fn` (each timing covers `inner` back-to-back calls), in ms per call.
template <typename Fn>
double time_ms(Fn&& fn, int reps, int inner) {
  cudaEvent_t start, stop;
  CHECK_OR_EXIT(cudaEventCreate(&start));
  CHECK_OR_EXIT(cudaEventCreate(&stop));
  fn();  // warm-up
  CHECK_OR_EXIT(cudaDeviceSynchronize());
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    CHECK_OR_EXIT(cudaEventRecord(start));
    for (int i = 0; i < inner; ++i) fn();
    CHECK_OR_EXIT(cudaEventRecord(stop));
    CHECK_OR_EXIT(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_OR_EXIT(cudaEventElapsedTime(&ms, start, stop));
    samples.push_back(static_cast<double>(ms) / inner);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// A paged KV pool for `num_seqs` sequences of `ctx` tokens, pages shuffled across the pool.
struct PagedKv {
  int num_seqs, ctx, pages_per_seq, num_pages;
  DeviceBuffer k, v, block_tables, context_lens, query_start;
  PagedKv(int seqs, int context, int hkv, int d, int q_per_seq)
      : num_seqs(seqs),
        ctx(context),
        pages_per_seq((context + kKvPageSize - 1) / kKvPageSize),
        num_pages(seqs * pages_per_seq),
        k(static_cast<size_t>(num_pages) * kKvPageSize * hkv * d * 2),
        v(k.bytes),
        block_tables(static_cast<size_t>(num_pages) * 4),
        context_lens(static_cast<size_t>(seqs) * 4),
        query_start(static_cast<size_t>(seqs + 1) * 4) {
    fill_random(k, 11, 1.0f);
    fill_random(v, 12, 1.0f);
    std::vector<int> table(static_cast<size_t>(num_pages));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(7));
    std::vector<int> lens(static_cast<size_t>(seqs), context);
    std::vector<int> starts(static_cast<size_t>(seqs + 1));
    for (int s = 0; s <= seqs; ++s) starts[static_cast<size_t>(s)] = s * q_per_seq;
    CHECK_OR_EXIT(cudaMemcpy(block_tables.ptr, table.data(), block_tables.bytes, cudaMemcpyHostToDevice));
    CHECK_OR_EXIT(cudaMemcpy(context_lens.ptr, lens.data(), context_lens.bytes, cudaMemcpyHostToDevice));
    CHECK_OR_EXIT(cudaMemcpy(query_start.ptr, starts.data(), query_start.bytes, cudaMemcpyHostToDevice));
  }
};

double bf16_bits_to_double(uint16_t bits) {
  const uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof(value));
  return value;
}

std::string json_escape_free(const std::string& s) { return "\"" + s + "\""; }

}  // namespace

// Writes `json` to `path` and prints the table under `title`; the process's exit status.
int write_results(const std::string& path, const std::string& json, const std::string& title,
                  const std::vector<std::string>& lines) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return 1;
  }
  std::fputs(json.c_str(), f);
  std::fclose(f);
  std::printf("== %s ==\n", title.c_str());
  for (const auto& line : lines) std::printf("%s\n", line.c_str());
  return 0;
}

// Decode-sized GEMMs: out[m][n] = x[m][k] · w[n][k]ᵀ, bf16, on cuBLAS and on the skinny GEMM. The
// weights rotate over copies filling >= 512 MB, so no repetition finds its w in the 50 MB L2.
int skinny_gemm_bench(const std::string& out_path) {
  cudaDeviceProp prop{};
  CHECK_OR_EXIT(cudaGetDeviceProperties(&prop, 0));
  const size_t copy_bytes = size_t{2} << 30;
  double copy_tbps = 0;
  {
    DeviceBuffer a(copy_bytes), b(copy_bytes);
    CHECK_OR_EXIT(cudaMemset(a.ptr, 1, copy_bytes));
    const double ms = time_ms([&] { check(cudaMemcpyAsync(b.ptr, a.ptr, copy_bytes, cudaMemcpyDeviceToDevice), "copy"); },
                              5, 3);
    copy_tbps = 2.0 * static_cast<double>(copy_bytes) / (ms * 1e-3) / 1e12;
  }
  cublasHandle_t handle;
  if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) return 1;
  struct Shape {
    const char* name;
    int n, k;
  };
  const Shape shapes[] = {{"q_proj/o_proj", 4096, 4096}, {"k_proj/v_proj", 1024, 4096}, {"gate/up", 14336, 4096},
                          {"down", 4096, 14336},          {"lm_head", 128256, 4096}};
  std::string json = "{\n  \"device\": \"" + std::string(prop.name) + "\",\n  \"copy_tbps\": " +
                     std::to_string(copy_tbps) + ",\n  \"skinny_gemm\": [\n";
  std::vector<std::string> lines;
  char line[220];
  std::snprintf(line, sizeof(line), "copy bandwidth (read+write) %.2f TB/s", copy_tbps);
  lines.push_back(line);
  bool first = true;
  for (const Shape& s : shapes) {
    const size_t w_bytes = size_t{2} * s.n * s.k;
    const int copies = static_cast<int>(std::max<size_t>(1, (size_t{512} << 20) / w_bytes + 1));
    std::vector<std::unique_ptr<DeviceBuffer>> weights;
    for (int c = 0; c < copies; ++c) {
      weights.push_back(std::make_unique<DeviceBuffer>(w_bytes));
      fill_random(*weights.back(), 100 + static_cast<uint64_t>(c), 0.05f);
    }
    for (int m = 1; m <= longbow::kernels::kSkinnyGemmMaxRows; ++m) {
      DeviceBuffer x(size_t{2} * m * s.k), out(size_t{2} * m * s.n);
      fill_random(x, 7, 1.0f);
      int next = 0;
      const float alpha = 1.0f, beta = 0.0f;
      auto cublas = [&] {
        const void* w = weights[static_cast<size_t>(next++ % copies)]->ptr;
        cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, s.n, m, s.k, &alpha, w, CUDA_R_16BF, s.k, x.ptr, CUDA_R_16BF,
                     s.k, &beta, out.ptr, CUDA_R_16BF, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      };
      auto skinny = [&] {
        longbow::kernels::SkinnyGemmParams p;
        p.x = x.ptr;
        p.w = weights[static_cast<size_t>(next++ % copies)]->ptr;
        p.out = out.ptr;
        p.m = m;
        p.n = s.n;
        p.k = s.k;
        check(longbow::kernels::launch_skinny_gemm(p, nullptr), "skinny gemm");
      };
      const double cublas_ms = time_ms(cublas, 9, 20);
      const double skinny_ms = time_ms(skinny, 9, 20);
      const double bytes = static_cast<double>(w_bytes) + 2.0 * m * (s.k + s.n);
      const double cublas_gbps = bytes / (cublas_ms * 1e-3) / 1e9, skinny_gbps = bytes / (skinny_ms * 1e-3) / 1e9;
      json += std::string(first ? "" : ",\n") + "    {\"name\": \"" + s.name + "\", \"m\": " + std::to_string(m) +
              ", \"n\": " + std::to_string(s.n) + ", \"k\": " + std::to_string(s.k) +
              ", \"cublas_us\": " + std::to_string(cublas_ms * 1e3) + ", \"skinny_us\": " +
              std::to_string(skinny_ms * 1e3) + ", \"cublas_gbps\": " + std::to_string(cublas_gbps) +
              ", \"skinny_gbps\": " + std::to_string(skinny_gbps) + "}";
      first = false;
      std::snprintf(line, sizeof(line),
                    "%-14s M=%d N=%-6d K=%-5d cuBLAS %8.1f us %6.0f GB/s (%3.0f%%)  skinny %8.1f us %6.0f GB/s (%3.0f%%)  %.2fx",
                    s.name, m, s.n, s.k, cublas_ms * 1e3, cublas_gbps, 100.0 * cublas_gbps / (copy_tbps * 1e3),
                    skinny_ms * 1e3, skinny_gbps, 100.0 * skinny_gbps / (copy_tbps * 1e3), cublas_ms / skinny_ms);
      lines.push_back(line);
    }
  }
  cublasDestroy(handle);
  json += "\n  ]\n}\n";
  return write_results(out_path, json, std::string("skinny GEMM on ") + prop.name, lines);
}

int main(int argc, char** argv) {
  const std::string out_path = argc > 1 ? argv[1] : "kernel_bench.json";
  if (argc > 2 && std::strcmp(argv[2], "--skinny") == 0) return skinny_gemm_bench(out_path);
  const bool quick = argc > 2 && std::strcmp(argv[2], "--quick") == 0;
  // --prefill-only: one N=16384 prefill per variant and nothing else (for profiling under ncu).
  const bool prefill_only = argc > 2 && std::strcmp(argv[2], "--prefill-only") == 0;
  const bool prefill_table = argc > 2 && std::strcmp(argv[2], "--prefill") == 0;
  const bool attention_only = argc > 2 && std::strcmp(argv[2], "--attention") == 0;
  const bool skip_others = prefill_only || prefill_table;
  int d = 128;
  for (int i = 2; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--head-dim") == 0) d = std::atoi(argv[i + 1]);
  }
  if (d != 128 && d != 256) {
    std::fprintf(stderr, "--head-dim: 128 or 256\n");
    return 1;
  }
  const int hq = d == 128 ? 32 : 16, hkv = 8;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  cudaDeviceProp prop{};
  CHECK_OR_EXIT(cudaGetDeviceProperties(&prop, 0));
  const int num_sms = prop.multiProcessorCount;
  std::string json = "{\n  \"device\": " + json_escape_free(prop.name) + ",\n";
  std::vector<std::string> table_lines;

  // ---- device copy bandwidth (bytes read + written) ----
  double copy_tbps = 0;
  if (!skip_others) {  // --attention too: decode reports its fraction of the copy rate
    const size_t bytes = size_t{2} << 30;
    DeviceBuffer a(bytes), b(bytes);
    CHECK_OR_EXIT(cudaMemset(a.ptr, 1, bytes));
    const double ms = time_ms([&] { check(cudaMemcpyAsync(b.ptr, a.ptr, bytes, cudaMemcpyDeviceToDevice), "copy"); },
                              5, 3);
    copy_tbps = 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e12;
    json += "  \"copy_tbps\": " + std::to_string(copy_tbps) + ",\n";
    char line[160];
    std::snprintf(line, sizeof(line), "copy bandwidth (read+write)         %8.2f TB/s", copy_tbps);
    table_lines.push_back(line);
  }

  // ---- cuBLAS bf16 GEMM (fp32 accumulation), the rates the runtime's projections see ----
  json += "  \"head_dim\": " + std::to_string(d) + ",\n";
  json += "  \"gemm\": [\n";
  if (!skip_others && !attention_only) {
    cublasHandle_t handle;
    if (cublasCreate(&handle) != CUBLAS_STATUS_SUCCESS) return 1;
    struct Shape { int m, n, k; };
    const Shape shapes[] = {{8192, 8192, 8192}, {16384, 4096, 4096}, {16384, 14336, 4096}, {16384, 4096, 14336},
                            {16384, 128256, 4096}, {32, 4096, 4096}};
    bool first = true;
    for (const Shape& s : shapes) {
      if (quick && s.m > 8192) continue;
      DeviceBuffer x(size_t{2} * s.m * s.k), w(size_t{2} * s.n * s.k), out(size_t{2} * s.m * s.n);
      fill_random(x, 1, 1.0f);
      fill_random(w, 2, 0.05f);
      const float alpha = 1.0f, beta = 0.0f;
      auto run = [&] {
        cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, s.n, s.m, s.k, &alpha, w.ptr, CUDA_R_16BF, s.k, x.ptr,
                     CUDA_R_16BF, s.k, &beta, out.ptr, CUDA_R_16BF, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      };
      const double ms = time_ms(run, 5, 3);
      const double tflops = 2.0 * s.m * s.n * static_cast<double>(s.k) / (ms * 1e-3) / 1e12;
      json += std::string(first ? "" : ",\n") + "    {\"m\": " + std::to_string(s.m) + ", \"n\": " + std::to_string(s.n) +
              ", \"k\": " + std::to_string(s.k) + ", \"ms\": " + std::to_string(ms) +
              ", \"tflops\": " + std::to_string(tflops) + "}";
      first = false;
      char line[160];
      std::snprintf(line, sizeof(line), "gemm bf16 %6dx%6dx%6d           %8.1f TFLOP/s  (%.3f ms)", s.m, s.n, s.k,
                    tflops, ms);
      table_lines.push_back(line);
    }
    cublasDestroy(handle);
  }
  json += "\n  ],\n";


  // ---- flash prefill ----
  json += "  \"prefill\": [\n";
  {
    bool first = true;
    for (int n : {4096, 16384, 65536, 131072}) {
      if ((quick && n > 16384) || (prefill_only && n != 16384)) continue;
      PagedKv kv(1, n, hkv, d, n);
      DeviceBuffer q(size_t{2} * n * hq * d), out(size_t{2} * n * hq * d);
      fill_random(q, 3, 1.0f);
      longbow::kernels::FlashPrefillParams p;
      p.q = q.ptr;
      p.k_cache = kv.k.ptr;
      p.v_cache = kv.v.ptr;
      p.query_start = kv.query_start.as<int>();
      p.context_lens = kv.context_lens.as<int>();
      p.block_tables = kv.block_tables.as<int>();
      p.out = out.ptr;
      p.num_seqs = 1;
      p.num_q_heads = hq;
      p.num_kv_heads = hkv;
      p.head_dim = d;
      p.max_pages_per_seq = kv.pages_per_seq;
      p.max_query_len = n;
      p.max_context_len = n;
      p.scale = scale;
      struct Variant {
        const char* name;
        cudaError_t (*launch)(const longbow::kernels::FlashPrefillParams&, cudaStream_t);
      };
      const Variant variants[] = {{"wgmma-tma", longbow::kernels::launch_flash_prefill_sm90},
                                  {"mma.sync", longbow::kernels::launch_flash_prefill_sm80}};
      // Up to 16K every variant's output is compared with the mma.sync kernel's (relative L2 over
      // the whole output, poisoned with NaN bytes before each first launch): a large-N cross-check
      // beside the CPU-referenced tests, which stop at 4097 tokens.
      const bool cross_check = n <= 16384 && !prefill_only;
      std::vector<uint16_t> reference, produced;
      auto fetch = [&](std::vector<uint16_t>& host) {
        host.resize(out.bytes / 2);
        CHECK_OR_EXIT(cudaMemcpy(host.data(), out.ptr, out.bytes, cudaMemcpyDeviceToHost));
      };
      if (cross_check) {
        CHECK_OR_EXIT(cudaMemset(out.ptr, 0xFF, out.bytes));
        CHECK_OR_EXIT(longbow::kernels::launch_flash_prefill_sm80(p, nullptr));
        CHECK_OR_EXIT(cudaDeviceSynchronize());
        fetch(reference);
      }
      for (const Variant& variant : variants) {
        if (cross_check) CHECK_OR_EXIT(cudaMemset(out.ptr, 0xFF, out.bytes));
        if (!check(variant.launch(p, nullptr), variant.name) || !check(cudaDeviceSynchronize(), variant.name)) {
          continue;
        }
        if (prefill_only) continue;
        double rel_l2 = -1.0;
        if (cross_check) {
          fetch(produced);
          double diff = 0.0, norm = 0.0;
          for (size_t i = 0; i < produced.size(); ++i) {
            const double a = bf16_bits_to_double(produced[i]);
            const double b = bf16_bits_to_double(reference[i]);
            diff += (a - b) * (a - b);
            norm += b * b;
          }
          rel_l2 = std::sqrt(diff / norm);  // NaN (never below a budget) if anything stayed poisoned
        }
        const int inner = n <= 16384 ? 5 : 1;
        const double ms = time_ms([&] { check(variant.launch(p, nullptr), "prefill"); }, n <= 16384 ? 5 : 3, inner);
        const double tflops = 2.0 * hq * static_cast<double>(n) * n * d / (ms * 1e-3) / 1e12;
        json += std::string(first ? "" : ",\n") + "    {\"n\": " + std::to_string(n) + ", \"kernel\": \"" +
                variant.name + "\", \"ms\": " + std::to_string(ms) + ", \"tflops\": " + std::to_string(tflops) +
                ", \"rel_l2_vs_mma_sync\": " + std::to_string(rel_l2) + "}";
        first = false;
        char line[160];
        char check_text[48] = "";
        if (cross_check) std::snprintf(check_text, sizeof(check_text), "  rel-L2 vs mma.sync %.1e", rel_l2);
        std::snprintf(line, sizeof(line), "prefill %-9s causal N=%-6d Hq%d Hkv%d d%d %7.1f TFLOP/s  (%.3f ms)%s",
                      variant.name, n, hq, hkv, d, tflops, ms, check_text);
        table_lines.push_back(line);
      }
    }
  }
  json += "\n  ],\n";

  // ---- paged decode ----
  json += "  \"decode\": [\n";
  {
    bool first = true;
    for (int ctx : {4096, 32768, 131072}) {
      for (int batch : {1, 8, 32}) {
        if ((quick && (ctx > 32768 || batch > 8)) || skip_others) continue;
        PagedKv kv(batch, ctx, hkv, d, 1);
        DeviceBuffer q(size_t{2} * batch * hq * d), out(size_t{2} * batch * hq * d);
        fill_random(q, 4, 1.0f);
        longbow::kernels::PagedDecodeParams p;
        p.attn.q = q.ptr;
        p.attn.k_cache = kv.k.ptr;
        p.attn.v_cache = kv.v.ptr;
        p.attn.query_start = kv.query_start.as<int>();
        p.attn.context_lens = kv.context_lens.as<int>();
        p.attn.block_tables = kv.block_tables.as<int>();
        p.attn.out = out.ptr;
        p.attn.num_seqs = batch;
        p.attn.num_q_heads = hq;
        p.attn.num_kv_heads = hkv;
        p.attn.head_dim = d;
        p.attn.max_pages_per_seq = kv.pages_per_seq;
        p.attn.max_query_len = 1;
        p.attn.max_context_len = ctx;
        p.attn.scale = scale;
        p.num_splits = longbow::kernels::choose_decode_splits(batch, hkv, ctx, num_sms);
        const size_t ws_bytes = longbow::kernels::decode_workspace_bytes(batch, hq, d, p.num_splits);
        DeviceBuffer ws(std::max<size_t>(ws_bytes, 16));
        p.workspace = ws.ptr;
        CHECK_OR_EXIT(longbow::kernels::launch_paged_decode(p, nullptr));
        CHECK_OR_EXIT(cudaDeviceSynchronize());
        const double ms =
            time_ms([&] { check(longbow::kernels::launch_paged_decode(p, nullptr), "decode"); }, 7, 20);
        const double kv_bytes = 2.0 * batch * static_cast<double>(ctx) * hkv * d * 2;
        const double tbps = kv_bytes / (ms * 1e-3) / 1e12;
        json += std::string(first ? "" : ",\n") + "    {\"ctx\": " + std::to_string(ctx) +
                ", \"batch\": " + std::to_string(batch) + ", \"splits\": " + std::to_string(p.num_splits) +
                ", \"us\": " + std::to_string(ms * 1e3) + ", \"kv_tbps\": " + std::to_string(tbps) +
                ", \"fraction_of_copy\": " + std::to_string(tbps / copy_tbps) + "}";
        first = false;
        char line[200];
        std::snprintf(line, sizeof(line),
                      "decode d%-3d ctx=%-6d B=%-2d splits=%-3d  %8.1f us  %5.2f TB/s  %3.0f%% of copy", d, ctx,
                      batch, p.num_splits, ms * 1e3, tbps, 100.0 * tbps / copy_tbps);
        table_lines.push_back(line);
      }
    }
  }
  json += "\n  ]\n}\n";
  return write_results(out_path, json,
                       std::string("longbow kernels on ") + prop.name + " (" + std::to_string(num_sms) + " SMs)",
                       table_lines);
}
