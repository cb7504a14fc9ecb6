// Engine: the one thread that owns the scheduler, the KV-cache manager and the runtime.
//
// Front ends use only this API (plus request.h and event_channel.h):
//   submit() validates on the caller's thread and returns the request's event stream, or an error
//     right away: INVALID_ARGUMENT (bad request), OUT_OF_RANGE (prompt + max_tokens too long),
//     RESOURCE_EXHAUSTED (overloaded: too many waiting requests), UNAVAILABLE (draining/stopped);
//   cancel() ends a request at the next step and frees its pages (so does dropping the handle);
//   metrics() is a snapshot; start(), drain(timeout) and stop() run the lifecycle.
// All public methods are thread-safe.
//
// A step: take submissions/cancellations → schedule → forward → sample → publish.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/kv_cache_manager.h"
#include "model/runtime/transformer.h"
#include "model/tokenizer/tokenizer.h"
#include "server/engine/event_channel.h"
#include "server/engine/metrics.h"
#include "server/engine/output_processor.h"
#include "server/engine/request.h"
#include "server/engine/request_queue.h"
#include "server/engine/request_validation.h"
#include "server/engine/sampler.h"
#include "server/engine/scheduler.h"
#include "server/structured/token_mask.h"
#include "server/structured/vocabulary.h"

namespace longbow {

struct EngineConfig {
  // max_batched_tokens and max_num_seqs must not exceed the runtime's RuntimeOptions.
  SchedulerConfig scheduler;
  int max_waiting_requests = 1024;  // submitted and not yet started; more are RESOURCE_EXHAUSTED
  bool enable_prefix_caching = true;
  int max_model_len = 0;  // 0: the model's max_position_embeddings
  int max_n = 16;
  int max_logprobs = 20;
  // Seed of the streams of requests that give none; 0 draws one from the clock at create().
  uint64_t default_seed = 0;
  // Runs the KV manager's integrity check after every step (tests).
  bool check_kv_integrity = false;
  // Sample on the runtime's backend (Transformer::forward_sample) when it supports every row of a
  // step; otherwise, or when false, logits come to the host and the host sampler runs. Outputs are
  // the same either way (model/sampling/sampling_row.h).
  bool device_sampling = true;

  Status validate() const;
};

class Engine {
 public:
  // `runtime` and `tokenizer` must outlive the engine. The KV cache has the runtime's cache groups
  // (Transformer::cache_groups()), group g with a pool of runtime.num_pages(g); EOS tokens are the model config's eos_token_ids plus the tokenizer's eos_id.
  static StatusOr<std::unique_ptr<Engine>> create(const EngineConfig& config, Transformer& runtime,
                                                  const Tokenizer& tokenizer);
  ~Engine();  // stop()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts the engine thread. INTERNAL if called twice.
  Status start();

  StatusOr<RequestHandle> submit(GenerateRequest request);
  // Ends the request (its stream gets a CANCELLED error event) at the next step; unknown ids are ignored.
  void cancel(std::string_view request_id);

  MetricsSnapshot metrics() const { return metrics_.snapshot(); }
  const RequestLimits& limits() const { return limits_; }
  // Usable KV pages over every paged cache group.
  int num_kv_pages() const { return kv_->num_pages(); }
  // Rows sampled on the runtime's backend so far (EngineConfig::device_sampling), and on the host.
  int64_t num_device_sampled_rows() const { return device_sampled_rows_.load(); }
  int64_t num_host_sampled_rows() const { return host_sampled_rows_.load(); }

  // Stops admission (submit() returns UNAVAILABLE), then waits up to `timeout` for the requests in
  // flight to finish. Requests still running then end with UNAVAILABLE errors and drain() returns
  // DEADLINE_EXCEEDED naming how many. The engine keeps running until stop().
  Status drain(std::chrono::milliseconds timeout);
  // Ends every request with an UNAVAILABLE error and joins the engine thread. Idempotent.
  void stop();

 private:
  struct RequestState {
    std::string id;
    SamplingParams params;
    int max_tokens = 0;
    int num_prompt_tokens = 0;
    std::shared_ptr<EventChannel> events;
    std::chrono::steady_clock::time_point arrival;
    bool started = false;  // counted as running (not waiting) since its first scheduling
    bool first_token_sent = false;
    std::vector<std::unique_ptr<ChoiceState>> choices;
    int num_finished_choices = 0;
    int completion_tokens = 0;
    int cached_prompt_tokens = 0;
    int num_preemptions = 0;
    std::shared_ptr<structured::TokenMasker> masker;  // with a structured output; shared by the choices
    // prompt_logprobs: entry i is prompt token i + 1's, from choice 0's logits rows; in each choice's first event.
    std::vector<TokenLogprob> prompt_logprobs;
  };

  Engine(const EngineConfig& config, Transformer& runtime, const Tokenizer& tokenizer,
         std::unique_ptr<KvCacheManager> kv);

  void run_loop();
  Status step();
  void apply(EngineCommand command);
  void admit(Submission submission);
  void cancel_abandoned();
  // The sampling rows of the step's sequences that want logits (grammar masks filled here), into rows_.
  void build_sampling_rows(const ScheduleResult& plan);
  // Logits rows a scheduled sequence returns: one per token with want_all_logits, else one if want_logits.
  static size_t logits_rows(const ScheduledSeq& scheduled);
  // Runs the step on the runtime and leaves one sample per row of rows_ in samples_: on the device
  // when it takes every row, else from host logits.
  Status forward_and_sample();
  void publish_sampled(const ScheduleResult& plan);
  // Appends the prompt logprobs of a chunk's logits rows [first row, + chunk tokens) not yet collected.
  void collect_prompt_logprobs(RequestState& request, const ScheduledSeq& scheduled, size_t first_row);
  // Compiles the request's structured output, if any (INVALID_ARGUMENT/UNIMPLEMENTED naming the
  // problem); null without one. Thread-safe.
  StatusOr<std::shared_ptr<const structured::Grammar>> compile_structured_output(const SamplingParams& params);
  // Ends a request: frees its sequences, sends the last event (with usage, or `error`).
  void finish_request(const std::string& id, Status error);
  void update_gauges();

  EngineConfig config_;
  Transformer& runtime_;
  const Tokenizer& tokenizer_;
  RequestLimits limits_;

  // Owned by the engine thread.
  std::unique_ptr<KvCacheManager> kv_;
  Scheduler scheduler_;
  std::vector<TokenId> eos_token_ids_;
  ReferenceSampler host_sampler_;
  std::unordered_map<std::string, std::unique_ptr<RequestState>> requests_;
  std::unordered_map<SeqId, std::pair<RequestState*, int>> seq_owner_;  // seq -> (request, choice index)
  std::vector<SequenceStep> steps_;
  // Each step's block table as the runtime reads it: page 0 of the runtime's pool is the null page
  // (model/kv_cache/window_pages.h), so kv_ manages pages 1.. of it as its 0..; released entries
  // (kReleasedPage) become kNullPage. Reused every step.
  std::vector<std::vector<int32_t>> tables_;
  std::vector<float> logits_;
  std::vector<SamplingRow> rows_;     // each step's rows that want logits, in step order
  std::vector<RowSample> samples_;    // their samples
  // Host path: each sampled row's row in logits_, and the rows of the step (prompt-logprobs chunks
  // return one per token).
  std::vector<size_t> sample_logit_rows_;
  size_t num_logit_rows_ = 0;
  SeqId next_seq_id_ = 1;
  // Structured outputs: the vocabulary's bytes (built on the first such request, by whichever
  // thread submits it), and per-step scratch.
  std::once_flag vocabulary_once_;
  std::shared_ptr<const structured::Vocabulary> vocabulary_;
  std::vector<uint64_t> token_mask_;
  // Mask caches live with their grammar: requests with the same structured output share one
  // TokenMasker, so a schema's trie walks are paid once (a few, at most kMaxCachedGrammars, kept).
  std::unordered_map<std::string, std::shared_ptr<structured::TokenMasker>> maskers_;
  int64_t num_steps_ = 0;
  uint64_t default_seed_ = 0;
  uint64_t num_unseeded_ = 0;

  // Shared with submitting threads.
  RequestQueue queue_;
  EngineMetrics metrics_;
  mutable std::mutex ids_mutex_;
  std::unordered_set<std::string> live_ids_;  // submitted and not yet ended
  std::atomic<int> num_waiting_{0};
  std::atomic<int64_t> device_sampled_rows_{0}, host_sampled_rows_{0};             // submitted and not yet started
  std::atomic<uint64_t> next_request_number_{1};
  std::atomic<bool> accepting_{true};
  std::atomic<bool> stop_requested_{false};
  std::mutex idle_mutex_;
  std::condition_variable idle_cv_;  // notified when live_ids_ becomes empty
  std::mutex stop_mutex_;
  std::thread thread_;
  bool started_ = false;
};

}  // namespace longbow
