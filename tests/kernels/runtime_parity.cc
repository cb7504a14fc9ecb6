// The CUDA runtime against the CPU runtime (and the transformers references where a fixture has
// them), run on the GPU machine from the bundle.
//
//   longbow_runtime_parity --data DIR [--json OUT.json]
//
// Every model directory under DIR/parity/* (transformers fixtures with expected.json) and DIR/demo-model
// is loaded twice, once per backend. Per prompt: the logits after the prompt (CUDA vs CPU, relative
// L2 within kLogitBudget), then greedy decoding of the same number of tokens on each backend
// independently. Tokens must be identical; a divergence passes only when it is a near-tie: at the
// first differing step the CPU's logits of the two candidates differ by less than kTieMargin
// (bf16 noise can swap them). Then the CUDA model runs again teacher-forced with the CPU's tokens,
// so every step is compared: logits within kStepLogitBudget and the argmax equal or a near-tie. A
// model with DSA layers (the demo model) runs twice, in each --dsa-prefill mode, with prompts of 200 and 700 tokens too (past its index_topk of 64, so the
// top-k selection is exercised), and a third time with index_topk raised past every context (the
// whole DSA path with every token selected). For DSA models the top-k selections of every row of
// every step (the last DSA layer) must also be identical: the demo indexer's scores have a wide gap
// (tools/demo_model/demo_indexer.h), so bf16 noise cannot move a token across the top-k boundary.
// Exit status 0 when every model passes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_file.h"
#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"

namespace longbow {
namespace {

constexpr double kLogitBudget = 2e-2;  // DESIGN §6: CUDA (bf16) vs CPU (fp32) logits ~1e-2
// Every decode step of the teacher-forced run: the bf16 K/V cache's rounding accumulates over the
// steps; the qwen2 fixture (q/k/v biases, larger activations) reaches 2.6e-2 (H100, session 3).
constexpr double kStepLogitBudget = 3e-2;
constexpr float kTieMargin = 0.05f;    // logit units; bf16 activations move logits by ~1e-2 here
// A fixture whose expected.json records transformers' own bf16 error (tests/model/make_fixtures.py:
// transformers_bf16_prompt_logits_rel_l2, its bf16 run against its fp32 run on the same prompts)
// may be more sensitive to bf16 rounding than the ones the fixed budgets were set on: its budgets
// grow to kBf16Margin times that error when it is larger (the prompt budget; the step budget keeps
// the same 1.5 ratio). CUDA is then held to "as close to fp32 as transformers' bf16, with margin".
constexpr double kBf16Margin = 1.5;

struct Prompt {
  std::vector<int32_t> ids;
  int generate = 0;
  std::vector<float> reference_logits;  // transformers' prompt logits, when the fixture has them
};

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size() || want.empty()) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    diff += d * d;
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::isfinite(diff) && norm > 0.0 ? std::sqrt(diff / norm) : INFINITY;
}

int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

// Runs a prompt then greedy decoding on one model; returns the prompt logits and every step's logits
// and, for a model with DSA layers, every step's top-k selection (the last DSA layer, all rows; empty
// for a step that attended densely).
struct Run {
  std::vector<float> prompt_logits;
  std::vector<int32_t> tokens;
  std::vector<std::vector<float>> step_logits;
  std::vector<std::vector<int32_t>> step_selections;
};

// The step's rows are positions [first_position, first_position + rows) of one sequence.
Status read_selection(Transformer& model, Run& run, int first_position, int rows) {
  if (!model.config().dsa) return Status::Ok();
  const int topk = model.config().dsa->topk;
  std::vector<int32_t> selection;
  Status status = model.read_dsa_selection(&selection);
  if (!status.ok() && status.code() != StatusCode::kNotFound) return status;
  std::vector<int32_t>& sorted = run.step_selections.emplace_back();
  if (!status.ok()) {
    // A dense step. When every context fits in index_topk that is the selection of every causal
    // token (dsa_attends_densely), which a runtime on a decode graph captured at a longer bound
    // computes sparsely: compare it as that set. Otherwise (the dense prefill option) there is none.
    if (first_position + rows > topk) return Status::Ok();
    for (int r = 0; r < rows; ++r) {
      const int visible = first_position + r + 1;
      sorted.insert(sorted.end(), static_cast<size_t>(topk - visible), -1);
      for (int j = 0; j < visible; ++j) sorted.push_back(j);
    }
    return Status::Ok();
  }
  const size_t k = static_cast<size_t>(topk);
  for (size_t row = 0; row * k < selection.size(); ++row) {  // each row as a set: ascending
    std::sort(selection.begin() + static_cast<ptrdiff_t>(row * k), selection.begin() + static_cast<ptrdiff_t>((row + 1) * k));
  }
  sorted = std::move(selection);
  return Status::Ok();
}

// forced empty: greedy (each step feeds its own argmax). Otherwise step k feeds forced[k] (teacher
// forcing with another run's tokens) while `tokens` still records this model's argmax.
StatusOr<Run> run_prompt(Transformer& model, const Prompt& prompt, std::span<const int32_t> table,
                         std::span<const int32_t> forced = {}) {
  Run run;
  std::vector<int32_t> sequence = prompt.ids;
  // The same pages for every cache group (each group has its own pool of num_kv_pages pages).
  const std::vector<std::span<const int32_t>> tables(model.cache_groups().size(), table);
  SequenceStep prefill{sequence, 0, tables, -1, true};
  RETURN_IF_ERROR(model.forward(std::span(&prefill, 1), &run.prompt_logits));
  RETURN_IF_ERROR(read_selection(model, run, 0, static_cast<int>(sequence.size())));
  run.tokens.push_back(argmax(run.prompt_logits));
  run.step_logits.push_back(run.prompt_logits);
  while (static_cast<int>(run.tokens.size()) < prompt.generate) {
    const size_t k = run.tokens.size() - 1;
    sequence.push_back(forced.empty() ? run.tokens.back() : forced[k]);
    std::vector<float> logits;
    SequenceStep decode{std::span(sequence).last(1), static_cast<int32_t>(sequence.size() - 1), tables, -1, true};
    RETURN_IF_ERROR(model.forward(std::span(&decode, 1), &logits));
    RETURN_IF_ERROR(read_selection(model, run, static_cast<int>(sequence.size()) - 1, 1));
    run.tokens.push_back(argmax(logits));
    run.step_logits.push_back(std::move(logits));
  }
  return run;
}

// The CUDA run teacher-forced with the CPU's tokens against the CPU run, at every step (the free
// runs can only be compared up to their first differing token).
struct ForcedComparison {
  int steps = 0;
  int same_argmax = 0;
  float widest_tie = 0.0f;       // the largest CPU logit gap among steps whose argmax differs
  double worst_logits = 0.0;     // the largest per-step logits relative L2
  size_t rows_compared = 0;      // DSA selection rows (every row of every step)
  size_t rows_differing = 0;
};

ForcedComparison compare_forced(const Run& cpu, const Run& cuda, int topk) {
  ForcedComparison c;
  for (size_t step = 0; step < cpu.tokens.size() && step < cuda.tokens.size(); ++step) {
    ++c.steps;
    c.worst_logits = std::max(c.worst_logits, relative_l2(cuda.step_logits[step], cpu.step_logits[step]));
    if (cpu.tokens[step] == cuda.tokens[step]) {
      ++c.same_argmax;
    } else {
      const std::vector<float>& l = cpu.step_logits[step];
      c.widest_tie = std::max(c.widest_tie, l[static_cast<size_t>(cpu.tokens[step])] -
                                                l[static_cast<size_t>(cuda.tokens[step])]);
    }
  }
  const size_t k = static_cast<size_t>(topk);
  for (size_t step = 0; step < cpu.step_selections.size() && step < cuda.step_selections.size(); ++step) {
    const std::vector<int32_t>& a = cpu.step_selections[step];
    const std::vector<int32_t>& b = cuda.step_selections[step];
    if (a.size() != b.size()) {
      ++c.rows_differing;
      continue;
    }
    for (size_t row = 0; row * k < a.size(); ++row) {
      ++c.rows_compared;
      const auto first = static_cast<ptrdiff_t>(row * k), last = static_cast<ptrdiff_t>((row + 1) * k);
      if (!std::equal(a.begin() + first, a.begin() + last, b.begin() + first)) ++c.rows_differing;
    }
  }
  return c;
}

struct Budgets {
  double prompt = kLogitBudget;
  double step = kStepLogitBudget;
  double transformers_bf16 = 0.0;  // the worst recorded transformers bf16-vs-fp32 error, 0 if none
};

StatusOr<Budgets> budgets_for(const std::string& dir) {
  Budgets b;
  if (!std::filesystem::exists(dir + "/expected.json")) return b;
  ASSIGN_OR_RETURN(nlohmann::json doc, read_json_file(dir + "/expected.json"));
  for (const nlohmann::json& c : doc.value("cases", nlohmann::json::array())) {
    const auto it = c.find("transformers_bf16_prompt_logits_rel_l2");
    if (it != c.end() && it->is_number()) b.transformers_bf16 = std::max(b.transformers_bf16, it->get<double>());
  }
  b.prompt = std::max(kLogitBudget, kBf16Margin * b.transformers_bf16);
  b.step = b.prompt * (kStepLogitBudget / kLogitBudget);
  return b;
}

StatusOr<std::vector<Prompt>> prompts_for(const std::string& dir, const ModelConfig& config) {
  std::vector<Prompt> prompts;
  if (std::filesystem::exists(dir + "/expected.json")) {
    ASSIGN_OR_RETURN(nlohmann::json doc, read_json_file(dir + "/expected.json"));
    try {
      for (const nlohmann::json& c : doc.at("cases")) {
        Prompt p;
        p.ids = c.at("prompt_ids").get<std::vector<int32_t>>();
        p.generate = static_cast<int>(c.at("generated_ids").size());
        p.reference_logits = c.at("prompt_logits").get<std::vector<float>>();
        prompts.push_back(std::move(p));
      }
    } catch (const nlohmann::json::exception& e) {
      return invalid_argument(dir + "/expected.json: " + e.what());
    }
  }
  // Random prompts at the odd lengths too (several KV pages, partial last pages).
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(0, config.vocab_size - 1);
  std::vector<int> lengths = {1, 63, 97, 300};
  if (config.dsa) lengths.insert(lengths.end(), {200, 700});
  for (int len : lengths) {
    Prompt p;
    for (int i = 0; i < len; ++i) p.ids.push_back(pick(rng));
    p.generate = 16;
    prompts.push_back(std::move(p));
  }
  return prompts;
}

struct ModelResult {
  bool ok = true;
  nlohmann::json json;
};

// topk_override > 0 replaces the config's index_topk (a selection size, not a tensor shape).
StatusOr<ModelResult> check_model(const std::string& name, const std::string& dir, DsaPrefillMode mode,
                                  int topk_override) {
  ASSIGN_OR_RETURN(ModelConfig config, load_model_config(dir));
  if (topk_override > 0 && config.dsa) config.dsa->topk = topk_override;
  ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> checkpoint, Checkpoint::open(dir));
  ASSIGN_OR_RETURN(std::vector<Prompt> prompts, prompts_for(dir, config));
  ASSIGN_OR_RETURN(const Budgets budgets, budgets_for(dir));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> cpu, create_backend("cpu"));
  ASSIGN_OR_RETURN(std::unique_ptr<Backend> cuda, create_backend("cuda"));
  RETURN_IF_ERROR(cuda->check_supported(config));
  int longest = 1;
  for (const Prompt& p : prompts) longest = std::max(longest, static_cast<int>(p.ids.size()) + p.generate);
  RuntimeOptions options;
  options.num_kv_pages = pages_for_tokens(longest, kPageSize) + 1;
  options.max_batched_tokens = longest;
  options.max_num_seqs = 1;
  options.dsa_prefill = mode;
  ASSIGN_OR_RETURN(std::unique_ptr<Transformer> cpu_model, Transformer::load(config, *checkpoint, *cpu, options));
  ASSIGN_OR_RETURN(std::unique_ptr<Transformer> cuda_model, Transformer::load(config, *checkpoint, *cuda, options));
  // Pages in reverse order, so logical and physical positions differ.
  std::vector<int32_t> table(static_cast<size_t>(options.num_kv_pages));
  for (size_t i = 0; i < table.size(); ++i) table[i] = options.num_kv_pages - 1 - static_cast<int32_t>(i);

  ModelResult result;
  result.json = {{"model", name},
                 {"prompt_budget", budgets.prompt},
                 {"step_budget", budgets.step},
                 {"transformers_bf16_prompt_logits_rel_l2", budgets.transformers_bf16},
                 {"cases", nlohmann::json::array()}};
  for (size_t n = 0; n < prompts.size(); ++n) {
    const Prompt& prompt = prompts[n];
    ASSIGN_OR_RETURN(Run want, run_prompt(*cpu_model, prompt, table));
    ASSIGN_OR_RETURN(Run got, run_prompt(*cuda_model, prompt, table));
    const double prompt_error = relative_l2(got.prompt_logits, want.prompt_logits);
    bool case_ok = prompt_error <= budgets.prompt;
    std::string tokens_verdict = "identical";
    size_t diverge = 0;
    while (diverge < want.tokens.size() && diverge < got.tokens.size() && want.tokens[diverge] == got.tokens[diverge]) {
      ++diverge;
    }
    if (diverge < want.tokens.size()) {
      const std::vector<float>& cpu_logits = want.step_logits[diverge];
      const float gap = cpu_logits[static_cast<size_t>(want.tokens[diverge])] -
                        cpu_logits[static_cast<size_t>(got.tokens[diverge])];
      const bool near_tie = gap < kTieMargin;
      tokens_verdict = "diverge at step " + std::to_string(diverge) + " (cpu " + std::to_string(want.tokens[diverge]) +
                       ", cuda " + std::to_string(got.tokens[diverge]) + ", cpu logit gap " + std::to_string(gap) +
                       (near_tie ? ": near-tie)" : ": NOT a near-tie)");
      if (!near_tie) case_ok = false;
    }
    // Teacher-forced, every step: logits within budget, the argmax equal or a near-tie. For a DSA
    // model every row's selection must be identical too: the demo indexer separates its scores
    // widely (tools/demo_model/demo_indexer.h), so a differing row is a bug, not bf16 noise.
    ASSIGN_OR_RETURN(Run forced, run_prompt(*cuda_model, prompt, table, want.tokens));
    const ForcedComparison fc = compare_forced(want, forced, config.dsa ? config.dsa->topk : 1);
    const bool forced_ok = fc.worst_logits <= budgets.step && fc.widest_tie < kTieMargin;
    std::string forced_note = "; forced: argmax " + std::to_string(fc.same_argmax) + "/" + std::to_string(fc.steps) +
                              " equal, worst step logits " + std::to_string(fc.worst_logits);
    if (fc.same_argmax < fc.steps) forced_note += ", widest tie " + std::to_string(fc.widest_tie);
    if (config.dsa) {
      forced_note += ", selections " + std::to_string(fc.rows_differing) + " of " + std::to_string(fc.rows_compared) +
                     " rows differ";
    }
    if (!forced_ok || fc.rows_differing > 0) {
      case_ok = false;
      forced_note += " (FORCED FAIL)";
    }
    nlohmann::json c = {{"prompt_len", prompt.ids.size()},
                        {"generated", prompt.generate},
                        {"prompt_logits_rel_l2_cuda_vs_cpu", prompt_error},
                        {"tokens", tokens_verdict},
                        {"forced_steps", fc.steps},
                        {"forced_same_argmax", fc.same_argmax},
                        {"forced_widest_tie", fc.widest_tie},
                        {"forced_worst_step_logits_rel_l2", fc.worst_logits},
                        {"selection_rows_compared", fc.rows_compared},
                        {"selection_rows_differing", fc.rows_differing},
                        {"ok", case_ok}};
    std::string reference_note;
    if (!prompt.reference_logits.empty()) {
      const double vs_ref = relative_l2(got.prompt_logits, prompt.reference_logits);
      c["prompt_logits_rel_l2_cuda_vs_transformers"] = vs_ref;
      reference_note = ", vs transformers " + std::to_string(vs_ref);
    }
    std::printf("parity %-12s case %zu (prompt %4zu, %2d tokens): logits rel L2 %.3e (budget %.1e)%s; tokens %s%s%s\n",
                name.c_str(), n, prompt.ids.size(), prompt.generate, prompt_error, budgets.prompt,
                reference_note.c_str(), tokens_verdict.c_str(), forced_note.c_str(), case_ok ? "" : "  FAIL");
    result.ok = result.ok && case_ok;
    result.json["cases"].push_back(std::move(c));
  }
  result.json["ok"] = result.ok;
  return result;
}

int run_main(int argc, char** argv) {
  std::string data, json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--data" && i + 1 < argc) {
      data = argv[++i];
    } else if (arg == "--json" && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: longbow_runtime_parity --data DIR [--json OUT.json]\n");
      return 2;
    }
  }
  if (data.empty()) {
    std::fprintf(stderr, "longbow_runtime_parity: --data is required\n");
    return 2;
  }
  init_logging("warn");
  std::vector<std::pair<std::string, std::string>> models;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(data + "/parity", error)) {
    if (entry.is_directory()) models.emplace_back(entry.path().filename().string(), entry.path().string());
  }
  std::sort(models.begin(), models.end());
  if (std::filesystem::exists(data + "/demo-model/config.json")) models.emplace_back("demo", data + "/demo-model");
  if (models.empty()) {
    std::fprintf(stderr, "longbow_runtime_parity: no models under %s (parity/* or demo-model)\n", data.c_str());
    return 1;
  }
  nlohmann::json all = nlohmann::json::array();
  bool ok = true;
  std::vector<std::tuple<std::string, std::string, DsaPrefillMode, int>> runs;
  for (const auto& [name, dir] : models) {
    StatusOr<ModelConfig> config = load_model_config(dir);
    if (config.ok() && config->dsa) {
      runs.emplace_back(name + "-sparse", dir, DsaPrefillMode::kSparse, 0);
      runs.emplace_back(name + "-dense", dir, DsaPrefillMode::kDense, 0);
      runs.emplace_back(name + "-topkall", dir, DsaPrefillMode::kSparse, 4096);
    } else {
      runs.emplace_back(name, dir, DsaPrefillMode::kSparse, 0);
    }
  }
  size_t skipped = 0;
  for (const auto& [name, dir, mode, topk] : runs) {
    StatusOr<ModelResult> result = check_model(name, dir, mode, topk);
    if (!result.ok() && result.status().code() == StatusCode::kUnimplemented) {
      // A model the CUDA backend does not run yet: reported, not compared, not a pass.
      std::printf("parity %-12s SKIPPED (not run on this backend: %s)\n", name.c_str(),
                  result.status().message().c_str());
      all.push_back({{"model", name}, {"skipped", result.status().to_string()}});
      ++skipped;
      continue;
    }
    if (!result.ok()) {
      std::printf("parity %-12s ERROR %s  FAIL\n", name.c_str(), result.status().to_string().c_str());
      all.push_back({{"model", name}, {"ok", false}, {"error", result.status().to_string()}});
      ok = false;
      continue;
    }
    ok = ok && result->ok;
    all.push_back(std::move(result->json));
  }
  std::printf("parity overall: %s (%zu runs of %zu models, %zu skipped)\n", ok ? "PASS" : "FAIL", runs.size(),
              models.size(), skipped);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << all.dump(1) << "\n";
  }
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) { return longbow::run_main(argc, argv); }
