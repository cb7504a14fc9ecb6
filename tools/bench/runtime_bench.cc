// End-to-end step timings of any model config through the real runtime: Transformer::load with dummy
// weights drawn on the device (`--load-format dummy`), then Transformer::forward driven as the engine
// drives it. No checkpoint needed, so Llama-3.1-8B's shape runs from its config.json alone.
//
//   longbow_runtime_bench --config CONFIG [--json OUT] [--backend auto] [--chunk 2048]
//       [--prompt-lens 8192,32768,131072] [--decode-contexts 8192,131072] [--decode-batches 1,8]
//       [--ttft-repeats 3] [--decode-steps 30] [--warmup 2] [--gpu-memory-utilization 0.9]
//       [--num-kv-pages 0] [--seed 0] [--enforce-eager] [--dsa-prefill sparse|dense] [--max-model-len 0]
//
// CONFIG is a config.json file or a model directory holding one.
//
// TTFT at prompt length L: one sequence prefilled in chunks of --chunk tokens (chunked prefill, each
// chunk attending to the cached ones before it), the last chunk returning its last token's logits to
// the host; wall time from the first forward() to the last one's return. forward() returns after
// the logits are on the host (or after a synchronize when none are wanted), so host time is device
// time plus the runtime's own overhead, which is what a client waits for.
//
// Decode at context L with B sequences: every sequence holds L - 1 cached tokens and decodes one
// more (context L). The B sequences share the prompt's full KV pages through their block tables, as
// the prefix cache shares a common prompt, and each owns one private page for its tail (the partial
// last page, prefilled once per sequence) and its new token, so B = 8 at 128K needs the KV of one
// prompt, not eight. Every step writes the token at the same position, so the context stays L; the
// figure is the median step time over --decode-steps steps after --warmup, and tokens/s = B / step.
// Decode steps replay CUDA graphs where the runtime captures them (RuntimeOptions::enable_cuda_graphs);
// --enforce-eager turns that off. A graph's launches are sized for the runtime's context bound,
// max_model_len: the longest prompt unless --max-model-len sets it (e.g. 131072 with 8K contexts, as a
// server configured for 128K runs 8K requests).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_file.h"
#include "common/logging.h"
#include "common/status.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/page_allocator.h"
#include "model/runtime/transformer.h"
#include "model/runtime/weight_source.h"

namespace longbow {
namespace {

struct BenchOptions {
  std::string config_path;
  std::string json_path;
  std::string backend = "auto";
  int chunk = 2048;
  std::vector<int> prompt_lens = {8192, 32768, 131072};
  std::vector<int> decode_contexts = {8192, 131072};
  std::vector<int> decode_batches = {1, 8};
  int ttft_repeats = 3;
  int decode_steps = 30;
  int warmup = 2;
  double gpu_memory_utilization = 0.9;
  int num_kv_pages = 0;
  int max_model_len = 0;  // 0: the longest prompt
  uint64_t seed = 0;
  bool enforce_eager = false;  // decode steps without CUDA graphs
  std::string dsa_prefill = "sparse";  // DSA layers' prefill (RuntimeOptions::dsa_prefill)
};

constexpr const char* kUsage =
    "usage: longbow_runtime_bench --config CONFIG [--json OUT] [--backend auto|cpu|cuda] [--chunk 2048]\n"
    "    [--prompt-lens 8192,32768,131072] [--decode-contexts 8192,131072] [--decode-batches 1,8]\n"
    "    [--ttft-repeats 3] [--decode-steps 30] [--warmup 2] [--gpu-memory-utilization 0.9]\n"
    "    [--num-kv-pages 0] [--seed 0] [--enforce-eager] [--dsa-prefill sparse|dense]\n";

StatusOr<int> parse_positive(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  const long value = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < 1 || value > (1L << 30)) {
    return invalid_argument(flag + " expects a positive integer, got '" + text + "'");
  }
  return static_cast<int>(value);
}

StatusOr<std::vector<int>> parse_list(const std::string& flag, const std::string& text) {
  std::vector<int> values;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    ASSIGN_OR_RETURN(int value, parse_positive(flag, text.substr(begin, end - begin)));
    values.push_back(value);
    begin = end + 1;
  }
  std::sort(values.begin(), values.end());
  return values;
}

StatusOr<BenchOptions> parse_options(int argc, char** argv) {
  BenchOptions o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--enforce-eager") {
      o.enforce_eager = true;
      continue;
    }
    if (i + 1 >= argc) return invalid_argument(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--config") {
      o.config_path = value;
    } else if (flag == "--json") {
      o.json_path = value;
    } else if (flag == "--backend") {
      o.backend = value;
    } else if (flag == "--chunk") {
      ASSIGN_OR_RETURN(o.chunk, parse_positive(flag, value));
    } else if (flag == "--prompt-lens") {
      ASSIGN_OR_RETURN(o.prompt_lens, parse_list(flag, value));
    } else if (flag == "--decode-contexts") {
      ASSIGN_OR_RETURN(o.decode_contexts, parse_list(flag, value));
    } else if (flag == "--decode-batches") {
      ASSIGN_OR_RETURN(o.decode_batches, parse_list(flag, value));
    } else if (flag == "--ttft-repeats") {
      ASSIGN_OR_RETURN(o.ttft_repeats, parse_positive(flag, value));
    } else if (flag == "--decode-steps") {
      ASSIGN_OR_RETURN(o.decode_steps, parse_positive(flag, value));
    } else if (flag == "--warmup") {
      ASSIGN_OR_RETURN(o.warmup, parse_positive(flag, value));
    } else if (flag == "--dsa-prefill") {
      RETURN_IF_ERROR(parse_dsa_prefill_mode(value).status());
      o.dsa_prefill = value;
    } else if (flag == "--num-kv-pages") {
      ASSIGN_OR_RETURN(o.num_kv_pages, parse_positive(flag, value));
    } else if (flag == "--max-model-len") {
      ASSIGN_OR_RETURN(o.max_model_len, parse_positive(flag, value));
    } else if (flag == "--seed") {
      ASSIGN_OR_RETURN(int seed, parse_positive(flag, value));
      o.seed = static_cast<uint64_t>(seed);
    } else if (flag == "--gpu-memory-utilization") {
      char* end = nullptr;
      o.gpu_memory_utilization = std::strtod(value.c_str(), &end);
      if (*end != '\0' || !(o.gpu_memory_utilization > 0.0 && o.gpu_memory_utilization <= 1.0)) {
        return invalid_argument("--gpu-memory-utilization must be in (0, 1], got '" + value + "'");
      }
    } else {
      return invalid_argument("unknown flag " + flag);
    }
  }
  if (o.config_path.empty()) return invalid_argument("--config is required");
  if (o.max_model_len > 0 && o.max_model_len < o.prompt_lens.back()) {
    return invalid_argument("--max-model-len " + std::to_string(o.max_model_len) + " is below the longest prompt " +
                            std::to_string(o.prompt_lens.back()));
  }
  for (int context : o.decode_contexts) {
    if (std::find(o.prompt_lens.begin(), o.prompt_lens.end(), context) == o.prompt_lens.end()) {
      return invalid_argument("decode context " + std::to_string(context) +
                              " must also be a prompt length (its KV comes from that prefill)");
    }
  }
  return o;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

class RuntimeBench {
 public:
  RuntimeBench(const BenchOptions& options, Transformer& model, int max_prompt)
      : o_(options), model_(model), private_page_base_(pages_for_tokens(max_prompt, kPageSize)) {
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> id(0, model.config().vocab_size - 1);
    tokens_.resize(static_cast<size_t>(max_prompt));
    for (int32_t& t : tokens_) t = id(rng);
  }

  // Prefills tokens [0, length) of one sequence over pages 0, 1, ... in chunks; returns seconds.
  StatusOr<double> prefill(int length) {
    std::vector<int32_t> table(static_cast<size_t>(pages_for_tokens(length, kPageSize)));
    for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
    std::vector<float> logits;
    const auto start = std::chrono::steady_clock::now();
    for (int done = 0; done < length;) {
      const int n = std::min(o_.chunk, length - done);
      const auto used = static_cast<size_t>(pages_for_tokens(done + n, kPageSize));
      SequenceStep step{std::span(tokens_).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done,
                        {std::span(table).first(used)}, -1, done + n == length};
      RETURN_IF_ERROR(model_.forward(std::span(&step, 1), &logits));
      done += n;
    }
    const double seconds = seconds_since(start);
    if (logits.size() != static_cast<size_t>(model_.config().vocab_size)) {
      return internal_error("prefill returned " + std::to_string(logits.size()) + " logits");
    }
    return seconds;
  }

  // Median seconds of one decode step of `batch` sequences at context `context` (see the file comment);
  // the prompt of `context` tokens must have been prefilled last.
  StatusOr<double> decode(int context, int batch) {
    const int cached = context - 1;
    const int shared_pages = cached / kPageSize;
    const int tail = cached - shared_pages * kPageSize;
    std::vector<std::vector<int32_t>> tables(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      std::vector<int32_t>& table = tables[static_cast<size_t>(b)];
      for (int p = 0; p < shared_pages; ++p) table.push_back(p);
      table.push_back(private_page_base_ + b);
    }
    std::vector<float> logits;
    std::vector<SequenceStep> steps(static_cast<size_t>(batch));
    if (tail > 0) {  // each private page gets the prompt's partial last page
      for (int b = 0; b < batch; ++b) {
        steps[static_cast<size_t>(b)] = {
            std::span(tokens_).subspan(static_cast<size_t>(shared_pages) * kPageSize, static_cast<size_t>(tail)),
            shared_pages * kPageSize, {tables[static_cast<size_t>(b)]}, -1, false};
      }
      RETURN_IF_ERROR(model_.forward(steps, &logits));
    }
    for (int b = 0; b < batch; ++b) {
      steps[static_cast<size_t>(b)] = {std::span(tokens_).subspan(static_cast<size_t>(b), 1), cached,
                                       {tables[static_cast<size_t>(b)]}, -1, true};
    }
    std::vector<double> times;
    for (int i = 0; i < o_.warmup + o_.decode_steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(model_.forward(steps, &logits));
      if (i >= o_.warmup) times.push_back(seconds_since(start));
    }
    if (logits.size() != static_cast<size_t>(batch) * static_cast<size_t>(model_.config().vocab_size)) {
      return internal_error("decode returned " + std::to_string(logits.size()) + " logits");
    }
    return median(times);
  }

 private:
  const BenchOptions& o_;
  Transformer& model_;
  const int private_page_base_;  // pages [0, base) hold the prompt; base + b is sequence b's own page
  std::vector<int32_t> tokens_;
};

StatusOr<ModelConfig> read_config(const std::string& path) {
  std::error_code error;
  const std::string file =
      std::filesystem::is_directory(path, error) ? (std::filesystem::path(path) / "config.json").string() : path;
  ASSIGN_OR_RETURN(nlohmann::json doc, read_json_file(file));
  StatusOr<ModelConfig> config = parse_model_config(doc);
  if (!config.ok()) return config.status().with_context(file);
  return config;
}

Status run(const BenchOptions& o) {
  ASSIGN_OR_RETURN(ModelConfig config, read_config(o.config_path));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, create_backend(o.backend));
  const int max_prompt = o.prompt_lens.back();
  const int max_batch = o.decode_batches.back();
  RuntimeOptions options;
  options.num_kv_pages = o.num_kv_pages;
  options.max_num_seqs = max_batch;
  options.max_batched_tokens = std::max(o.chunk, max_batch * (kPageSize - 1));
  options.max_model_len = o.max_model_len > 0 ? o.max_model_len : max_prompt;
  options.gpu_memory_utilization = o.gpu_memory_utilization;
  options.enable_cuda_graphs = !o.enforce_eager;
  ASSIGN_OR_RETURN(options.dsa_prefill, parse_dsa_prefill_mode(o.dsa_prefill));
  const auto load_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(std::unique_ptr<Transformer> model,
                   Transformer::load(config, WeightSource::dummy(o.seed), *backend, options));
  const double load_seconds = seconds_since(load_start);
  const int pages_needed = pages_for_tokens(max_prompt, kPageSize) + max_batch;
  if (model->num_kv_pages() < pages_needed) {
    return resource_exhausted("the KV pool has " + std::to_string(model->num_kv_pages()) + " pages; the bench needs " +
                              std::to_string(pages_needed) + " (the longest prompt plus one page per sequence)");
  }

  RuntimeBench bench(o, *model, max_prompt);
  for (int i = 0; i < o.warmup; ++i) RETURN_IF_ERROR(bench.prefill(std::min(o.chunk, max_prompt)).status());

  std::filesystem::path config_file(o.config_path);
  std::string name = config_file.filename().string();
  if (name == "config.json" || name.empty()) name = config_file.parent_path().filename().string();
  for (const std::string suffix : {".config.json", ".json"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      name.resize(name.size() - suffix.size());
      break;
    }
  }
  nlohmann::json out = {{"config", o.config_path},
                        {"backend", std::string(backend->name())},
                        {"model_type", config.model_type},
                        {"dsa", config.dsa.has_value()},
                        {"dsa_prefill", o.dsa_prefill},
                        {"chunk", o.chunk},
                        {"decode_graphs", model->num_decode_graphs()},
                        {"max_model_len", options.max_model_len},
                        {"kv_pages", model->num_kv_pages()},
                        {"load_seconds", load_seconds},
                        {"timing", "host wall time around Transformer::forward (returns with logits on the host)"},
                        {"decode_kv", "B sequences share the prompt's full pages; each owns one page for its tail"}};
  nlohmann::json ttft_rows = nlohmann::json::array();
  nlohmann::json decode_rows = nlohmann::json::array();
  std::vector<std::string> lines;
  char line[256];
  for (int length : o.prompt_lens) {
    std::vector<double> runs;
    for (int r = 0; r < o.ttft_repeats; ++r) {
      ASSIGN_OR_RETURN(double seconds, bench.prefill(length));
      runs.push_back(seconds);
    }
    const double ttft = median(runs);
    ttft_rows.push_back({{"prompt_tokens", length}, {"ttft_s", ttft}, {"runs_s", runs},
                         {"prefill_tokens_per_s", length / ttft}});
    std::snprintf(line, sizeof(line), "e2e %s TTFT  prompt %6d  chunk %5d  %9.3f s  (%.0f tok/s, median of %d)",
                  name.c_str(), length, o.chunk, ttft, length / ttft, o.ttft_repeats);
    lines.push_back(line);
    std::printf("%s\n", line);
    std::fflush(stdout);
    if (std::find(o.decode_contexts.begin(), o.decode_contexts.end(), length) == o.decode_contexts.end()) continue;
    for (int batch : o.decode_batches) {
      ASSIGN_OR_RETURN(double step, bench.decode(length, batch));
      decode_rows.push_back({{"context", length}, {"batch", batch}, {"step_ms", step * 1e3},
                             {"tokens_per_s", batch / step}});
      std::snprintf(line, sizeof(line), "e2e %s decode context %6d  B=%-3d  %9.3f ms/step  %8.1f tok/s", name.c_str(),
                    length, batch, step * 1e3, batch / step);
      lines.push_back(line);
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
  }
  out["ttft"] = ttft_rows;
  out["decode"] = decode_rows;
  std::printf("\n%s on %s: load %.1f s (dummy weights), %d KV pages; decode sequences share the prompt's full pages\n",
              name.c_str(), std::string(backend->name()).c_str(), load_seconds, model->num_kv_pages());
  for (const std::string& l : lines) std::printf("%s\n", l.c_str());
  if (!o.json_path.empty()) {
    FILE* f = std::fopen(o.json_path.c_str(), "w");
    if (f == nullptr) return unavailable("cannot write " + o.json_path);
    std::fputs(out.dump(1).c_str(), f);
    std::fclose(f);
  }
  return Status::Ok();
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) {
  longbow::StatusOr<longbow::BenchOptions> options = longbow::parse_options(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "longbow_runtime_bench: %s\n%s", options.status().message().c_str(), longbow::kUsage);
    return 2;
  }
  longbow::init_logging("info");
  longbow::Status status = longbow::run(*options);
  if (!status.ok()) {
    std::fprintf(stderr, "longbow_runtime_bench: %s\n", status.to_string().c_str());
    return 1;
  }
  return 0;
}
