#include "server/engine/engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <system_error>

#include "common/rng.h"
#include "server/structured/guided.h"
#include "server/structured/json_schema.h"

namespace longbow {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The model config's EOS tokens, plus the tokenizer's.
std::vector<TokenId> eos_tokens(const ModelConfig& model, const Tokenizer& tokenizer) {
  std::vector<TokenId> ids(model.eos_token_ids.begin(), model.eos_token_ids.end());
  if (auto eos = tokenizer.eos_id(); eos && std::find(ids.begin(), ids.end(), *eos) == ids.end()) ids.push_back(*eos);
  return ids;
}

// The KV cache of the runtime's cache groups, group g with the runtime's pool g.
KvCacheOptions kv_cache_options(const Transformer& runtime, bool enable_prefix_caching) {
  KvCacheOptions options;
  options.groups = runtime.cache_groups();
  for (size_t g = 0; g < options.groups.size(); ++g) {
    options.pool_sizes.push_back(runtime.num_pages(static_cast<int>(g)));
  }
  options.page_size = kPageSize;
  options.enable_prefix_caching = enable_prefix_caching;
  return options;
}

// The longest step of one sequence (a prefill chunk), which a window group's pages must cover.
int max_step_tokens(const SchedulerConfig& config) {
  return config.max_prefill_chunk > 0 ? std::min(config.max_prefill_chunk, config.max_batched_tokens)
                                      : config.max_batched_tokens;
}

}  // namespace

Status EngineConfig::validate() const {
  RETURN_IF_ERROR(scheduler.validate());
  if (max_waiting_requests < 1) {
    return invalid_argument("engine: max_waiting_requests must be >= 1, got " + std::to_string(max_waiting_requests));
  }
  if (max_model_len < 0) return invalid_argument("engine: max_model_len must be >= 0, got " + std::to_string(max_model_len));
  if (max_n < 1) return invalid_argument("engine: max_n must be >= 1, got " + std::to_string(max_n));
  if (max_logprobs < 0) return invalid_argument("engine: max_logprobs must be >= 0, got " + std::to_string(max_logprobs));
  return Status::Ok();
}

StatusOr<std::unique_ptr<Engine>> Engine::create(const EngineConfig& config, Transformer& runtime,
                                                 const Tokenizer& tokenizer) {
  RETURN_IF_ERROR(config.validate());
  const ModelConfig& model = runtime.config();
  if (model.vocab_size < 1) return invalid_argument("engine: the model's vocab_size is " + std::to_string(model.vocab_size));
  if (config.max_model_len == 0 && model.max_position_embeddings < 2) {
    return invalid_argument("engine: the model's max_position_embeddings is " +
                            std::to_string(model.max_position_embeddings) + "; set max_model_len");
  }
  StatusOr<std::unique_ptr<KvCacheManager>> kv =
      KvCacheManager::create(kv_cache_options(runtime, config.enable_prefix_caching));
  if (!kv.ok()) return kv.status().with_context("engine");
  return std::unique_ptr<Engine>(new Engine(config, runtime, tokenizer, std::move(kv).value()));
}

Engine::Engine(const EngineConfig& config, Transformer& runtime, const Tokenizer& tokenizer,
               std::unique_ptr<KvCacheManager> kv)
    : config_(config),
      runtime_(runtime),
      tokenizer_(tokenizer),
      kv_(std::move(kv)),
      scheduler_(config.scheduler, *kv_),
      eos_token_ids_(eos_tokens(runtime.config(), tokenizer)),
      host_sampler_(runtime.config().vocab_size) {
  const ModelConfig& model = runtime.config();
  limits_.vocab_size = model.vocab_size;
  limits_.max_model_len = config.max_model_len > 0 ? config.max_model_len : model.max_position_embeddings;
  limits_.max_kv_tokens = static_cast<int>(
      std::min<int64_t>(kv_->max_sequence_tokens(max_step_tokens(config.scheduler)), std::numeric_limits<int>::max()));
  limits_.max_n = config.max_n;
  limits_.max_logprobs = config.max_logprobs;
  default_seed_ = config.default_seed != 0
                      ? config.default_seed
                      : splitmix64_mix(static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  metrics_.update([&](MetricsSnapshot& m) { m.kv_pages_total = kv_->num_pages(); });
}

Engine::~Engine() { stop(); }

Status Engine::start() {
  if (started_) return internal_error("engine: start() called twice");
  try {
    thread_ = std::thread([this] { run_loop(); });
  } catch (const std::system_error& e) {
    return internal_error(std::string("engine: cannot start the engine thread: ") + e.what());
  }
  started_ = true;
  spdlog::info("engine: started ({} KV pages of {} tokens in {} cache groups, max_batched_tokens {}, max_num_seqs {}, "
               "prefix caching {})",
               kv_->num_pages(), kPageSize, kv_->groups().size(), config_.scheduler.max_batched_tokens,
               config_.scheduler.max_num_seqs,
               config_.enable_prefix_caching ? "on" : "off");
  return Status::Ok();
}

// ---- front-end side ---------------------------------------------------------------------------

StatusOr<RequestHandle> Engine::submit(GenerateRequest request) {
  auto reject = [this](Status status) {
    metrics_.update([](MetricsSnapshot& m) { ++m.requests_rejected; });
    return status;
  };
  if (!accepting_) return reject(unavailable("the engine is shutting down and accepts no new requests"));
  StatusOr<int> max_tokens = validate_request(request, limits_);
  if (!max_tokens.ok()) return reject(max_tokens.status());
  if (request.request_id.empty()) request.request_id = "req-" + std::to_string(next_request_number_++);
  {
    std::lock_guard<std::mutex> lock(ids_mutex_);
    if (live_ids_.count(request.request_id)) {
      return reject(invalid_argument("request id '" + request.request_id + "' is already in use"));
    }
    if (num_waiting_.load() >= config_.max_waiting_requests) {
      return reject(resource_exhausted("the engine is overloaded: " + std::to_string(num_waiting_.load()) +
                                       " requests are waiting (max_waiting_requests); retry later"));
    }
    ++num_waiting_;
    live_ids_.insert(request.request_id);
  }
  StatusOr<std::shared_ptr<const structured::Grammar>> grammar = compile_structured_output(request.sampling);
  if (!grammar.ok()) {
    std::lock_guard<std::mutex> lock(ids_mutex_);
    --num_waiting_;
    live_ids_.erase(request.request_id);
    return reject(grammar.status());
  }
  RequestHandle handle{request.request_id, std::make_shared<EventChannel>()};
  queue_.push(Submission{std::move(request), *max_tokens, std::move(grammar).value(), handle.events, Clock::now()});
  return handle;
}

void Engine::cancel(std::string_view request_id) {
  queue_.push(Cancellation{std::string(request_id), cancelled("request '" + std::string(request_id) + "' was cancelled")});
}

Status Engine::drain(std::chrono::milliseconds timeout) {
  accepting_ = false;
  std::unique_lock<std::mutex> lock(ids_mutex_);
  if (idle_cv_.wait_for(lock, timeout, [this] { return live_ids_.empty(); })) return Status::Ok();
  std::vector<std::string> left(live_ids_.begin(), live_ids_.end());
  lock.unlock();
  for (const std::string& id : left) {
    queue_.push(Cancellation{id, unavailable("the server is shutting down; request '" + id + "' was aborted")});
  }
  lock.lock();
  idle_cv_.wait_for(lock, std::chrono::seconds(5), [this] { return live_ids_.empty(); });
  return Status(StatusCode::kDeadlineExceeded,
                "drain: " + std::to_string(left.size()) + " requests were still running after " +
                    std::to_string(timeout.count()) + " ms and were aborted");
}

void Engine::stop() {
  std::lock_guard<std::mutex> stopping(stop_mutex_);
  accepting_ = false;
  stop_requested_ = true;
  queue_.wake();
  if (thread_.joinable()) thread_.join();
  // The engine thread is gone (or never ran): end what is left from this thread.
  for (EngineCommand& command : queue_.pop_all(std::chrono::milliseconds(0))) {
    if (auto* submission = std::get_if<Submission>(&command)) admit(std::move(*submission));
  }
  std::vector<std::string> ids;
  for (const auto& [id, state] : requests_) ids.push_back(id);
  for (const std::string& id : ids) finish_request(id, unavailable("the engine stopped"));
}

// ---- engine thread ----------------------------------------------------------------------------

void Engine::run_loop() {
  bool progressed = true;
  while (!stop_requested_) {
    // Block while there is nothing to do; otherwise only collect what has arrived.
    auto wait = scheduler_.idle() ? std::chrono::milliseconds(100)
                                  : (progressed ? std::chrono::milliseconds(0) : std::chrono::milliseconds(1));
    for (EngineCommand& command : queue_.pop_all(wait)) apply(std::move(command));
    if (stop_requested_) break;
    cancel_abandoned();
    progressed = false;
    if (!scheduler_.idle()) {
      int64_t steps_before = num_steps_;
      Status status = step();
      if (!status.ok()) spdlog::error("engine: step failed: {}", status.to_string());
      progressed = num_steps_ != steps_before;
    }
    update_gauges();
  }
}

void Engine::apply(EngineCommand command) {
  if (auto* submission = std::get_if<Submission>(&command)) {
    admit(std::move(*submission));
  } else {
    auto& cancellation = std::get<Cancellation>(command);
    if (requests_.count(cancellation.request_id)) finish_request(cancellation.request_id, cancellation.reason);
  }
}

StatusOr<std::shared_ptr<const structured::Grammar>> Engine::compile_structured_output(const SamplingParams& params) {
  if (!params.structured_output) return std::shared_ptr<const structured::Grammar>();
  const StructuredOutputSpec& spec = *params.structured_output;
  StatusOr<structured::Grammar> grammar = [&]() -> StatusOr<structured::Grammar> {
    switch (spec.kind) {
      case StructuredOutputSpec::Kind::kJsonObject: return structured::json_object_grammar();
      case StructuredOutputSpec::Kind::kJsonSchema: return structured::json_schema_to_grammar(spec.text);
      case StructuredOutputSpec::Kind::kRegex: return structured::regex_grammar(spec.text);
      case StructuredOutputSpec::Kind::kChoice: return structured::choice_grammar(spec.choices);
    }
    return internal_error("unknown structured output kind");
  }();
  if (!grammar.ok()) return grammar.status().with_context("structured output");
  std::call_once(vocabulary_once_, [this] {
    structured::VocabularyInfo info;
    info.token_bytes.reserve(static_cast<size_t>(tokenizer_.vocab_size()));
    for (TokenId id = 0; id < tokenizer_.vocab_size(); ++id) {
      info.token_bytes.push_back(tokenizer_.is_control(id) ? std::string() : tokenizer_.token_bytes(id));
    }
    // The model's logits may cover more ids than the tokenizer (padding): those are never allowed.
    info.token_bytes.resize(std::max<size_t>(info.token_bytes.size(), static_cast<size_t>(runtime_.config().vocab_size)));
    info.stop_ids.assign(eos_token_ids_.begin(), eos_token_ids_.end());
    vocabulary_ = std::make_shared<const structured::Vocabulary>(std::move(info));
  });
  return std::make_shared<const structured::Grammar>(std::move(grammar).value());
}

void Engine::admit(Submission submission) {
  GenerateRequest& request = submission.request;
  auto state = std::make_unique<RequestState>();
  state->id = request.request_id;
  state->params = request.sampling;
  state->max_tokens = submission.max_tokens;
  state->num_prompt_tokens = static_cast<int>(request.prompt_tokens.size());
  state->events = std::move(submission.events);
  state->arrival = submission.arrival;
  uint64_t seed = request.sampling.seed ? *request.sampling.seed : splitmix64_mix(default_seed_ ^ ++num_unseeded_);
  uint64_t salt = cache_salt_from_string(request.cache_salt);
  if (submission.grammar) {
    const StructuredOutputSpec& spec = *request.sampling.structured_output;
    std::string key = std::to_string(static_cast<int>(spec.kind)) + ":" + std::to_string(spec.text.size()) + ":" + spec.text;
    for (const std::string& c : spec.choices) key += ":" + std::to_string(c.size()) + ":" + c;
    auto it = maskers_.find(key);
    if (it == maskers_.end()) {
      constexpr size_t kMaxCachedGrammars = 16;
      if (maskers_.size() >= kMaxCachedGrammars) maskers_.clear();
      it = maskers_.emplace(std::move(key), std::make_shared<structured::TokenMasker>(submission.grammar, vocabulary_)).first;
    }
    state->masker = it->second;
  }
  RequestState* raw = state.get();
  requests_[state->id] = std::move(state);

  std::optional<SeqId> leader;
  for (int i = 0; i < request.sampling.n; ++i) {
    Sequence seq;
    seq.id = next_seq_id_++;
    seq.tokens = request.prompt_tokens;
    seq.num_prompt_tokens = raw->num_prompt_tokens;
    seq.cache_salt = salt;
    seq.arrival = seq.id;
    // With prefix caching, choices after the first wait for its prompt pages instead of recomputing them;
    // with prompt logprobs they wait in any case, so that each first event can carry the prompt's scores.
    if (leader && (config_.enable_prefix_caching || request.sampling.prompt_logprobs)) seq.wait_for = *leader;
    // Choice 0 computes the prompt's logits rows; the others take its pages or recompute silently.
    if (!leader) seq.wants_prompt_logits = request.sampling.prompt_logprobs.has_value();
    if (!leader) leader = seq.id;
    raw->choices.push_back(std::make_unique<ChoiceState>(tokenizer_, raw->params, request.prompt_tokens, i, seq.id,
                                                         sampling_stream(seed, static_cast<uint64_t>(i))));
    if (raw->masker) raw->choices.back()->matcher = std::make_unique<structured::GrammarMatcher>(raw->masker->grammar());
    seq_owner_[seq.id] = {raw, i};
    Status added = scheduler_.add(std::move(seq));
    if (!added.ok()) {
      finish_request(raw->id, added);
      return;
    }
  }
  spdlog::debug("[{}] admitted: {} prompt tokens, n={}, max_tokens={}", raw->id, raw->num_prompt_tokens,
                raw->params.n, raw->max_tokens);
}

void Engine::cancel_abandoned() {
  std::vector<std::string> abandoned;
  for (const auto& [id, state] : requests_) {
    // Only the engine holds the channel: the consumer dropped its handle.
    if (state->events.use_count() == 1) abandoned.push_back(id);
  }
  for (const std::string& id : abandoned) finish_request(id, cancelled("request '" + id + "' was abandoned by its client"));
}

Status Engine::step() {
  const Clock::time_point step_start = Clock::now();
  ScheduleResult plan = scheduler_.schedule();
  if (plan.empty()) return Status::Ok();
  Clock::time_point now = Clock::now();
  steps_.clear();
  for (const ScheduledSeq& scheduled : plan.seqs) {
    RequestState* request = seq_owner_.at(scheduled.id).first;
    if (!request->started) {
      request->started = true;
      --num_waiting_;
      metrics_.observe_queue_time(seconds_between(request->arrival, now));
      metrics_.update([&](MetricsSnapshot& m) { m.prompt_tokens += request->num_prompt_tokens; });
    }
    const Sequence* seq = scheduler_.find(scheduled.id);
    steps_.push_back(SequenceStep{
        std::span<const int32_t>(seq->tokens).subspan(static_cast<size_t>(scheduled.start),
                                                      static_cast<size_t>(scheduled.num_tokens)),
        scheduled.start, kv_->block_tables(scheduled.id), kv_->state_slot(scheduled.id), scheduled.want_logits,
        scheduled.want_all_logits});
  }
  build_sampling_rows(plan);
  const Clock::time_point forward_start = Clock::now();
  Status forward = forward_and_sample();
  const Clock::time_point forward_end = Clock::now();
  if (!forward.ok()) {
    Status error = internal_error("the model step failed: " + forward.message());
    std::vector<std::string> failed;
    for (const ScheduledSeq& scheduled : plan.seqs) failed.push_back(seq_owner_.at(scheduled.id).first->id);
    for (const std::string& id : failed) {
      if (requests_.count(id)) finish_request(id, error);
    }
    return forward;
  }
  scheduler_.complete_step(plan);
  ++num_steps_;
  publish_sampled(plan);
  const double forward_seconds = seconds_between(forward_start, forward_end);
  const double host_seconds = seconds_between(step_start, forward_start) + seconds_between(forward_end, Clock::now());
  metrics_.update([&](MetricsSnapshot& m) {
    ++m.steps;
    m.step_forward_seconds += forward_seconds;
    m.step_host_seconds += host_seconds;
  });
  if (config_.check_kv_integrity) {
    Status integrity = kv_->check_integrity();
    if (!integrity.ok()) {
      std::vector<std::string> ids;
      for (const auto& [id, state] : requests_) ids.push_back(id);
      for (const std::string& id : ids) finish_request(id, integrity);
      return integrity;
    }
  }
  return Status::Ok();
}

void Engine::build_sampling_rows(const ScheduleResult& plan) {
  const size_t vocab = static_cast<size_t>(runtime_.config().vocab_size);
  rows_.clear();
  sample_logit_rows_.clear();
  size_t logit_rows = 0;
  std::vector<uint32_t> allow;
  for (const ScheduledSeq& scheduled : plan.seqs) {
    logit_rows += logits_rows(scheduled);
    if (!scheduled.want_logits) continue;
    sample_logit_rows_.push_back(logit_rows - 1);  // a chunk's last row
    const auto& [request, index] = seq_owner_.at(scheduled.id);
    const ChoiceState& choice = *request->choices[static_cast<size_t>(index)];
    allow.clear();
    if (choice.matcher) {
      // Tokens the grammar cannot take next are masked (EOS only where the output is complete).
      request->masker->fill_mask(*choice.matcher, token_mask_);
      allow.resize((vocab + 31) / 32);
      for (size_t w = 0; w < allow.size(); ++w) {
        allow[w] = static_cast<uint32_t>(token_mask_[w / 2] >> (32 * (w % 2)));
      }
    }
    rows_.push_back(make_sampling_row(
        SampleInput{{}, &request->params, &choice.penalties, choice.num_outputs, choice.stream, allow},
        eos_token_ids_));
  }
  num_logit_rows_ = logit_rows;
}

size_t Engine::logits_rows(const ScheduledSeq& scheduled) {
  return scheduled.want_all_logits ? static_cast<size_t>(scheduled.num_tokens) : (scheduled.want_logits ? 1u : 0u);
}

Status Engine::forward_and_sample() {
  // Prompt logprobs need every prompt row's logits on the host: such steps take the host path.
  const bool on_device = config_.device_sampling && !rows_.empty() &&
                         std::none_of(steps_.begin(), steps_.end(), [](const SequenceStep& s) { return s.want_all_logits; }) &&
                         std::all_of(rows_.begin(), rows_.end(), [this](const SamplingRow& r) {
    return runtime_.supports_sampling(r);
  });
  if (on_device) {
    RETURN_IF_ERROR(runtime_.forward_sample(steps_, rows_, &samples_));
    if (samples_.size() != rows_.size()) {
      return internal_error(fmt::format("the runtime returned {} samples for {} rows", samples_.size(), rows_.size()));
    }
    device_sampled_rows_ += static_cast<int64_t>(rows_.size());
    return Status::Ok();
  }
  RETURN_IF_ERROR(runtime_.forward(steps_, &logits_));
  const size_t vocab = static_cast<size_t>(runtime_.config().vocab_size);
  if (logits_.size() != num_logit_rows_ * vocab) {
    return internal_error(fmt::format("the runtime returned {} logits for {} rows of {}", logits_.size(),
                                      num_logit_rows_, vocab));
  }
  samples_.resize(rows_.size());
  for (size_t r = 0; r < rows_.size(); ++r) {
    RETURN_IF_ERROR(host_sampler_.sample(std::span<const float>(logits_).subspan(sample_logit_rows_[r] * vocab, vocab),
                                         rows_[r], &samples_[r]));
  }
  host_sampled_rows_ += static_cast<int64_t>(rows_.size());
  return Status::Ok();
}

void Engine::publish_sampled(const ScheduleResult& plan) {
  size_t next_sample = 0, next_row = 0;
  Clock::time_point now = Clock::now();
  for (const ScheduledSeq& scheduled : plan.seqs) {
    const size_t first_row = next_row;  // of logits_, on the host path
    next_row += logits_rows(scheduled);
    if (!scheduled.want_logits && !scheduled.want_all_logits) continue;
    const RowSample* sample = scheduled.want_logits ? &samples_[next_sample++] : nullptr;
    auto owner = seq_owner_.find(scheduled.id);
    if (owner == seq_owner_.end()) continue;  // its request failed earlier in this loop
    RequestState& request = *owner->second.first;
    if (scheduled.want_all_logits) collect_prompt_logprobs(request, scheduled, first_row);
    if (sample == nullptr) continue;
    ChoiceState& choice = *request.choices[static_cast<size_t>(owner->second.second)];

    StatusOr<SampleOutput> sampled = to_sample_output(*sample, request.params);
    if (sampled.ok() && choice.matcher &&
        std::find(eos_token_ids_.begin(), eos_token_ids_.end(), sampled->token) == eos_token_ids_.end() &&
        !choice.matcher->accept_bytes(vocabulary_->bytes(sampled->token))) {
      sampled = internal_error("the sampled token " + std::to_string(sampled->token) + " is outside the grammar");
    }
    if (!sampled.ok()) {
      finish_request(request.id, sampled.status().with_context("request '" + request.id + "'"));
      continue;
    }
    scheduler_.append_token(scheduled.id, sampled->token);
    GenerateEvent event = process_token(choice, request.params, request.max_tokens, eos_token_ids_, sampled->token,
                                        std::move(sampled->logprob));
    // Every choice's first event carries the prompt's scores (complete: the other choices wait for choice 0).
    if (request.params.prompt_logprobs && choice.num_outputs == 1) event.prompt_logprobs = request.prompt_logprobs;
    ++request.completion_tokens;
    metrics_.update([](MetricsSnapshot& m) { ++m.generation_tokens; });
    if (!request.first_token_sent) {
      request.first_token_sent = true;
      metrics_.observe_ttft(seconds_between(request.arrival, now));
    }
    if (choice.last_token_time) metrics_.observe_inter_token(seconds_between(*choice.last_token_time, now));
    choice.last_token_time = now;

    if (!choice.finished) {
      request.events->push(std::move(event));
      continue;
    }
    const Sequence* seq = scheduler_.find(scheduled.id);
    if (choice.index == 0) request.cached_prompt_tokens = seq->num_cached_prompt_tokens;
    request.num_preemptions += seq->num_preemptions;
    scheduler_.remove(scheduled.id);
    seq_owner_.erase(scheduled.id);
    if (++request.num_finished_choices < static_cast<int>(request.choices.size())) {
      request.events->push(std::move(event));
      continue;
    }
    // The request's last choice finished.
    event.usage = Usage{request.num_prompt_tokens, request.completion_tokens, request.cached_prompt_tokens,
                        request.num_preemptions};
    event.last = true;
    FinishReason reason = *event.finish_reason;
    spdlog::debug("[{}] finished ({}): {} completion tokens, {} cached prompt tokens", request.id,
                  finish_reason_name(reason), request.completion_tokens, request.cached_prompt_tokens);
    metrics_.observe_e2e(seconds_between(request.arrival, now));
    metrics_.update([reason](MetricsSnapshot& m) {
      ++(reason == FinishReason::kStop ? m.requests_finished_stop : m.requests_finished_length);
    });
    request.events->push(std::move(event));
    std::string id = request.id;
    requests_.erase(id);
    std::lock_guard<std::mutex> lock(ids_mutex_);
    live_ids_.erase(id);
    if (live_ids_.empty()) idle_cv_.notify_all();
  }
}

void Engine::collect_prompt_logprobs(RequestState& request, const ScheduledSeq& scheduled, size_t first_row) {
  const size_t vocab = static_cast<size_t>(runtime_.config().vocab_size);
  const Sequence* seq = scheduler_.find(scheduled.id);
  if (seq == nullptr || !request.params.prompt_logprobs) return;
  for (int i = 0; i < scheduled.num_tokens; ++i) {
    // Row i holds the logits after token start + i, which predict token start + i + 1. A chunk
    // recomputed after a preemption repeats rows already collected: only the next one is taken.
    const int position = scheduled.start + i;
    if (position + 1 >= request.num_prompt_tokens) break;
    if (position != static_cast<int>(request.prompt_logprobs.size())) continue;
    std::span<const float> logits = std::span<const float>(logits_).subspan((first_row + static_cast<size_t>(i)) * vocab, vocab);
    request.prompt_logprobs.push_back(
        score_token(logits, seq->tokens[static_cast<size_t>(position + 1)], *request.params.prompt_logprobs));
  }
}

void Engine::finish_request(const std::string& id, Status error) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return;
  RequestState& request = *it->second;
  for (const auto& choice : request.choices) {
    if (seq_owner_.erase(choice->seq)) scheduler_.remove(choice->seq);
  }
  if (!request.started) --num_waiting_;
  spdlog::debug("[{}] ended: {}", id, error.to_string());
  GenerateEvent event;
  event.error = std::move(error);
  event.last = true;
  request.events->push(std::move(event));
  metrics_.update([](MetricsSnapshot& m) { ++m.requests_failed; });
  requests_.erase(it);
  std::lock_guard<std::mutex> lock(ids_mutex_);
  live_ids_.erase(id);
  if (live_ids_.empty()) idle_cv_.notify_all();
}

void Engine::update_gauges() {
  int running = 0;
  for (const auto& [id, state] : requests_) running += state->started ? 1 : 0;
  KvCacheStats kv = kv_->stats();
  std::vector<KvGroupPages> groups;
  for (const KvGroupStats& g : kv.groups) {
    groups.push_back(KvGroupPages{g.is_state ? "state" : g.window > 0 ? "window" : "full", g.window, g.num_used,
                                  g.num_pages});
  }
  int waiting = num_waiting_.load();
  int64_t preemptions = scheduler_.num_preemptions();
  metrics_.update([&](MetricsSnapshot& m) {
    m.num_requests_running = running;
    m.num_requests_waiting = waiting;
    m.kv_pages_used = kv.num_used;
    m.kv_pages_total = kv.num_pages;
    m.kv_pages_cached = kv.num_cached;
    m.kv_groups = std::move(groups);
    m.prefix_cache_query_tokens = kv.prefix_query_tokens;
    m.prefix_cache_hit_tokens = kv.prefix_hit_tokens;
    m.preemptions = preemptions;
  });
}

}  // namespace longbow
