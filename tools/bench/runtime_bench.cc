// End-to-end step timings of any model config through the real runtime: Transformer::load with dummy
// weights drawn on the device (`--load-format dummy`), then Transformer::forward driven as the engine
// drives it. No checkpoint needed, so Llama-3.1-8B's shape runs from its config.json alone.
//
//   longbow_runtime_bench --config CONFIG [--json OUT] [--backend auto] [--chunk 2048]
//       [--prompt-lens 8192,32768,131072] [--decode-contexts 8192,131072] [--decode-batches 1,8]
//       [--ttft-repeats 3] [--decode-steps 30] [--warmup 2] [--gpu-memory-utilization 0.9]
//       [--num-kv-pages 0] [--seed 0] [--enforce-eager] [--dsa-prefill sparse|dense] [--max-model-len 0]
//       [--plan-only]
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
//
// Cache groups (model/kv_cache/cache_spec.h): each paged group gets its own block tables. A full group
// maps page i of the prompt to pool page 1 + i (page 0 is the null page). A window group of W tokens
// keeps only the pages a step can read: entries behind the window are kNullPage, as the KV manager
// leaves them, and the live ones cycle through a ring of window_live_pages_bound(W, chunk) + 2 pool
// pages, so a 128K prompt of a local/global model needs a few dozen pages in its window groups.
// --plan-only loads the model, prints and writes the memory plan (pages per group, how many
// max_model_len sequences fit) and stops: the memory comparison of a hybrid model against its
// all-global variant at a context that may not fit the latter.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/json_file.h"
#include "common/logging.h"
#include "common/status.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/cache_spec.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/kv_cache/window_pages.h"
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
  bool plan_only = false;      // print the memory plan and stop
  std::string dsa_prefill = "sparse";  // DSA layers' prefill (RuntimeOptions::dsa_prefill)
};

constexpr const char* kUsage =
    "usage: longbow_runtime_bench --config CONFIG [--json OUT] [--backend auto|cpu|cuda] [--chunk 2048]\n"
    "    [--prompt-lens 8192,32768,131072] [--decode-contexts 8192,131072] [--decode-batches 1,8]\n"
    "    [--ttft-repeats 3] [--decode-steps 30] [--warmup 2] [--gpu-memory-utilization 0.9]\n"
    "    [--num-kv-pages 0] [--seed 0] [--enforce-eager] [--dsa-prefill sparse|dense] [--max-model-len 0]\n"
    "    [--plan-only]\n";

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
    if (flag == "--plan-only") {
      o.plan_only = true;
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

// Where one paged cache group keeps the bench's tokens (see the file comment): pool page ids for
// logical page i of the prompt, and for the private tail page of decode sequence b.
class GroupPages {
 public:
  GroupPages(const CacheGroup& group, int chunk, int max_prompt)
      : window_(group.window),
        ring_(group.window > 0 ? static_cast<int>(window_live_pages_bound(group.window, chunk, kPageSize)) + 2
                               : pages_for_tokens(max_prompt, kPageSize)) {}

  // Entries [0, pages) of a table whose first query sits at position first_query.
  std::vector<int32_t> table(int pages, int first_query) const {
    const int64_t behind = pages_behind_window(first_query, window_, kPageSize);
    std::vector<int32_t> out(static_cast<size_t>(pages));
    for (int i = 0; i < pages; ++i) out[static_cast<size_t>(i)] = i < behind ? kNullPage : 1 + i % ring_;
    return out;
  }
  int32_t private_page(int b) const { return 1 + ring_ + b; }
  // Pool pages the bench uses: the null page, the prompt's (ring) pages, one private page per sequence.
  int pages_needed(int max_batch) const { return 1 + ring_ + max_batch; }

 private:
  int window_;
  int ring_;  // pool pages cycled through by the prompt (all of its pages for a full group)
};

class RuntimeBench {
 public:
  RuntimeBench(const BenchOptions& options, Transformer& model, int max_prompt) : o_(options), model_(model) {
    for (const CacheGroup& g : model.cache_groups()) groups_.emplace_back(g, options.chunk, max_prompt);
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> id(0, model.config().vocab_size - 1);
    tokens_.resize(static_cast<size_t>(max_prompt));
    for (int32_t& t : tokens_) t = id(rng);
  }

  // OK when every group's pool holds the pages the bench uses for `max_batch` sequences.
  Status check_pools(int max_batch) const {
    for (size_t g = 0; g < groups_.size(); ++g) {
      const int have = model_.num_pages(static_cast<int>(g));
      const int need = groups_[g].pages_needed(max_batch);
      if (have < need) {
        return resource_exhausted(fmt::format("cache group {} has {} pages; the bench needs {} (the null page, the "
                                              "longest prompt's live pages, one page per decode sequence)",
                                              g, have, need));
      }
    }
    return Status::Ok();
  }

  // Prefills tokens [0, length) of one sequence in chunks; returns seconds.
  StatusOr<double> prefill(int length) {
    std::vector<float> logits;
    std::vector<std::vector<int32_t>> tables(groups_.size());
    const auto start = std::chrono::steady_clock::now();
    for (int done = 0; done < length;) {
      const int n = std::min(o_.chunk, length - done);
      const int used = pages_for_tokens(done + n, kPageSize);
      SequenceStep step{std::span(tokens_).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done, {}, -1,
                        done + n == length};
      for (size_t g = 0; g < groups_.size(); ++g) {
        tables[g] = groups_[g].table(used, done);
        step.block_tables.emplace_back(tables[g]);
      }
      RETURN_IF_ERROR(model_.forward(std::span(&step, 1), &logits));
      done += n;
    }
    const double seconds = seconds_since(start);
    if (logits.size() != static_cast<size_t>(model_.config().vocab_size)) {
      return internal_error(fmt::format("prefill returned {} logits", logits.size()));
    }
    return seconds;
  }

  // Median seconds of one decode step of `batch` sequences at context `context` (see the file comment);
  // the prompt of `context` tokens must have been prefilled last.
  StatusOr<double> decode(int context, int batch) {
    const int cached = context - 1;
    const int shared_pages = cached / kPageSize;
    const int tail = cached - shared_pages * kPageSize;
    // tables[b][g]: sequence b's table in group g, the prompt's full pages then the private tail page.
    std::vector<std::vector<std::vector<int32_t>>> tables(static_cast<size_t>(batch));
    for (int b = 0; b < batch; ++b) {
      for (const GroupPages& group : groups_) {
        std::vector<int32_t> table = group.table(shared_pages, shared_pages * kPageSize);
        table.push_back(group.private_page(b));
        tables[static_cast<size_t>(b)].push_back(std::move(table));
      }
    }
    const auto step_for = [&](int b, std::span<const int32_t> tokens, int num_cached, bool want_logits) {
      SequenceStep step{tokens, num_cached, {}, -1, want_logits};
      for (const std::vector<int32_t>& table : tables[static_cast<size_t>(b)]) step.block_tables.emplace_back(table);
      return step;
    };
    std::vector<float> logits;
    std::vector<SequenceStep> steps;
    if (tail > 0) {  // each private page gets the prompt's partial last page
      for (int b = 0; b < batch; ++b) {
        steps.push_back(step_for(
            b, std::span(tokens_).subspan(static_cast<size_t>(shared_pages) * kPageSize, static_cast<size_t>(tail)),
            shared_pages * kPageSize, false));
      }
      RETURN_IF_ERROR(model_.forward(steps, &logits));
    }
    steps.clear();
    for (int b = 0; b < batch; ++b) {
      steps.push_back(step_for(b, std::span(tokens_).subspan(static_cast<size_t>(b), 1), cached, true));
    }
    std::vector<double> times;
    for (int i = 0; i < o_.warmup + o_.decode_steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(model_.forward(steps, &logits));
      if (i >= o_.warmup) times.push_back(seconds_since(start));
    }
    if (logits.size() != static_cast<size_t>(batch) * static_cast<size_t>(model_.config().vocab_size)) {
      return internal_error(fmt::format("decode returned {} logits", logits.size()));
    }
    return median(times);
  }

 private:
  const BenchOptions& o_;
  Transformer& model_;
  std::vector<GroupPages> groups_;  // in cache_groups() order
  std::vector<int32_t> tokens_;
};

// The memory plan as the load made it: pages per group, and how many sequences of max_model_len
// tokens (and their tokens) fit, the scarcest group deciding.
nlohmann::json memory_plan(const Transformer& model, const RuntimeOptions& options) {
  GroupDemand demand;
  demand.max_model_len = options.max_model_len;
  demand.max_batched_tokens = options.max_batched_tokens;
  demand.max_num_seqs = options.max_num_seqs;
  demand.page_size = kPageSize;
  nlohmann::json groups = nlohmann::json::array();
  double sequences = -1;
  int64_t kv_bytes = 0;
  for (size_t g = 0; g < model.cache_groups().size(); ++g) {
    const CacheGroup& group = model.cache_groups()[g];
    const int pages = model.num_pages(static_cast<int>(g));
    const int64_t demand_pages = pages_for_tokens(group_demand_tokens(group, demand), kPageSize);
    const double fit = static_cast<double>(pages - 1) / static_cast<double>(demand_pages);
    sequences = sequences < 0 ? fit : std::min(sequences, fit);
    kv_bytes += group.bytes_per_page * pages;
    groups.push_back({{"window", group.window}, {"layers", describe_layer_ranges(group.layers)},
                      {"pages", pages}, {"bytes_per_page", group.bytes_per_page},
                      {"demand_tokens_per_sequence", group_demand_tokens(group, demand)}, {"sequences_fit", fit}});
  }
  return {{"groups", groups},
          {"kv_gib", static_cast<double>(kv_bytes) / double(1 << 30)},
          {"max_model_len", options.max_model_len},
          {"sequences_fit", sequences},
          {"tokens_fit", sequences * static_cast<double>(options.max_model_len)}};
}

Status write_json(const std::string& path, const nlohmann::json& doc) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return unavailable(fmt::format("cannot write {}", path));
  std::fputs(doc.dump(1).c_str(), f);
  std::fclose(f);
  return Status::Ok();
}

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
  for (const CacheGroup& group : model->cache_groups()) {
    if (group.is_state) return unimplemented("the runtime bench drives paged cache groups only (no state slots yet)");
  }
  const nlohmann::json plan = memory_plan(*model, options);
  std::printf("memory plan at max_model_len %d: %.2f sequences fit (%.0f tokens), KV %.2f GiB\n", options.max_model_len,
              plan["sequences_fit"].get<double>(), plan["tokens_fit"].get<double>(), plan["kv_gib"].get<double>());
  for (const nlohmann::json& g : plan["groups"]) {
    std::printf("  window %5d  layers %-24s %8d pages  %6.2f sequences fit\n", g["window"].get<int>(),
                g["layers"].get<std::string>().c_str(), g["pages"].get<int>(), g["sequences_fit"].get<double>());
  }
  std::fflush(stdout);

  RuntimeBench bench(o, *model, max_prompt);
  const Status pools = o.plan_only ? Status::Ok() : bench.check_pools(max_batch);
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
                        {"decode_kv", "B sequences share the prompt's full pages; each owns one page for its tail"},
                        {"memory_plan", plan}};
  if (o.plan_only || !pools.ok()) {
    if (!o.json_path.empty()) RETURN_IF_ERROR(write_json(o.json_path, out));
    return pools;
  }
  for (int i = 0; i < o.warmup; ++i) RETURN_IF_ERROR(bench.prefill(std::min(o.chunk, max_prompt)).status());
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
  if (!o.json_path.empty()) RETURN_IF_ERROR(write_json(o.json_path, out));
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
