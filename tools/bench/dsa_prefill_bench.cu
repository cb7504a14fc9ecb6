// Where one DSA layer's sparse prefill chunk spends its time (docs/benchmarks.md, "Sparse DSA prefill").
//
//   longbow_dsa_prefill_bench [OUT.json]
//
// The 8B DSA layer (Hq 32, Hkv 8, d 128; indexer 64 heads × 128, top-2048), one sequence, the last
// 2048-row prefill chunk of a context of 4096 and of 16384 (rows at positions ctx - 2048 .. ctx - 1),
// pages shuffled over the pools, index cache filled through the index-key kernel. Timed with CUDA
// events after a warm-up, median of 15 samples of 5 launches: index-query quantization, FP8 index
// logits, top-k, sparse attention by the per-row gather kernel and by the masked flash kernel
// (selection bitmaps included; the Hopper kernel and the mma.sync one), and dense causal flash
// prefill of the same chunk (default variant: the sm90 kernel on Hopper; and the sm80 kernel). The
// two sparse outputs are compared (relative L2) on the real selection.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/dsa/params.h"
#include "kernels/elementwise/params.h"
#include "kernels/flash_prefill/flash_prefill_variants.h"
#include "kernels/flash_prefill/params.h"
#include "tools/bench/device_bench.cuh"

namespace {

namespace k = longbow::kernels;
namespace bench = longbow::bench;
using bench::Buf;
using bench::fill_bf16;

constexpr int kHq = 32, kHkv = 8, kD = 128, kIdxHeads = 64, kIdxDim = 128, kTopk = 2048, kRows = 2048;

template <typename Fn>
double time_ms(Fn&& fn, int reps = 15, int inner = 5) {
  return bench::time_ms(fn, reps, inner);
}

std::vector<float> bf16_host(const Buf& b) {
  std::vector<__nv_bfloat16> raw(b.bytes / 2);
  CK(cudaMemcpy(raw.data(), b.ptr, b.bytes, cudaMemcpyDeviceToHost));
  std::vector<float> out(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) out[i] = __bfloat162float(raw[i]);
  return out;
}

struct ChunkTimes {
  int ctx;
  double query, logits, topk, gather, masked, masked_sm80, dense, dense_sm80, rel_l2, rel_l2_sm80;
};

ChunkTimes measure_chunk(int ctx, int num_sms) {
  const int pages = ctx / 64;
  Buf kc(static_cast<size_t>(pages) * 64 * kHkv * kD * 2), vc(kc.bytes);
  Buf index_cache(static_cast<size_t>(pages) * 64 * (kIdxDim + 4));
  Buf tables(static_cast<size_t>(pages) * 4), lens(4), starts(8), positions(kRows * 4), all_pos(ctx * 4),
      all_slots(ctx * 4);
  Buf q(static_cast<size_t>(kRows) * kHq * kD * 2), index_q(static_cast<size_t>(kRows) * kIdxHeads * kIdxDim * 2);
  Buf w_raw(static_cast<size_t>(kRows) * kIdxHeads * 2), k_raw(static_cast<size_t>(ctx) * kIdxDim * 2);
  Buf gamma(kIdxDim * 2), beta(kIdxDim * 2), inv_freq(32 * 4);
  Buf q8(static_cast<size_t>(kRows) * kIdxHeads * kIdxDim), w_eff(static_cast<size_t>(kRows) * kIdxHeads * 4);
  Buf logits(static_cast<size_t>(kRows) * ctx * 4), indices(static_cast<size_t>(kRows) * kTopk * 4);
  Buf topk_ws(k::dsa_topk_workspace_bytes(kRows, ctx, num_sms));
  const int splits = k::dsa_sparse_choose_splits(kRows, kHkv, kTopk, num_sms);
  Buf gather_ws(k::dsa_sparse_workspace_bytes(kRows, kHq, kD, splits));
  Buf masked_ws(k::dsa_sparse_prefill_workspace_bytes(kRows, pages));
  Buf out_gather(q.bytes), out_masked(q.bytes), out_dense(q.bytes);
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
  lens.put(std::vector<int>{ctx});
  starts.put(std::vector<int>{0, kRows});
  std::vector<int> pos(kRows), pp(static_cast<size_t>(ctx)), ss(static_cast<size_t>(ctx));
  for (int i = 0; i < kRows; ++i) pos[static_cast<size_t>(i)] = ctx - kRows + i;
  positions.put(pos);
  for (int j = 0; j < ctx; ++j) {
    pp[static_cast<size_t>(j)] = j;
    ss[static_cast<size_t>(j)] = table[static_cast<size_t>(j / 64)] * 64 + j % 64;
  }
  all_pos.put(pp);
  all_slots.put(ss);
  std::vector<float> f(32);
  for (int i = 0; i < 32; ++i) f[static_cast<size_t>(i)] = std::pow(10000.0f, -static_cast<float>(i) / 32.0f);
  inv_freq.put(f);

  k::DsaIndexKeyParams kp;  // setup: the whole context's index keys
  kp.k_raw = k_raw.ptr;
  kp.gamma = gamma.ptr;
  kp.beta = beta.ptr;
  kp.inv_freq = inv_freq.as<float>();
  kp.hadamard_scale = 1.0f / std::sqrt(static_cast<float>(kIdxDim));
  kp.cache = index_cache.as<uint8_t>();
  kp.head_dim = kIdxDim;
  kp.rope_dim = 64;
  kp.positions = all_pos.as<int>();
  kp.slots = all_slots.as<int>();
  kp.tokens = ctx;
  CK(k::launch_dsa_index_keys(kp, nullptr));

  k::DsaIndexQueryParams qp;
  qp.q = index_q.ptr;
  qp.w_raw = w_raw.ptr;
  qp.positions = positions.as<int>();
  qp.inv_freq = inv_freq.as<float>();
  qp.hadamard_scale = kp.hadamard_scale;
  qp.weight_scale = 1.0f / std::sqrt(static_cast<float>(kIdxHeads)) * (1.0f / std::sqrt(static_cast<float>(kIdxDim)));
  qp.q_fp8 = q8.as<uint8_t>();
  qp.w_eff = w_eff.as<float>();
  qp.rows = kRows;
  qp.heads = kIdxHeads;
  qp.head_dim = kIdxDim;
  qp.rope_dim = 64;

  k::DsaIndexLogitsParams lp;
  lp.q_fp8 = q8.as<uint8_t>();
  lp.w_eff = w_eff.as<float>();
  lp.cache = index_cache.as<uint8_t>();
  lp.query_start = starts.as<int>();
  lp.context_lens = lens.as<int>();
  lp.block_tables = tables.as<int>();
  lp.logits = logits.as<float>();
  lp.logits_stride = ctx;
  lp.seqs = 1;
  lp.rows = kRows;
  lp.max_pages = pages;
  lp.max_context_len = ctx;
  lp.heads = kIdxHeads;
  lp.head_dim = kIdxDim;
  lp.skip_len = kTopk;
  lp.num_sms = num_sms;

  k::DsaTopkParams tp;
  tp.logits = logits.as<float>();
  tp.query_start = starts.as<int>();
  tp.context_lens = lens.as<int>();
  tp.indices = indices.as<int>();
  tp.logits_stride = ctx;
  tp.seqs = 1;
  tp.rows = kRows;
  tp.k = kTopk;
  tp.max_context_len = ctx;
  tp.num_sms = num_sms;
  tp.workspace = topk_ws.bytes > 0 ? topk_ws.ptr : nullptr;

  k::DsaSparseAttentionParams sp;
  sp.q = q.ptr;
  sp.k_cache = kc.ptr;
  sp.v_cache = vc.ptr;
  sp.indices = indices.as<int>();
  sp.query_start = starts.as<int>();
  sp.block_tables = tables.as<int>();
  sp.out = out_gather.ptr;
  sp.workspace = gather_ws.ptr;
  sp.scale = 1.0f / std::sqrt(static_cast<float>(kD));
  sp.seqs = 1;
  sp.rows = kRows;
  sp.max_pages = pages;
  sp.topk = kTopk;
  sp.q_heads = kHq;
  sp.kv_heads = kHkv;
  sp.head_dim = kD;
  sp.num_splits = splits;
  k::DsaSparseAttentionParams mp = sp;
  mp.out = out_masked.ptr;
  mp.workspace = masked_ws.ptr;

  k::FlashPrefillParams fp;
  fp.q = q.ptr;
  fp.k_cache = kc.ptr;
  fp.v_cache = vc.ptr;
  fp.query_start = starts.as<int>();
  fp.context_lens = lens.as<int>();
  fp.block_tables = tables.as<int>();
  fp.out = out_dense.ptr;
  fp.num_seqs = 1;
  fp.num_q_heads = kHq;
  fp.num_kv_heads = kHkv;
  fp.head_dim = kD;
  fp.max_pages_per_seq = pages;
  fp.max_query_len = kRows;
  fp.max_context_len = ctx;
  fp.scale = sp.scale;

  ChunkTimes t{};
  t.ctx = ctx;
  t.query = time_ms([&] { CK(k::launch_dsa_index_query(qp, nullptr)); });
  t.logits = time_ms([&] { CK(k::launch_dsa_index_logits(lp, nullptr)); });
  t.topk = time_ms([&] { CK(k::launch_dsa_topk(tp, nullptr)); });
  t.gather = time_ms([&] { CK(k::launch_dsa_sparse_attention(sp, nullptr)); });
  Buf out_masked_sm80(q.bytes);
  k::DsaSparseAttentionParams mp80 = mp;
  mp80.out = out_masked_sm80.ptr;
  t.masked = time_ms(
      [&] { CK(k::launch_dsa_sparse_prefill_attention(mp, kRows, nullptr, k::SparsePrefillKernel::kHopper)); });
  t.masked_sm80 = time_ms(
      [&] { CK(k::launch_dsa_sparse_prefill_attention(mp80, kRows, nullptr, k::SparsePrefillKernel::kMmaSync)); });
  t.dense = time_ms([&] { CK(k::launch_flash_prefill(fp, nullptr)); });
  t.dense_sm80 = time_ms([&] { CK(k::launch_flash_prefill_sm80(fp, nullptr)); });
  CK(cudaDeviceSynchronize());
  const std::vector<float> a = bf16_host(out_gather);
  auto rel_l2_to_gather = [&](const Buf& out) {
    const std::vector<float> b = bf16_host(out);
    double err = 0, norm = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      err += (static_cast<double>(b[i]) - a[i]) * (static_cast<double>(b[i]) - a[i]);
      norm += static_cast<double>(a[i]) * a[i];
    }
    return std::sqrt(err / std::max(norm, 1e-30));
  };
  t.rel_l2 = rel_l2_to_gather(out_masked);
  t.rel_l2_sm80 = rel_l2_to_gather(out_masked_sm80);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  const char* out_path = argc > 1 ? argv[1] : "dsa_prefill_bench.json";
  int device = 0, num_sms = 0;
  CK(cudaGetDevice(&device));
  CK(cudaDeviceGetAttribute(&num_sms, cudaDevAttrMultiProcessorCount, device));
  std::string json = "{\"chunks\": [";
  for (int ctx : {4096, 16384}) {
    const ChunkTimes t = measure_chunk(ctx, num_sms);
    const double total_gather = t.query + t.logits + t.topk + t.gather;
    const double total_masked = t.query + t.logits + t.topk + t.masked;
    std::printf(
        "sparse prefill chunk rows=%d ctx=%d: index query %.3f ms, logits %.3f ms, topk %.3f ms, gather attention "
        "%.3f ms, masked flash attention %.3f ms (mma.sync %.3f ms) (total %.3f -> %.3f ms); dense flash %.3f ms "
        "(sm80 %.3f ms); masked vs gather rel_l2 %.3g (mma.sync %.3g)\n",
        kRows, ctx, t.query, t.logits, t.topk, t.gather, t.masked, t.masked_sm80, total_gather, total_masked, t.dense,
        t.dense_sm80, t.rel_l2, t.rel_l2_sm80);
    char row[640];
    std::snprintf(row, sizeof(row),
                  "%s{\"ctx\": %d, \"rows\": %d, \"index_query_ms\": %.4f, \"logits_ms\": %.4f, \"topk_ms\": %.4f, "
                  "\"gather_ms\": %.4f, \"masked_flash_ms\": %.4f, \"masked_flash_sm80_ms\": %.4f, "
                  "\"dense_flash_ms\": %.4f, \"dense_flash_sm80_ms\": %.4f, \"masked_vs_gather_rel_l2\": %.4g, "
                  "\"masked_sm80_vs_gather_rel_l2\": %.4g}",
                  ctx == 4096 ? "" : ", ", ctx, kRows, t.query, t.logits, t.topk, t.gather, t.masked, t.masked_sm80,
                  t.dense, t.dense_sm80, t.rel_l2, t.rel_l2_sm80);
    json += row;
  }
  json += "]}\n";
  FILE* f = std::fopen(out_path, "w");
  if (f == nullptr) return 1;
  std::fputs(json.c_str(), f);
  std::fclose(f);
  return 0;
}
