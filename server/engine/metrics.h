// Engine metrics: gauges, counters and latency histograms that front ends expose (/metrics).
//
// The engine thread records; any thread may take a snapshot. render_prometheus() writes the
// Prometheus text exposition format (version 0.0.4) with names in vLLM's spirit, prefixed "longbow_".
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace longbow {

// Fixed-bucket histogram. counts[i] is the number of observations <= bounds[i] and > bounds[i-1];
// the last entry of counts (one more than bounds) is the +Inf bucket.
struct HistogramSnapshot {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;
  double sum = 0.0;
  uint64_t count = 0;

  double mean() const { return count ? sum / static_cast<double>(count) : 0.0; }
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  const HistogramSnapshot& snapshot() const { return data_; }

 private:
  HistogramSnapshot data_;
};

// KV pages of one cache group (DESIGN §5): a full group (window 0), a window group, or a state
// group (its slots).
struct KvGroupPages {
  std::string kind;  // "full", "window" or "state"
  int window = 0;
  int used = 0;
  int total = 0;
};

struct MetricsSnapshot {
  // Gauges.
  int num_requests_running = 0;  // requests with at least one choice scheduled since submission
  int num_requests_waiting = 0;  // submitted, not yet started
  int kv_pages_used = 0;   // over every paged group
  int kv_pages_total = 0;  // usable pages over every paged group (null pages not counted)
  std::vector<KvGroupPages> kv_groups;  // per cache group, in the runtime's order
  int kv_pages_cached = 0;  // pages holding a reusable prefix (in use or not)
  // Counters.
  int64_t requests_finished_stop = 0;
  int64_t requests_finished_length = 0;
  int64_t requests_failed = 0;     // ended with an error (cancelled, aborted, engine failure)
  int64_t requests_rejected = 0;   // refused at submit (invalid, too long, overloaded, draining)
  int64_t prompt_tokens = 0;
  int64_t generation_tokens = 0;
  int64_t prefix_cache_query_tokens = 0;
  int64_t prefix_cache_hit_tokens = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  // Engine thread time over the steps, in seconds: inside the model step (forward and sampling,
  // until its samples are on the host) and around it (scheduling, step inputs, detokenizing,
  // streaming), the host work that overlapped steps would hide behind the GPU.
  double step_forward_seconds = 0.0;
  double step_host_seconds = 0.0;
  // Latencies in seconds.
  HistogramSnapshot time_to_first_token;
  HistogramSnapshot inter_token_latency;
  HistogramSnapshot e2e_request_latency;
  HistogramSnapshot queue_time;  // submission to first scheduling

  double prefix_cache_hit_rate() const {
    return prefix_cache_query_tokens ? static_cast<double>(prefix_cache_hit_tokens) /
                                           static_cast<double>(prefix_cache_query_tokens)
                                     : 0.0;
  }
};

// Thread-safe accumulation of MetricsSnapshot.
class EngineMetrics {
 public:
  EngineMetrics();

  // Runs `update` on the snapshot under the lock (the engine thread uses this for gauges/counters).
  template <typename F>
  void update(F&& update_fn) {
    std::lock_guard<std::mutex> lock(mutex_);
    update_fn(data_);
  }
  void observe_ttft(double seconds);
  void observe_inter_token(double seconds);
  void observe_e2e(double seconds);
  void observe_queue_time(double seconds);

  MetricsSnapshot snapshot() const;

 private:
  mutable std::mutex mutex_;
  MetricsSnapshot data_;
  Histogram ttft_;
  Histogram itl_;
  Histogram e2e_;
  Histogram queue_;
};

// A Prometheus label value escaped for the text format (backslash, quote, newline).
std::string escape_label_value(std::string_view value);

// Every sample is labelled model_name="<model_name>" (as vLLM's are, so dashboards can tell models apart).
std::string render_prometheus(const MetricsSnapshot& metrics, std::string_view model_name);

}  // namespace longbow
