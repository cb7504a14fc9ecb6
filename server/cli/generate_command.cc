#include "server/cli/generate_command.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/tensor_parallel.h"
#include "model/runtime/transformer.h"
#include "model/runtime/weight_source.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_factory.h"
#include "model/weights/safetensors.h"
#include "server/cli/flags.h"
#include "server/cli/model_path.h"
#include "server/engine/engine.h"

namespace longbow::cli {
namespace {

struct GenerateOptions {
  std::optional<std::string> model;
  std::optional<std::string> prompt;
  std::optional<std::string> prompt_ids;
  int max_tokens = 64;
  bool ignore_eos = false;
  std::string backend = "auto";
  int max_batched_tokens = 2048;
  std::string load_format = "auto";
  std::optional<std::string> tokenizer;
  double gpu_memory_utilization = 0.9;
  int num_kv_pages = 0;
  std::string dsa_prefill = "sparse";
  std::string log_level = "info";
  bool enforce_eager = false;
  int tensor_parallel_size = 1;
  bool enable_expert_parallel = false;
  bool help = false;
};

void add_flags(FlagSet& flags, GenerateOptions& o) {
  flags.add_optional_string("model", "DIR", "Hugging Face model directory (default: the built-in demo model)",
                            &o.model);
  flags.add_optional_string("prompt", "TEXT", "prompt text (tokenized with the model's tokenizer.json or tokenizer.model)",
                            &o.prompt);
  flags.add_optional_string("prompt-ids", "IDS", "prompt token ids, comma separated: 5,9,13", &o.prompt_ids);
  flags.add_int("max-tokens", "tokens to generate (default 64)", 1, 1 << 24, &o.max_tokens);
  flags.add_bool("ignore-eos", "keep generating past EOS tokens", &o.ignore_eos);
  flags.add_string("backend", "NAME", "cpu, cuda or auto (default auto)", &o.backend);
  flags.add_int("max-batched-tokens", "prompt tokens per prefill step (default 2048)", 1, 1 << 24,
                &o.max_batched_tokens);
  flags.add_string("load-format", "FORMAT",
                   "auto or safetensors (the checkpoint), or dummy (random weights on the device)", &o.load_format);
  flags.add_optional_string("tokenizer", "PATH", "tokenizer.json or tokenizer.model, or a directory holding one (default: the model's)",
                            &o.tokenizer);
  flags.add_fraction("gpu-memory-utilization", "share of the device's memory this process may use (default 0.9)",
                     0.0, 1.0, &o.gpu_memory_utilization);
  flags.add_int("num-kv-pages", "KV pages of 64 tokens (default 0: planned from memory)", 0, 1 << 30,
                &o.num_kv_pages);
  flags.add_string("dsa-prefill", "MODE", "DSA layers' prefill: sparse (exact DSA) or dense (default sparse)",
                   &o.dsa_prefill);
  flags.add_string("log-level", "LEVEL", "trace, debug, info, warn, error or off (default info; logs go to stderr)",
                   &o.log_level);
  flags.add_bool("enforce-eager", "run decode steps without CUDA graphs", &o.enforce_eager);
  flags.add_int("tensor-parallel-size", "ranks the model is sharded over (default 1; > 1 on the cpu backend)", 1,
                1 << 10, &o.tensor_parallel_size);
  flags.add_bool("enable-expert-parallel", "spread MoE experts whole over the ranks", &o.enable_expert_parallel);
  flags.add_bool("help", "show this help", &o.help);
}

std::string usage(const FlagSet& flags) {
  return std::string("usage: longbow generate [--model DIR] (--prompt TEXT | --prompt-ids 5,9,13) [flags]\n\n") +
         "Greedy generation from one prompt; stops at an EOS id unless --ignore-eos.\n"
         "With --prompt it prints the generated text (streamed), with --prompt-ids the generated ids on one\n"
         "line (an EOS that ends generation included).\n\nflags:\n" +
         flags.usage();
}

StatusOr<std::vector<TokenId>> parse_prompt_ids(const std::string& text) {
  std::vector<TokenId> ids;
  size_t begin = 0;
  while (begin <= text.size()) {
    size_t end = std::min(text.find(',', begin), text.size());
    std::string item = text.substr(begin, end - begin);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    TokenId id = 0;
    auto [stop, error] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || error != std::errc() || stop != item.data() + item.size() || id < 0) {
      return invalid_argument("--prompt-ids: '" + item + "' (item " + std::to_string(ids.size() + 1) +
                              ") is not a non-negative integer");
    }
    ids.push_back(id);
    begin = end + 1;
  }
  return ids;
}

// The tokenizer of a --prompt-ids run, which may have no tokenizer file: ids in, no text out.
class IdsOnlyTokenizer final : public Tokenizer {
 public:
  explicit IdsOnlyTokenizer(int vocab_size) : vocab_size_(vocab_size) {}
  std::vector<TokenId> encode(std::string_view) const override { return {}; }
  std::string decode(std::span<const TokenId>) const override { return {}; }
  StatusOr<std::string> decode_checked(std::span<const TokenId>) const override { return std::string(); }
  std::string token_bytes(TokenId) const override { return {}; }
  int vocab_size() const override { return vocab_size_; }
  std::string_view piece(TokenId) const override { return {}; }
  bool is_control(TokenId) const override { return false; }
  std::optional<TokenId> bos_id() const override { return std::nullopt; }
  std::optional<TokenId> eos_id() const override { return std::nullopt; }
  std::optional<TokenId> unk_id() const override { return std::nullopt; }

 private:
  int vocab_size_;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

Status run_generate(const GenerateOptions& o) {
  ASSIGN_OR_RETURN(ModelLocation location, resolve_model(o.model));
  ASSIGN_OR_RETURN(ModelConfig config, load_config(location));
  ASSIGN_OR_RETURN(LoadFormat format, parse_load_format(o.load_format));

  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<TokenId> prompt;
  if (o.prompt) {
    ASSIGN_OR_RETURN(std::string tokenizer_path, resolve_tokenizer(o.tokenizer, location));
    ASSIGN_OR_RETURN(tokenizer, load_tokenizer(tokenizer_path));
    if (config.bos_token_id) prompt.push_back(*config.bos_token_id);
    std::vector<TokenId> encoded = tokenizer->encode(*o.prompt);
    prompt.insert(prompt.end(), encoded.begin(), encoded.end());
  } else {
    ASSIGN_OR_RETURN(prompt, parse_prompt_ids(*o.prompt_ids));
  }
  if (prompt.empty()) return invalid_argument("the prompt is empty (and the model has no bos_token_id)");
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] >= config.vocab_size) {
      return invalid_argument("prompt token " + std::to_string(i) + " has id " + std::to_string(prompt[i]) +
                              ", outside the vocabulary of " + std::to_string(config.vocab_size));
    }
  }
  const int64_t total = static_cast<int64_t>(prompt.size()) + o.max_tokens;
  if (total > config.max_position_embeddings) {
    return out_of_range("the prompt (" + std::to_string(prompt.size()) + " tokens) plus --max-tokens " +
                        std::to_string(o.max_tokens) + " exceeds the model's context of " +
                        std::to_string(config.max_position_embeddings) + " tokens");
  }
  std::unique_ptr<Checkpoint> checkpoint;
  if (format != LoadFormat::kDummy) {
    ASSIGN_OR_RETURN(checkpoint, Checkpoint::open(location.dir));
  }
  // One sequence of `total` tokens: the runtime plans the pool for it (on the CPU exactly its pages).
  RuntimeOptions runtime_options;
  runtime_options.num_kv_pages = o.num_kv_pages;
  runtime_options.max_batched_tokens = static_cast<int>(std::min<int64_t>(o.max_batched_tokens, total));
  runtime_options.max_num_seqs = 1;
  runtime_options.enable_cuda_graphs = !o.enforce_eager;
  runtime_options.max_model_len = static_cast<int>(total);
  runtime_options.gpu_memory_utilization = o.gpu_memory_utilization;
  ASSIGN_OR_RETURN(runtime_options.dsa_prefill, parse_dsa_prefill_mode(o.dsa_prefill));
  ASSIGN_OR_RETURN(LoadedRuntime loaded,
                   load_runtime(config, checkpoint ? WeightSource(*checkpoint) : WeightSource::dummy(0), o.backend,
                                o.tensor_parallel_size, runtime_options, o.enable_expert_parallel));
  std::unique_ptr<Transformer>& model = loaded.transformer;

  // The engine runs the one request: chunked prefill, greedy decode, the KV manager's page groups.
  EngineConfig engine_config;
  engine_config.scheduler.max_batched_tokens = runtime_options.max_batched_tokens;
  engine_config.scheduler.max_num_seqs = 1;
  engine_config.max_waiting_requests = 1;
  engine_config.enable_prefix_caching = false;  // one request: nothing to share
  engine_config.max_model_len = static_cast<int>(total);
  engine_config.max_n = 1;
  engine_config.max_logprobs = 0;
  engine_config.default_seed = 1;  // greedy: the seed is never used
  IdsOnlyTokenizer ids_only(config.vocab_size);
  ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine,
                   Engine::create(engine_config, *model, tokenizer ? *tokenizer : ids_only));
  RETURN_IF_ERROR(engine->start());

  GenerateRequest request;
  request.prompt_tokens = prompt;
  request.sampling.temperature = 0.0f;
  request.sampling.max_tokens = o.max_tokens;
  request.sampling.ignore_eos = o.ignore_eos;
  const auto prefill_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(RequestHandle handle, engine->submit(std::move(request)));
  std::vector<TokenId> generated;
  double prefill_seconds = 0.0;
  auto decode_start = prefill_start;
  while (true) {
    std::optional<GenerateEvent> event = handle.events->next(std::chrono::seconds(60));
    if (!event) continue;  // a long step; the engine always ends a request with a last event
    if (!event->error.ok()) return event->error;
    if (generated.empty() && !event->token_ids.empty()) {
      prefill_seconds = seconds_since(prefill_start);  // the first token comes with the prompt's logits
      decode_start = std::chrono::steady_clock::now();
    }
    generated.insert(generated.end(), event->token_ids.begin(), event->token_ids.end());
    if (tokenizer && !event->text.empty()) {  // complete UTF-8 only (the engine's detokenizer)
      std::fwrite(event->text.data(), 1, event->text.size(), stdout);
      std::fflush(stdout);
    }
    if (event->last) break;
  }
  const double decode_seconds = seconds_since(decode_start);
  engine->stop();

  if (tokenizer) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
  } else {
    std::string line;
    for (TokenId id : generated) line += (line.empty() ? "" : " ") + std::to_string(id);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  spdlog::info("prefill: {} tokens in {:.3f} s ({:.1f} tok/s); decode: {} tokens in {:.3f} s ({:.1f} tok/s)",
               prompt.size(), prefill_seconds, static_cast<double>(prompt.size()) / std::max(prefill_seconds, 1e-9),
               generated.size() - 1, decode_seconds,
               static_cast<double>(generated.size() - 1) / std::max(decode_seconds, 1e-9));
  return Status::Ok();
}

}  // namespace

int generate_main(std::span<const std::string> args) {
  GenerateOptions options;
  FlagSet flags;
  add_flags(flags, options);
  Status parsed = flags.parse(args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "longbow generate: %s (see longbow generate --help)\n", parsed.message().c_str());
    return 2;
  }
  if (options.help) {
    std::printf("%s", usage(flags).c_str());
    return 0;
  }
  if (options.prompt.has_value() == options.prompt_ids.has_value()) {
    std::fprintf(stderr,
                 "longbow generate: give exactly one of --prompt and --prompt-ids (see longbow generate --help)\n");
    return 2;
  }
  init_logging(options.log_level);
  Status status = run_generate(options);
  if (!status.ok()) {
    std::fprintf(stderr, "longbow generate: %s\n", status.to_string().c_str());
    return 1;
  }
  return 0;
}

}  // namespace longbow::cli
