#include "server/cli/serve_command.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/json_file.h"
#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/tensor_parallel.h"
#include "model/runtime/transformer.h"
#include "model/runtime/weight_source.h"
#include "model/tokenizer/chat/chat_template.h"
#include "server/frontend/tools/tool_call_parser.h"
#include "server/frontend/tools/tool_request.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/tokenizer_factory.h"
#include "model/weights/safetensors.h"
#include "server/cli/flags.h"
#include "server/cli/model_path.h"
#include "server/engine/engine.h"
#include "server/frontend/grpc/grpc_server.h"
#include "server/frontend/http/http_server.h"
#include "server/frontend/serving_context.h"

namespace longbow::cli {
namespace {

using nlohmann::json;

// Dummy weights (--load-format dummy) are drawn from this seed, so two servers of one shape agree.
constexpr uint64_t kDummyWeightSeed = 0;

struct ServeConfig {
  std::optional<std::string> model;  // unset: the built-in demo model
  std::string served_model_name;     // empty: the model directory's name
  std::string host = "127.0.0.1";
  int port = 8000;       // 0: any free port
  int grpc_port = 8001;  // 0: any free port
  std::string api_key;   // empty: no authentication
  std::string backend = "auto";
  std::string chat_template;  // empty: the model's (tokenizer_config.json or chat_template.jinja)
  std::string dsa_prefill = "sparse";  // DSA layers' prefill: sparse or dense
  std::string tool_call_parser = "auto";  // auto (from the chat template), none, or a parser's name
  std::string allowed_origins;  // CORS: comma-separated origins, or "*"; empty: off
  int max_num_seqs = 256;
  int max_batched_tokens = 2048;
  int max_waiting_requests = 1024;
  int max_model_len = 0;    // 0: the model's max_position_embeddings
  std::string load_format = "auto";  // auto, safetensors or dummy
  std::string tokenizer;             // empty: the model directory's tokenizer.json or tokenizer.model
  double gpu_memory_utilization = 0.9;
  int num_kv_pages = 0;     // 0: planned from memory (model/runtime/memory_plan.h)
  int kv_cache_tokens = 0;  // the same as num_kv_pages, in tokens (rounded up to whole pages)
  int http_threads = 4;              // REST worker threads (parsing, tokenizing); connections cost none
  int http_max_connections = 8192;  // open HTTP connections; more are refused with 503
  int http_keep_alive_timeout = 5;  // seconds a keep-alive connection may sit idle (uvicorn's --timeout-keep-alive)
  int max_body_mib = 32;
  int drain_timeout = 30;  // seconds
  std::string log_level = "info";
  bool enforce_eager = false;    // decode steps without CUDA graphs
  // Where tokens are sampled: device (the backend's sample op: on CUDA only token ids and the asked
  // logprobs reach the host), host (logits downloaded every step and sampled there, the path before
  // device sampling; for comparison), auto (= device).
  std::string sampling = "auto";
  int cuda_graph_max_bs = 256;   // largest decode batch run as a CUDA graph
  int tensor_parallel_size = 1;  // ranks the model is sharded over (vLLM's --tensor-parallel-size)
  bool enable_expert_parallel = false;  // MoE experts spread whole over the ranks
};

// Reads the JSON config file into `config`. Keys are the flag names with '_' for '-'; an unknown
// key or a value of the wrong type is INVALID_ARGUMENT naming it.
Status apply_config_file(const std::string& path, ServeConfig* config) {
  ASSIGN_OR_RETURN(json doc, read_json_file(path));
  if (!doc.is_object()) return invalid_argument(path + ": the config must be a JSON object");
  std::map<std::string, std::string*> strings = {
      {"served_model_name", &config->served_model_name}, {"host", &config->host},
      {"api_key", &config->api_key},                     {"backend", &config->backend},
      {"chat_template", &config->chat_template},         {"log_level", &config->log_level},
      {"load_format", &config->load_format},             {"tokenizer", &config->tokenizer},
      {"dsa_prefill", &config->dsa_prefill},             {"tool_call_parser", &config->tool_call_parser},
      {"allowed_origins", &config->allowed_origins}};
  std::map<std::string, int*> ints = {
      {"port", &config->port},
      {"grpc_port", &config->grpc_port},
      {"max_num_seqs", &config->max_num_seqs},
      {"max_batched_tokens", &config->max_batched_tokens},
      {"max_waiting_requests", &config->max_waiting_requests},
      {"max_model_len", &config->max_model_len},
      {"kv_cache_tokens", &config->kv_cache_tokens},
      {"num_kv_pages", &config->num_kv_pages},
      {"http_threads", &config->http_threads},
      {"http_max_connections", &config->http_max_connections},
      {"http_keep_alive_timeout", &config->http_keep_alive_timeout},
      {"max_body_mib", &config->max_body_mib},
      {"drain_timeout", &config->drain_timeout},
      {"cuda_graph_max_bs", &config->cuda_graph_max_bs},
      {"tensor_parallel_size", &config->tensor_parallel_size}};
  for (const auto& [key, value] : doc.items()) {
    if (key == "model") {
      if (!value.is_string()) return invalid_argument(path + ": \"model\" must be a string");
      config->model = value.get<std::string>();
    } else if (auto s = strings.find(key); s != strings.end()) {
      if (!value.is_string()) return invalid_argument(path + ": \"" + key + "\" must be a string");
      *s->second = value.get<std::string>();
    } else if (key == "gpu_memory_utilization") {
      if (!value.is_number() || !(value.get<double>() > 0.0 && value.get<double>() <= 1.0)) {
        return invalid_argument(path + ": \"gpu_memory_utilization\" must be a number in (0, 1]");
      }
      config->gpu_memory_utilization = value.get<double>();
    } else if (auto i = ints.find(key); i != ints.end()) {
      if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > (1 << 30)) {
        return invalid_argument(path + ": \"" + key + "\" must be a non-negative integer");
      }
      *i->second = static_cast<int>(value.get<int64_t>());
    } else {
      return invalid_argument(path + ": unknown key \"" + key + "\"");
    }
  }
  return Status::Ok();
}

void add_flags(FlagSet& flags, ServeConfig& c, std::optional<std::string>* config_file, bool* help) {
  flags.add_optional_string("config", "FILE", "JSON config (configs/*.json); flags override it", config_file);
  flags.add_optional_string("model", "DIR", "Hugging Face model directory (default: the built-in demo model)",
                            &c.model);
  flags.add_string("served-model-name", "NAME", "the model id clients use (default: the directory name)",
                   &c.served_model_name);
  flags.add_string("host", "ADDR", "address both APIs listen on (default 127.0.0.1)", &c.host);
  flags.add_int("port", "HTTP port (default 8000; 0: any free port)", 0, 65535, &c.port);
  flags.add_int("grpc-port", "gRPC port (default 8001; 0: any free port)", 0, 65535, &c.grpc_port);
  flags.add_string("api-key", "KEY", "require \"Authorization: Bearer KEY\" (default: no key)", &c.api_key);
  flags.add_string("backend", "NAME", "cpu, cuda or auto (default auto)", &c.backend);
  flags.add_string("chat-template", "FILE|TEMPLATE",
                   "a Jinja chat template file, or the template itself (default: the model's)", &c.chat_template);
  flags.add_string("allowed-origins", "ORIGINS",
                   "CORS: comma-separated origins that browsers may call the API from, or * for any (default: "
                   "none, no CORS headers)",
                   &c.allowed_origins);
  flags.add_string("tool-call-parser", "NAME",
                   "how tool calls are read from the model's output: hermes, llama3_json, deepseek_v3, mistral, "
                   "none, or auto (from the chat template; default)",
                   &c.tool_call_parser);
  flags.add_string("dsa-prefill", "MODE", "DSA layers' prefill: sparse (exact DSA) or dense (default sparse)",
                   &c.dsa_prefill);
  flags.add_int("max-num-seqs", "sequences running at once (default 256)", 1, 1 << 20, &c.max_num_seqs);
  flags.add_int("max-batched-tokens", "tokens per engine step (default 2048)", 1, 1 << 24, &c.max_batched_tokens);
  flags.add_int("max-waiting-requests", "queued requests before 429 (default 1024)", 1, 1 << 24,
                &c.max_waiting_requests);
  flags.add_int("max-model-len", "context limit, prompt + output (default: the model's)", 0, 1 << 30,
                &c.max_model_len);
  flags.add_string("load-format", "FORMAT",
                   "auto or safetensors (the checkpoint), or dummy (random weights on the device, for benchmarks)",
                   &c.load_format);
  flags.add_string("tokenizer", "PATH",
                   "tokenizer.json or tokenizer.model, or a directory holding one (default: the model's)", &c.tokenizer);
  flags.add_fraction("gpu-memory-utilization", "share of the device's memory this process may use (default 0.9)",
                     0.0, 1.0, &c.gpu_memory_utilization);
  flags.add_int("num-kv-pages", "KV pages of 64 tokens (default 0: planned from memory; CPU at most 4 GiB)", 0,
                1 << 30, &c.num_kv_pages);
  flags.add_int("kv-cache-tokens", "--num-kv-pages in tokens, rounded up to whole pages (default 0: planned)", 0,
                1 << 30, &c.kv_cache_tokens);
  flags.add_int("http-threads", "REST worker threads that parse and tokenize requests (default 4)", 1, 1 << 12,
                &c.http_threads);
  flags.add_int("http-max-connections", "open HTTP connections; more get 503 (default 8192)", 1, 1 << 20,
                &c.http_max_connections);
  flags.add_int("http-keep-alive-timeout", "seconds an idle keep-alive connection stays open (default 5)", 1, 86400,
                &c.http_keep_alive_timeout);
  flags.add_int("max-body-mib", "largest accepted request body in MiB (default 32)", 1, 4096, &c.max_body_mib);
  flags.add_int("drain-timeout", "seconds SIGTERM waits for in-flight requests (default 30)", 0, 86400,
                &c.drain_timeout);
  flags.add_string("log-level", "LEVEL", "trace, debug, info, warn, error or off (default info)", &c.log_level);
  flags.add_bool("enforce-eager", "run decode steps without CUDA graphs", &c.enforce_eager);
  flags.add_string("sampling", "WHERE",
                   "device (the backend samples; only token ids and asked logprobs reach the host), host (logits "
                   "to the host every step) or auto (default: device)",
                   &c.sampling);
  flags.add_int("cuda-graph-max-bs", "largest decode batch run as a CUDA graph (default 256)", 1, 1 << 20,
                &c.cuda_graph_max_bs);
  flags.add_int("tensor-parallel-size", "ranks the model is sharded over by heads, MLP rows and vocabulary "
                "(default 1; > 1 runs on the cpu backend until the NCCL path lands)", 1, 1 << 10,
                &c.tensor_parallel_size);
  flags.add_bool("enable-expert-parallel", "spread MoE experts whole over the tensor-parallel ranks instead of "
                 "splitting each by rows", &c.enable_expert_parallel);
  flags.add_bool("help", "show this help", help);
}

json effective_config(const ServeConfig& c, const std::string& model_dir) {
  return json{{"model", model_dir},
              {"served_model_name", c.served_model_name},
              {"host", c.host},
              {"port", c.port},
              {"grpc_port", c.grpc_port},
              {"api_key", c.api_key.empty() ? "" : "<redacted>"},
              {"backend", c.backend},
              {"chat_template", c.chat_template.empty() ? "<model>" : c.chat_template.substr(0, 200)},
              {"dsa_prefill", c.dsa_prefill},
              {"tool_call_parser", c.tool_call_parser},
              {"allowed_origins", c.allowed_origins},
              {"max_num_seqs", c.max_num_seqs},
              {"max_batched_tokens", c.max_batched_tokens},
              {"max_waiting_requests", c.max_waiting_requests},
              {"max_model_len", c.max_model_len},
              {"load_format", c.load_format},
              {"tokenizer", c.tokenizer.empty() ? "<model>" : c.tokenizer},
              {"gpu_memory_utilization", c.gpu_memory_utilization},
              {"num_kv_pages", c.num_kv_pages},
              {"kv_cache_tokens", c.kv_cache_tokens},
              {"http_threads", c.http_threads},
              {"http_max_connections", c.http_max_connections},
              {"http_keep_alive_timeout", c.http_keep_alive_timeout},
              {"max_body_mib", c.max_body_mib},
              {"drain_timeout", c.drain_timeout},
              {"log_level", c.log_level},
              {"enforce_eager", c.enforce_eager},
              {"sampling", c.sampling},
              {"cuda_graph_max_bs", c.cuda_graph_max_bs},
              {"tensor_parallel_size", c.tensor_parallel_size},
              {"enable_expert_parallel", c.enable_expert_parallel}};
}

// Everything the engine runs on; destroyed in reverse order of construction.
struct LoadedModel {
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Transformer> runtime;
  std::unique_ptr<Engine> engine;
  ServedModel served;
};

// --num-kv-pages, or --kv-cache-tokens in pages; 0 leaves the pool to the runtime's memory plan.
StatusOr<int> explicit_kv_pages(const ServeConfig& c) {
  if (c.num_kv_pages > 0 && c.kv_cache_tokens > 0) {
    return invalid_argument("give --num-kv-pages or --kv-cache-tokens, not both");
  }
  if (c.kv_cache_tokens > 0) return static_cast<int>(pages_for_tokens(c.kv_cache_tokens, kPageSize));
  return c.num_kv_pages;
}

std::optional<std::string> special_token(const json& doc, const char* key) {
  auto it = doc.find(key);
  if (it == doc.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// --chat-template: a readable file's content, else the flag's text itself.
std::string chat_template_flag(const std::string& flag) {
  std::error_code error;
  if (flag.size() < 4096 && std::filesystem::is_regular_file(flag, error)) {
    StatusOr<std::string> text = read_file(flag);
    if (text.ok()) return *text;
  }
  return flag;
}

// tokenizer_config.json: add_bos_token, the special tokens and the chat template (a string, or a
// list of {name, template} whose "default" entry counts); newer checkpoints keep the template in
// chat_template.jinja instead. --chat-template overrides both.
void read_tokenizer_config(const std::string& dir, const ServeConfig& c, ServedModel* served) {
  std::string source;
  StatusOr<json> doc = read_json_file(dir + "/tokenizer_config.json");
  if (doc.ok() && doc->is_object()) {
    if (auto add = doc->find("add_bos_token"); add != doc->end() && add->is_boolean()) served->add_bos = add->get<bool>();
    served->chat_tokens.bos_token = special_token(*doc, "bos_token");
    served->chat_tokens.eos_token = special_token(*doc, "eos_token");
    served->chat_tokens.unk_token = special_token(*doc, "unk_token");
    served->chat_tokens.pad_token = special_token(*doc, "pad_token");
    if (auto tmpl = doc->find("chat_template"); tmpl != doc->end()) {
      if (tmpl->is_string()) {
        source = tmpl->get<std::string>();
      } else if (tmpl->is_array()) {
        for (const json& entry : *tmpl) {
          if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
              entry["template"].is_string()) {
            source = entry["template"].get<std::string>();
          }
        }
      }
    }
  }
  if (source.empty()) {
    StatusOr<std::string> jinja = read_file(dir + "/chat_template.jinja");
    if (jinja.ok()) source = *jinja;
  }
  if (!c.chat_template.empty()) source = chat_template_flag(c.chat_template);
  if (!source.empty()) {
    served->chat_template = ChatTemplate::parse(source);
    served->tool_arguments_as_objects = tools::template_takes_argument_objects(source);
    served->null_content_as_null = tools::template_takes_null_content(source);
  } else {
    served->chat_template = not_found("the model has no chat template (tokenizer_config.json chat_template or "
                                      "chat_template.jinja); start the server with --chat-template FILE to enable "
                                      "chat completions");
  }
}

// generation_config.json's eos_token_id (one id or a list) joins the config's EOS ids: Llama-3
// instruct models end turns with <|eot_id|>, which only generation_config.json names.
void add_generation_config_eos(const std::string& dir, ModelConfig* config) {
  StatusOr<json> doc = read_json_file(dir + "/generation_config.json");
  if (!doc.ok() || !doc->is_object()) return;
  auto eos = doc->find("eos_token_id");
  if (eos == doc->end()) return;
  std::vector<json> ids = eos->is_array() ? std::vector<json>(eos->begin(), eos->end()) : std::vector<json>{*eos};
  for (const json& id : ids) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= config->vocab_size) continue;
    const int value = id.get<int>();
    if (std::find(config->eos_token_ids.begin(), config->eos_token_ids.end(), value) == config->eos_token_ids.end()) {
      config->eos_token_ids.push_back(value);
    }
  }
}

// --tool-call-parser: auto takes the format the chat template writes (none when it writes no tool
// calls); none turns tool_choice "auto" off.
Status choose_tool_call_parser(const std::string& flag, ServedModel* served) {
  if (flag == "none") return Status::Ok();
  if (flag == "auto") {
    if (served->chat_template.ok()) served->tool_call_parser = tools::detect_tool_call_parser(served->chat_template->source());
  } else {
    StatusOr<std::unique_ptr<tools::ToolCallParser>> parser = tools::make_tool_call_parser(flag);
    if (!parser.ok()) return invalid_argument("--tool-call-parser: " + parser.status().message());
    served->tool_call_parser = std::move(*parser);
  }
  spdlog::info("tool calls: {}", served->tool_call_parser ? std::string(served->tool_call_parser->name())
                                                          : std::string("none (tool_choice \"auto\" refused)"));
  return Status::Ok();
}

StatusOr<LoadedModel> load_model(const ServeConfig& c, const ModelLocation& location) {
  LoadedModel m;
  if (c.tool_call_parser != "auto" && c.tool_call_parser != "none") {
    StatusOr<std::unique_ptr<tools::ToolCallParser>> parser = tools::make_tool_call_parser(c.tool_call_parser);
    if (!parser.ok()) return invalid_argument("--tool-call-parser: " + parser.status().message());
  }
  ASSIGN_OR_RETURN(ModelConfig config, load_config(location));
  ASSIGN_OR_RETURN(LoadFormat format, parse_load_format(c.load_format));
  ASSIGN_OR_RETURN(std::string tokenizer_path,
                   resolve_tokenizer(c.tokenizer.empty() ? std::nullopt : std::optional(c.tokenizer), location));
  ASSIGN_OR_RETURN(m.tokenizer, load_tokenizer(tokenizer_path));
  add_generation_config_eos(location.dir, &config);
  if (m.tokenizer->vocab_size() > config.vocab_size) {
    return invalid_argument("the tokenizer " + tokenizer_path + " has " + std::to_string(m.tokenizer->vocab_size()) +
                            " tokens, more than the model's vocab_size " + std::to_string(config.vocab_size));
  }
  if (c.sampling != "auto" && c.sampling != "device" && c.sampling != "host") {
    return invalid_argument(fmt::format("--sampling must be device, host or auto, got '{}'", c.sampling));
  }
  RuntimeOptions runtime_options;
  ASSIGN_OR_RETURN(runtime_options.num_kv_pages, explicit_kv_pages(c));
  runtime_options.max_batched_tokens = c.max_batched_tokens;
  runtime_options.max_num_seqs = c.max_num_seqs;
  runtime_options.enable_cuda_graphs = !c.enforce_eager;
  runtime_options.cuda_graph_max_bs = c.cuda_graph_max_bs;
  runtime_options.max_model_len = c.max_model_len;
  runtime_options.gpu_memory_utilization = c.gpu_memory_utilization;
  spdlog::info("loading {} ({} weights) on the {} backend", location.config_path, load_format_name(format),
               c.backend);
  if (format != LoadFormat::kDummy) {
    ASSIGN_OR_RETURN(m.checkpoint, Checkpoint::open(location.dir));
  }
  const WeightSource weights = m.checkpoint ? WeightSource(*m.checkpoint) : WeightSource::dummy(kDummyWeightSeed);
  ASSIGN_OR_RETURN(LoadedRuntime loaded,
                   load_runtime(config, weights, c.backend, c.tensor_parallel_size, runtime_options,
                                                 c.enable_expert_parallel));
  m.backend = std::move(loaded.backend);
  m.runtime = std::move(loaded.transformer);

  EngineConfig engine_config;
  engine_config.scheduler.max_batched_tokens = c.max_batched_tokens;
  engine_config.scheduler.max_num_seqs = c.max_num_seqs;
  engine_config.max_waiting_requests = c.max_waiting_requests;
  engine_config.max_model_len = c.max_model_len;
  engine_config.device_sampling = c.sampling != "host";
  spdlog::info("sampling on the {} (--sampling {})", engine_config.device_sampling ? "backend" : "host", c.sampling);
  ASSIGN_OR_RETURN(m.engine, Engine::create(engine_config, *m.runtime, *m.tokenizer));
  RETURN_IF_ERROR(m.engine->start());

  m.served.id = c.served_model_name.empty() ? location.name : c.served_model_name;
  m.served.created =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  m.served.max_model_len = m.engine->limits().max_model_len;
  m.served.vocab_size = config.vocab_size;
  read_tokenizer_config(std::filesystem::path(tokenizer_path).parent_path().string(), c, &m.served);
  RETURN_IF_ERROR(choose_tool_call_parser(c.tool_call_parser, &m.served));
  return m;
}

std::string signal_name(int number) { return number == SIGINT ? "SIGINT" : number == SIGTERM ? "SIGTERM" : "signal"; }

// Each HTTP connection is a descriptor: lift the soft limit to the hard one (many systems default
// to 1024 soft) so that the connection cap, not EMFILE, is what refuses clients.
void raise_open_file_limit(int max_connections) {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  limit.rlim_cur = limit.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < static_cast<rlim_t>(max_connections) + 256) {
    spdlog::warn("open-file limit {} is below --http-max-connections {} + 256", limit.rlim_cur, max_connections);
  }
}

int serve(const ServeConfig& c) {
  StatusOr<ModelLocation> location = resolve_model(c.model);
  if (!location.ok()) {
    spdlog::error("serve: {}", location.status().message());
    return 1;
  }
  spdlog::info("effective config: {}", effective_config(c, location->config_path).dump());

  // Signals: SIGTERM/SIGINT are taken by sigwait() on this thread (blocked everywhere, so every
  // thread started below inherits the mask); SIGPIPE is ignored (clients vanish mid-write).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ServingContext context(c.api_key);
  http::HttpOptions http_options;
  http_options.host = c.host;
  http_options.port = c.port;
  http_options.threads = c.http_threads;
  http_options.max_body_bytes = static_cast<size_t>(c.max_body_mib) << 20;
  http_options.limits.max_connections = c.http_max_connections;
  http_options.limits.idle_timeout = std::chrono::seconds(c.http_keep_alive_timeout);
  for (size_t start = 0; start < c.allowed_origins.size();) {
    size_t comma = c.allowed_origins.find(',', start);
    if (comma == std::string::npos) comma = c.allowed_origins.size();
    std::string origin = c.allowed_origins.substr(start, comma - start);
    origin.erase(0, origin.find_first_not_of(' '));
    origin.erase(origin.find_last_not_of(' ') + 1);
    if (!origin.empty()) http_options.allowed_origins.push_back(std::move(origin));
    start = comma + 1;
  }
  raise_open_file_limit(c.http_max_connections);
  http::HttpServer http_server(context, http_options);
  StatusOr<int> http_port = http_server.start();
  if (!http_port.ok()) {
    spdlog::error("serve: {}", http_port.status().message());
    return 1;
  }
  grpc_frontend::GrpcServer grpc_server(context, grpc_frontend::GrpcOptions{c.host, c.grpc_port});
  StatusOr<int> grpc_port = grpc_server.start();
  if (!grpc_port.ok()) {
    spdlog::error("serve: {}", grpc_port.status().message());
    return 1;
  }
  spdlog::info("listening: http={}:{} grpc={}:{}", c.host, *http_port, c.host, *grpc_port);

  StatusOr<LoadedModel> model = load_model(c, *location);
  if (!model.ok()) {
    spdlog::error("serve: cannot load the model: {}", model.status().to_string());
    return 1;
  }
  context.set_ready(model->engine.get(), model->tokenizer.get(), model->served);
  grpc_server.set_serving(true);
  spdlog::info("ready: serving \"{}\" (context {} tokens, chat template {})", model->served.id,
               model->served.max_model_len,
               context.model().chat_template.ok() ? "yes" : "none");

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  const auto drain_start = std::chrono::steady_clock::now();
  spdlog::info("{}: draining (up to {} s); a second signal exits at once", signal_name(signal_number), c.drain_timeout);
  std::thread([stop_signals] {
    int again = 0;
    sigwait(&stop_signals, &again);
    spdlog::warn("{} again: exiting without draining", signal_name(again));
    std::_Exit(1);
  }).detach();

  context.set_draining();
  grpc_server.set_serving(false);
  Status drained = model->engine->drain(std::chrono::seconds(c.drain_timeout));
  if (!drained.ok()) spdlog::warn("drain: {}", drained.message());
  // The engine is idle. HTTP responses still being written get the server's stop grace (slow
  // readers are then cut off); gRPC calls a second. Bounded whatever clients do.
  http_server.stop();
  grpc_server.shutdown(std::chrono::seconds(1));
  model->engine->stop();
  spdlog::info("stopped after draining for {:.2f} s",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - drain_start).count());
  return 0;
}

}  // namespace

int serve_main(std::span<const std::string> args) {
  // First pass: only --config, whose values become the defaults the flags then override.
  ServeConfig config;
  std::optional<std::string> config_file;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config_file = args[i + 1];
    if (args[i].rfind("--config=", 0) == 0) config_file = args[i].substr(9);
  }
  if (config_file) {
    if (Status applied = apply_config_file(*config_file, &config); !applied.ok()) {
      std::fprintf(stderr, "longbow serve: %s\n", applied.message().c_str());
      return 2;
    }
  }
  FlagSet flags;
  bool help = false;
  add_flags(flags, config, &config_file, &help);
  const std::optional<std::string> file_model = config.model;
  std::optional<std::string> positional_model;  // `longbow serve DIR`, as `vllm serve DIR`
  flags.set_positional("MODEL", &positional_model);
  if (Status parsed = flags.parse(args); !parsed.ok()) {
    std::fprintf(stderr, "longbow serve: %s (see longbow serve --help)\n", parsed.message().c_str());
    return 2;
  }
  if (positional_model) {
    if (config.model != file_model && *config.model != *positional_model) {
      std::fprintf(stderr, "longbow serve: the model is given twice ('%s' and --model '%s')\n",
                   positional_model->c_str(), config.model->c_str());
      return 2;
    }
    config.model = positional_model;
  }
  for (Status checked : {parse_load_format(config.load_format).status(), explicit_kv_pages(config).status()}) {
    if (!checked.ok()) {
      std::fprintf(stderr, "longbow serve: %s (see longbow serve --help)\n", checked.message().c_str());
      return 2;
    }
  }
  if (help) {
    std::printf("usage: longbow serve [DIR | --model DIR] [--config FILE] [flags]\n\n"
                "Serves the OpenAI REST API (/v1/completions, /v1/chat/completions, ...) and the gRPC API\n"
                "(proto/longbow.proto). SIGTERM drains in-flight requests, then exits 0.\n\nflags:\n%s",
                flags.usage().c_str());
    return 0;
  }
  init_logging(config.log_level);
  return serve(config);
}

}  // namespace longbow::cli
