// End-to-end step timings of a Llama-family shape on the CUDA backend with random weights on the
// device (no checkpoint needed): the op sequence of model/runtime/transformer.cc, layer by layer,
// through the Backend interface.
//
//   longbow_model_shape_bench CONFIG.json OUT.json [--prefill-tokens N] [--chunk C]
//
// Prefill: one sequence of N tokens (default 131072) in chunks of C (default 16384), each chunk
// attending to everything before it (chunked prefill over the paged cache); TTFT = the whole
// prefill plus the lm_head of the last token. Decode: one step of B sequences at context L for a few
// (B, L), averaged over 10 steps. Also prints the FLOP-model estimate of the prefill from the
// measured GEMM and attention rates of this run (the `bound` the issue compares TTFT against).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/backend/cuda/cuda_backend.h"
#include "model/config/model_config.h"
#include "model/config/rope.h"

namespace longbow {
namespace {

struct LayerWeights {
  Tensor input_norm, q, k, v, o, post_norm, gate, up, down;
};

struct Bench {
  std::unique_ptr<Backend> backend;
  ModelConfig config;
  std::vector<LayerWeights> layers;
  Tensor embed, final_norm, lm_head, inv_freq;
  std::vector<Tensor> k_cache, v_cache;
  float attention_scaling = 1.0f;
  int num_pages = 0;
  uint64_t seed = 1;

  Status random(Tensor& t, DType dtype, std::initializer_list<int64_t> dims, float scale) {
    ASSIGN_OR_RETURN(t, backend->allocate(dtype, dims));
    return cuda_fill_random(*backend, t, seed++, scale);
  }

  Status load(int kv_tokens) {
    const int h = config.hidden_size, i = config.intermediate_size, d = config.head_dim;
    const int hq = config.num_attention_heads, hkv = config.num_key_value_heads;
    RETURN_IF_ERROR(random(embed, DType::kBF16, {config.vocab_size, h}, 0.02f));
    RETURN_IF_ERROR(random(lm_head, DType::kBF16, {config.vocab_size, h}, 0.02f));
    RETURN_IF_ERROR(random(final_norm, DType::kBF16, {h}, 1.0f));
    layers.resize(static_cast<size_t>(config.num_hidden_layers));
    for (LayerWeights& w : layers) {
      RETURN_IF_ERROR(random(w.input_norm, DType::kBF16, {h}, 1.0f));
      RETURN_IF_ERROR(random(w.post_norm, DType::kBF16, {h}, 1.0f));
      RETURN_IF_ERROR(random(w.q, DType::kBF16, {hq * d, h}, 0.02f));
      RETURN_IF_ERROR(random(w.k, DType::kBF16, {hkv * d, h}, 0.02f));
      RETURN_IF_ERROR(random(w.v, DType::kBF16, {hkv * d, h}, 0.02f));
      RETURN_IF_ERROR(random(w.o, DType::kBF16, {h, hq * d}, 0.02f));
      RETURN_IF_ERROR(random(w.gate, DType::kBF16, {i, h}, 0.02f));
      RETURN_IF_ERROR(random(w.up, DType::kBF16, {i, h}, 0.02f));
      RETURN_IF_ERROR(random(w.down, DType::kBF16, {h, i}, 0.02f));
    }
    RopeTable rope = make_rope_table(config.rope);
    attention_scaling = rope.attention_scaling;
    ASSIGN_OR_RETURN(inv_freq, backend->allocate(DType::kF32, {static_cast<int64_t>(rope.inv_freq.size())}));
    RETURN_IF_ERROR(backend->upload(rope.inv_freq.data(), inv_freq));
    num_pages = (kv_tokens + kPageSize - 1) / kPageSize;
    for (int l = 0; l < config.num_hidden_layers; ++l) {
      Tensor kc, vc;
      RETURN_IF_ERROR(random(kc, DType::kBF16, {num_pages, kPageSize, hkv, d}, 1.0f));
      RETURN_IF_ERROR(random(vc, DType::kBF16, {num_pages, kPageSize, hkv, d}, 1.0f));
      k_cache.push_back(kc);
      v_cache.push_back(vc);
    }
    return backend->synchronize();
  }

  // Activations for a step of `tokens` rows.
  struct Scratch {
    Tensor ids, positions, slots, hidden, normed, q, k, v, attn, proj, gate, up, query_start, context_lens,
        block_tables, logit_rows, last_normed, logits;
  };

  Status make_scratch(Scratch& s, int tokens, int seqs, int max_pages) {
    const int h = config.hidden_size, i = config.intermediate_size, d = config.head_dim;
    const int hq = config.num_attention_heads, hkv = config.num_key_value_heads;
    Backend& b = *backend;
    ASSIGN_OR_RETURN(s.ids, b.allocate(DType::kI32, {tokens}));
    ASSIGN_OR_RETURN(s.positions, b.allocate(DType::kI32, {tokens}));
    ASSIGN_OR_RETURN(s.slots, b.allocate(DType::kI32, {tokens}));
    ASSIGN_OR_RETURN(s.hidden, b.allocate(DType::kBF16, {tokens, h}));
    ASSIGN_OR_RETURN(s.normed, b.allocate(DType::kBF16, {tokens, h}));
    ASSIGN_OR_RETURN(s.q, b.allocate(DType::kBF16, {tokens, hq * d}));
    ASSIGN_OR_RETURN(s.k, b.allocate(DType::kBF16, {tokens, hkv * d}));
    ASSIGN_OR_RETURN(s.v, b.allocate(DType::kBF16, {tokens, hkv * d}));
    ASSIGN_OR_RETURN(s.attn, b.allocate(DType::kBF16, {tokens, hq * d}));
    ASSIGN_OR_RETURN(s.proj, b.allocate(DType::kBF16, {tokens, h}));
    ASSIGN_OR_RETURN(s.gate, b.allocate(DType::kBF16, {tokens, i}));
    ASSIGN_OR_RETURN(s.up, b.allocate(DType::kBF16, {tokens, i}));
    ASSIGN_OR_RETURN(s.query_start, b.allocate(DType::kI32, {seqs + 1}));
    ASSIGN_OR_RETURN(s.context_lens, b.allocate(DType::kI32, {seqs}));
    ASSIGN_OR_RETURN(s.block_tables, b.allocate(DType::kI32, {seqs, max_pages}));
    ASSIGN_OR_RETURN(s.logit_rows, b.allocate(DType::kI32, {seqs}));
    ASSIGN_OR_RETURN(s.last_normed, b.allocate(DType::kBF16, {seqs, h}));
    ASSIGN_OR_RETURN(s.logits, b.allocate(DType::kF32, {seqs, config.vocab_size}));
    return Status::Ok();
  }

  // One forward step over prepared scratch: the runtime's op order.
  Status forward(Scratch& s, int tokens, int max_query_len, int max_context_len) {
    Backend& b = *backend;
    const auto eps = static_cast<float>(config.rms_norm_eps);
    const int d = config.head_dim, hq = config.num_attention_heads, hkv = config.num_key_value_heads;
    RETURN_IF_ERROR(b.embed(embed, s.ids, s.hidden));
    for (int l = 0; l < config.num_hidden_layers; ++l) {
      const LayerWeights& w = layers[static_cast<size_t>(l)];
      if (l == 0) {
        RETURN_IF_ERROR(b.rms_norm(s.hidden, w.input_norm, eps, s.normed));
      } else {
        RETURN_IF_ERROR(b.add_rms_norm(s.hidden, s.proj, w.input_norm, eps, s.normed));
      }
      RETURN_IF_ERROR(b.matmul(s.normed, w.q, Tensor{}, s.q));
      RETURN_IF_ERROR(b.matmul(s.normed, w.k, Tensor{}, s.k));
      RETURN_IF_ERROR(b.matmul(s.normed, w.v, Tensor{}, s.v));
      Tensor q_heads = s.q.reshape({tokens, hq, d});
      Tensor k_heads = s.k.reshape({tokens, hkv, d});
      Tensor v_heads = s.v.reshape({tokens, hkv, d});
      RETURN_IF_ERROR(b.rope(q_heads, k_heads, s.positions, inv_freq, attention_scaling));
      RETURN_IF_ERROR(b.append_kv(k_heads, v_heads, s.slots, k_cache[static_cast<size_t>(l)],
                                  v_cache[static_cast<size_t>(l)]));
      PagedAttentionArgs a;
      a.q = q_heads;
      a.k_cache = k_cache[static_cast<size_t>(l)];
      a.v_cache = v_cache[static_cast<size_t>(l)];
      a.query_start = s.query_start;
      a.context_lens = s.context_lens;
      a.block_tables = s.block_tables;
      a.out = s.attn.reshape({tokens, hq, d});
      a.max_query_len = max_query_len;
      a.max_context_len = max_context_len;
      a.scale = 1.0f / std::sqrt(static_cast<float>(d));
      RETURN_IF_ERROR(b.paged_attention(a));
      RETURN_IF_ERROR(b.matmul(s.attn, w.o, Tensor{}, s.proj));
      RETURN_IF_ERROR(b.add_rms_norm(s.hidden, s.proj, w.post_norm, eps, s.normed));
      RETURN_IF_ERROR(b.matmul(s.normed, w.gate, Tensor{}, s.gate));
      RETURN_IF_ERROR(b.matmul(s.normed, w.up, Tensor{}, s.up));
      RETURN_IF_ERROR(b.silu_mul(s.gate, s.up, s.gate));
      RETURN_IF_ERROR(b.matmul(s.gate, w.down, Tensor{}, s.proj));
    }
    RETURN_IF_ERROR(b.add_rms_norm(s.hidden, s.proj, final_norm, eps, s.normed));
    RETURN_IF_ERROR(b.gather_rows(s.normed, s.logit_rows, s.last_normed));
    return b.matmul(s.last_normed, lm_head, Tensor{}, s.logits);
  }
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Prefill of `total` tokens in chunks; returns seconds (device-synchronised).
StatusOr<double> prefill(Bench& bench, int total, int chunk) {
  Bench::Scratch s;
  const int max_pages = (total + kPageSize - 1) / kPageSize;
  RETURN_IF_ERROR(bench.make_scratch(s, chunk, 1, max_pages));
  std::vector<int32_t> table(static_cast<size_t>(max_pages));
  for (int p = 0; p < max_pages; ++p) table[static_cast<size_t>(p)] = p;
  RETURN_IF_ERROR(bench.backend->upload(table.data(), s.block_tables));
  const auto start = std::chrono::steady_clock::now();
  for (int begin = 0; begin < total; begin += chunk) {
    const int n = std::min(chunk, total - begin);
    std::vector<int32_t> ids(static_cast<size_t>(chunk)), pos(static_cast<size_t>(chunk)), slots(static_cast<size_t>(chunk));
    for (int t = 0; t < n; ++t) {
      ids[static_cast<size_t>(t)] = (begin + t) * 7919 % bench.config.vocab_size;
      pos[static_cast<size_t>(t)] = begin + t;
      slots[static_cast<size_t>(t)] = begin + t;  // identity page table
    }
    const int32_t starts[2] = {0, n};
    const int32_t ctx = begin + n;
    const int32_t last = n - 1;
    RETURN_IF_ERROR(bench.backend->upload(ids.data(), s.ids));
    RETURN_IF_ERROR(bench.backend->upload(pos.data(), s.positions));
    RETURN_IF_ERROR(bench.backend->upload(slots.data(), s.slots));
    RETURN_IF_ERROR(bench.backend->upload(starts, s.query_start));
    RETURN_IF_ERROR(bench.backend->upload(&ctx, s.context_lens));
    RETURN_IF_ERROR(bench.backend->upload(&last, s.logit_rows));
    if (n == chunk) {
      RETURN_IF_ERROR(bench.forward(s, chunk, n, ctx));
    } else {  // a short last chunk: views of the first n rows
      Bench::Scratch v = s;
      for (Tensor* t : {&v.ids, &v.positions, &v.slots, &v.hidden, &v.normed, &v.q, &v.k, &v.v, &v.attn, &v.proj,
                        &v.gate, &v.up}) {
        *t = t->rows(0, n);
      }
      RETURN_IF_ERROR(bench.forward(v, n, n, ctx));
    }
  }
  RETURN_IF_ERROR(bench.backend->synchronize());
  return seconds_since(start);
}

// Mean seconds of one decode step of `batch` sequences at context `ctx`.
StatusOr<double> decode(Bench& bench, int batch, int ctx) {
  Bench::Scratch s;
  const int pages_per_seq = (ctx + kPageSize - 1) / kPageSize;
  if (pages_per_seq * batch > bench.num_pages) return invalid_argument("decode: KV pool too small");
  RETURN_IF_ERROR(bench.make_scratch(s, batch, batch, pages_per_seq));
  std::vector<int32_t> table, ids, pos, slots, starts{0}, lens, rows;
  for (int b = 0; b < batch; ++b) {
    for (int p = 0; p < pages_per_seq; ++p) table.push_back(b * pages_per_seq + p);
    ids.push_back(b + 1);
    pos.push_back(ctx - 1);
    slots.push_back((b * pages_per_seq) * kPageSize + ctx - 1);
    starts.push_back(b + 1);
    lens.push_back(ctx);
    rows.push_back(b);
  }
  RETURN_IF_ERROR(bench.backend->upload(table.data(), s.block_tables));
  RETURN_IF_ERROR(bench.backend->upload(ids.data(), s.ids));
  RETURN_IF_ERROR(bench.backend->upload(pos.data(), s.positions));
  RETURN_IF_ERROR(bench.backend->upload(slots.data(), s.slots));
  RETURN_IF_ERROR(bench.backend->upload(starts.data(), s.query_start));
  RETURN_IF_ERROR(bench.backend->upload(lens.data(), s.context_lens));
  RETURN_IF_ERROR(bench.backend->upload(rows.data(), s.logit_rows));
  RETURN_IF_ERROR(bench.forward(s, batch, 1, ctx));  // warm-up
  RETURN_IF_ERROR(bench.backend->synchronize());
  constexpr int kSteps = 10;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kSteps; ++i) RETURN_IF_ERROR(bench.forward(s, batch, 1, ctx));
  RETURN_IF_ERROR(bench.backend->synchronize());
  return seconds_since(start) / kSteps;
}

// Decode step of `batch` sequences at context `ctx`, timed three ways in one run: eager launches,
// a CUDA graph of the same launches, and a graph captured with the runtime's fixed bound (block
// tables `bound` / kPageSize pages wide, max_context_len = bound) as the runtime's decode graphs use.
// Each figure: the median over 5 repetitions of the mean of 20 back-to-back steps.
struct GraphTimes {
  double eager_s = 0, graph_s = 0, graph_bound_s = 0;
};

StatusOr<GraphTimes> decode_graphs(Bench& bench, int batch, int ctx, int bound) {
  Bench::Scratch s;
  const int pages_per_seq = (ctx + kPageSize - 1) / kPageSize;
  const int width = (bound + kPageSize - 1) / kPageSize;
  if (pages_per_seq * batch > bench.num_pages) return invalid_argument("decode_graphs: KV pool too small");
  RETURN_IF_ERROR(bench.make_scratch(s, batch, batch, width));
  std::vector<int32_t> table(static_cast<size_t>(batch) * static_cast<size_t>(width), -1), ids, pos, slots,
      starts{0}, lens, rows;
  for (int b = 0; b < batch; ++b) {
    for (int p = 0; p < pages_per_seq; ++p) table[static_cast<size_t>(b * width + p)] = b * pages_per_seq + p;
    ids.push_back(b + 1);
    pos.push_back(ctx - 1);
    slots.push_back((b * pages_per_seq) * kPageSize + ctx - 1);
    starts.push_back(b + 1);
    lens.push_back(ctx);
    rows.push_back(b);
  }
  Backend& be = *bench.backend;
  RETURN_IF_ERROR(be.upload(table.data(), s.block_tables));
  RETURN_IF_ERROR(be.upload(ids.data(), s.ids));
  RETURN_IF_ERROR(be.upload(pos.data(), s.positions));
  RETURN_IF_ERROR(be.upload(slots.data(), s.slots));
  RETURN_IF_ERROR(be.upload(starts.data(), s.query_start));
  RETURN_IF_ERROR(be.upload(lens.data(), s.context_lens));
  RETURN_IF_ERROR(be.upload(rows.data(), s.logit_rows));
  auto eager = [&] { return bench.forward(s, batch, 1, ctx); };
  auto eager_bound = [&] { return bench.forward(s, batch, 1, bound); };
  RETURN_IF_ERROR(eager());  // warm-up; sizes the scratch for both captures
  RETURN_IF_ERROR(eager_bound());
  RETURN_IF_ERROR(be.synchronize());
  ASSIGN_OR_RETURN(std::unique_ptr<BackendGraph> graph, be.capture_graph(eager));
  ASSIGN_OR_RETURN(std::unique_ptr<BackendGraph> graph_bound, be.capture_graph(eager_bound));
  auto time = [&](const std::function<Status()>& step) -> StatusOr<double> {
    constexpr int kSteps = 20, kReps = 5;
    RETURN_IF_ERROR(step());
    RETURN_IF_ERROR(be.synchronize());
    std::vector<double> reps;
    for (int r = 0; r < kReps; ++r) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 0; i < kSteps; ++i) RETURN_IF_ERROR(step());
      RETURN_IF_ERROR(be.synchronize());
      reps.push_back(seconds_since(start) / kSteps);
    }
    std::sort(reps.begin(), reps.end());
    return reps[kReps / 2];
  };
  GraphTimes t;
  ASSIGN_OR_RETURN(t.eager_s, time(eager));
  ASSIGN_OR_RETURN(t.graph_s, time([&] { return graph->replay(); }));
  ASSIGN_OR_RETURN(t.graph_bound_s, time([&] { return graph_bound->replay(); }));
  return t;
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: longbow_model_shape_bench CONFIG.json OUT.json [--prefill-tokens N] [--chunk C]\n");
    return 2;
  }
  int total = 131072, chunk = 16384;
  bool graphs_only = false;  // --decode-graphs: only the eager-vs-graph decode cases
  for (int i = 3; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--decode-graphs") graphs_only = true;
    if (i + 1 >= argc) continue;
    if (flag == "--prefill-tokens") total = std::atoi(argv[i + 1]);
    if (flag == "--chunk") chunk = std::atoi(argv[i + 1]);
  }
  init_logging("warn");
  Bench bench;
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "model_shape_bench: %s\n", s.to_string().c_str());
    return 1;
  };
  nlohmann::json config_json;
  {
    FILE* f = std::fopen(argv[1], "r");
    if (f == nullptr) return fail(not_found(std::string("cannot open ") + argv[1]));
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
    config_json = nlohmann::json::parse(text, nullptr, false);
  }
  auto config = parse_model_config(config_json);
  if (!config.ok()) return fail(config.status());
  bench.config = *config;
  auto backend = create_cuda_backend();
  if (!backend.ok()) return fail(backend.status());
  bench.backend = std::move(backend).value();
  const int kv_tokens = graphs_only ? 32 * 4096 : std::max(total, 8 * 32768);
  if (Status s = bench.load(kv_tokens); !s.ok()) return fail(s);
  if (graphs_only) {
    constexpr int kBound = 131072;
    nlohmann::json rows = nlohmann::json::array();
    for (int batch : {1, 8, 32}) {
      auto t = decode_graphs(bench, batch, 4096, kBound);
      if (!t.ok()) return fail(t.status());
      std::printf("e2e-graphs %s B=%-2d ctx=4096: eager %.3f ms, graph %.3f ms (%.2fx), graph with bound %d %.3f ms; "
                  "tok/s %.0f -> %.0f\n",
                  bench.config.model_type.c_str(), batch, t->eager_s * 1e3, t->graph_s * 1e3, t->eager_s / t->graph_s,
                  kBound, t->graph_bound_s * 1e3, batch / t->eager_s, batch / t->graph_bound_s);
      rows.push_back({{"batch", batch}, {"ctx", 4096}, {"eager_ms", t->eager_s * 1e3}, {"graph_ms", t->graph_s * 1e3},
                      {"graph_bound_ms", t->graph_bound_s * 1e3}, {"bound", kBound}});
    }
    if (FILE* f = std::fopen(argv[2], "w")) {
      std::fputs(nlohmann::json{{"config", argv[1]}, {"decode_graphs", rows}}.dump(1).c_str(), f);
      std::fclose(f);
    }
    return 0;
  }
  auto mem = bench.backend->memory_info();
  nlohmann::json out = {{"config", argv[1]}, {"prefill_tokens", total}, {"chunk", chunk}};
  if (mem.ok()) out["free_gib_after_load"] = static_cast<double>(mem->free_bytes) / (1u << 30);

  // Warm-up prefill on one chunk, then the measured one.
  if (auto w = prefill(bench, std::min(chunk, total), chunk); !w.ok()) return fail(w.status());
  auto ttft = prefill(bench, total, chunk);
  if (!ttft.ok()) return fail(ttft.status());
  out["ttft_s"] = *ttft;
  std::printf("e2e %s: prefill %d tokens (chunks of %d) TTFT %.2f s\n", bench.config.model_type.c_str(), total, chunk,
              *ttft);

  // The FLOP model: GEMM FLOPs (2 · non-embedding params · tokens + lm_head once) and causal
  // attention FLOPs (2 · Hq · N² · d per layer).
  const double h = bench.config.hidden_size, inter = bench.config.intermediate_size, d = bench.config.head_dim;
  const double hq = bench.config.num_attention_heads, hkv = bench.config.num_key_value_heads;
  const double layer_params = h * hq * d * 2 + h * hkv * d * 2 + 3 * h * inter;
  const double gemm_flops = 2.0 * layer_params * bench.config.num_hidden_layers * total + 2.0 * h * bench.config.vocab_size;
  const double attn_flops = 2.0 * hq * static_cast<double>(total) * total * d * bench.config.num_hidden_layers;
  out["gemm_flops"] = gemm_flops;
  out["attention_flops"] = attn_flops;
  std::printf("e2e flops: GEMM %.3g, attention %.3g\n", gemm_flops, attn_flops);

  nlohmann::json steps = nlohmann::json::array();
  const int cases[][2] = {{1, 4096}, {1, 32768}, {1, 131072}, {8, 32768}, {32, 4096}, {64, 4096}};
  for (const auto& c : cases) {
    auto t = decode(bench, c[0], c[1]);
    if (!t.ok()) return fail(t.status());
    steps.push_back({{"batch", c[0]}, {"ctx", c[1]}, {"step_ms", *t * 1e3}, {"tokens_per_s", c[0] / *t}});
    std::printf("e2e decode B=%-2d ctx=%-6d step %.2f ms (%.0f tok/s)\n", c[0], c[1], *t * 1e3, c[0] / *t);
  }
  out["decode"] = steps;
  FILE* f = std::fopen(argv[2], "w");
  if (f != nullptr) {
    std::fputs(out.dump(1).c_str(), f);
    std::fclose(f);
  }
  return 0;
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) { return longbow::run(argc, argv); }
