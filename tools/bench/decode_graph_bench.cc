// Decode step latency of the real runtime (Transformer::forward: step inputs, uploads, launches,
// logits download) with CUDA graphs on and off, for one model directory on the CUDA backend.
//
//   longbow_decode_graph_bench MODEL_DIR [--context L] [--batches 1,8,32] [--steps N] [--json OUT]
//
// Per batch size B: B sequences are prefilled to L tokens (eager prefill steps), then N decode steps
// run after 3 warm-up steps (which also capture the graph); each step is timed on the host around
// forward(), which returns after the logits are on the host, so a step's time is what the engine
// sees. Reports the median and tokens/s = B / median. Both modes run in this one process, graphs
// first, each on a freshly loaded runtime.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"

namespace longbow {
namespace {

struct Options {
  std::string model_dir;
  int context = 4096;
  std::vector<int> batches = {1, 8, 32};
  int steps = 50;
  std::string json_path;
};

StatusOr<double> median_step_ms(Transformer& model, int batch, const Options& o, uint32_t seed) {
  const int vocab = model.config().vocab_size;
  const int total = o.context + 3 + o.steps;
  const int pages_per_seq = (total + kPageSize - 1) / kPageSize;
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);
  std::vector<std::vector<int32_t>> tokens(static_cast<size_t>(batch)), tables(static_cast<size_t>(batch));
  for (int b = 0; b < batch; ++b) {
    for (int i = 0; i < total; ++i) tokens[static_cast<size_t>(b)].push_back(token(rng));
    for (int p = 0; p < pages_per_seq; ++p) tables[static_cast<size_t>(b)].push_back(b * pages_per_seq + p);
  }
  std::vector<float> logits;
  constexpr int kChunk = 2048;
  for (int b = 0; b < batch; ++b) {
    for (int done = 0; done < o.context; done += kChunk) {
      const int n = std::min(kChunk, o.context - done);
      SequenceStep step{std::span(tokens[static_cast<size_t>(b)]).subspan(static_cast<size_t>(done), static_cast<size_t>(n)),
                        done, {tables[static_cast<size_t>(b)]}, -1, done + n == o.context};
      RETURN_IF_ERROR(model.forward(std::span(&step, 1), &logits));
    }
  }
  std::vector<double> ms;
  int cached = o.context;
  for (int i = 0; i < 3 + o.steps; ++i) {
    std::vector<SequenceStep> steps;
    for (int b = 0; b < batch; ++b) {
      steps.push_back({std::span(tokens[static_cast<size_t>(b)]).subspan(static_cast<size_t>(cached), 1), cached,
                       {tables[static_cast<size_t>(b)]}, -1, true});
    }
    const auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(model.forward(steps, &logits));
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (i >= 3) ms.push_back(t);
    ++cached;
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int run(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: longbow_decode_graph_bench MODEL_DIR [--context L] [--batches 1,8,32] [--steps N] "
                         "[--json OUT]\n");
    return 2;
  }
  Options o;
  o.model_dir = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--context") o.context = std::atoi(value.c_str());
    if (flag == "--steps") o.steps = std::max(1, std::atoi(value.c_str()));
    if (flag == "--json") o.json_path = value;
    if (flag == "--batches") {
      o.batches.clear();
      std::stringstream list(value);
      for (std::string item; std::getline(list, item, ',');) o.batches.push_back(std::atoi(item.c_str()));
    }
  }
  init_logging("warn");
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "decode_graph_bench: %s\n", s.to_string().c_str());
    return 1;
  };
  auto config = load_model_config(o.model_dir);
  if (!config.ok()) return fail(config.status());
  auto checkpoint = Checkpoint::open(o.model_dir);
  if (!checkpoint.ok()) return fail(checkpoint.status());
  auto backend = create_backend("cuda");
  if (!backend.ok()) return fail(backend.status());
  const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());

  nlohmann::json rows = nlohmann::json::array();
  std::vector<std::vector<double>> results(o.batches.size());
  for (bool graphs : {true, false}) {
    RuntimeOptions options;
    options.num_kv_pages = max_batch * ((o.context + 3 + o.steps + kPageSize - 1) / kPageSize) + 1;
    options.max_batched_tokens = 2048;
    options.max_num_seqs = std::max(max_batch, 1);
    options.enable_cuda_graphs = graphs;
    auto model = Transformer::load(*config, **checkpoint, **backend, options);
    if (!model.ok()) return fail(model.status());
    for (size_t i = 0; i < o.batches.size(); ++i) {
      auto ms = median_step_ms(**model, o.batches[i], o, 7 + static_cast<uint32_t>(i));
      if (!ms.ok()) return fail(ms.status());
      results[i].push_back(*ms);
    }
    if (graphs && (*model)->num_decode_graphs() == 0) {
      return fail(internal_error("graphs on, but no decode graph was captured (see the log)"));
    }
  }
  std::printf("decode-graphs %s (%s, %d layers, hidden %d), context %d, median of %d steps:\n",
              config->model_type.c_str(), o.model_dir.c_str(), config->num_hidden_layers, config->hidden_size,
              o.context, o.steps);
  std::printf("decode-graphs   B   eager ms  graphs ms  speed-up  eager tok/s  graphs tok/s\n");
  for (size_t i = 0; i < o.batches.size(); ++i) {
    const int b = o.batches[i];
    const double g = results[i][0], e = results[i][1];
    std::printf("decode-graphs %3d %10.3f %10.3f %8.2fx %12.0f %13.0f\n", b, e, g, e / g, b * 1e3 / e, b * 1e3 / g);
    rows.push_back({{"batch", b}, {"eager_ms", e}, {"graphs_ms", g}, {"eager_tok_s", b * 1e3 / e},
                    {"graphs_tok_s", b * 1e3 / g}});
  }
  if (!o.json_path.empty()) {
    if (FILE* f = std::fopen(o.json_path.c_str(), "w")) {
      nlohmann::json out = {{"model", o.model_dir}, {"context", o.context}, {"steps", o.steps}, {"rows", rows}};
      std::fputs(out.dump(1).c_str(), f);
      std::fclose(f);
    }
  }
  return 0;
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) { return longbow::run(argc, argv); }
