#include "server/engine/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace longbow {
namespace {

// Bucket bounds in seconds: TTFT spans a cached 10-token prompt on an H100 to a 128K prefill on the CPU.
const std::vector<double> kTtftBounds = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                         1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
const std::vector<double> kItlBounds = {0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
                                        0.1,   0.15,   0.2,   0.3,    0.4,  0.5,   0.75, 1.0,   2.5,  5.0,  10.0, 20.0};
const std::vector<double> kE2eBounds = {0.01, 0.05, 0.1,  0.3,  0.5,  0.8,   1.0,   1.5,   2.0,   2.5,   5.0,   10.0,
                                        15.0, 20.0, 30.0, 40.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

// The shortest %g form that reads back as the same double ("0.001", not "0.00100000000000000002").
std::string number(double value) {
  char buffer[64];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*g", precision, value);
    if (std::strtod(buffer, nullptr) == value) break;
  }
  return buffer;
}

void header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

// Writes the samples of one scrape; every sample carries the model_name label first.
class Writer {
 public:
  explicit Writer(std::string_view model_name) : model_label_("model_name=\"" + escape_label_value(model_name) + "\"") {}

  std::string& out() { return out_; }

  // `name{model_name="...",extra} value`
  void sample(const std::string& name, std::string_view extra, const std::string& value) {
    out_ += fmt::format("{}{{{}{}{}}} {}\n", name, model_label_, extra.empty() ? "" : ",", extra, value);
  }

  void gauge(const char* name, double value, const char* help) {
    std::string full = std::string("longbow_") + name;
    header(out_, full, "gauge", help);
    sample(full, "", number(value));
  }

  void counter(const char* name, double value, const char* help) {
    std::string full = std::string("longbow_") + name + "_total";
    header(out_, full, "counter", help);
    sample(full, "", number(value));
  }

  void histogram(const char* name, const HistogramSnapshot& h, const char* help) {
    std::string full = std::string("longbow_") + name;
    header(out_, full, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      cumulative += h.counts[i];
      sample(full + "_bucket", "le=\"" + number(h.bounds[i]) + "\"", std::to_string(cumulative));
    }
    sample(full + "_bucket", "le=\"+Inf\"", std::to_string(h.count));
    sample(full + "_sum", "", number(h.sum));
    sample(full + "_count", "", std::to_string(h.count));
  }

 private:
  std::string model_label_;
  std::string out_;
};

}  // namespace

Histogram::Histogram(std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  data_.bounds = std::move(bounds);
  data_.counts.assign(data_.bounds.size() + 1, 0);
}

void Histogram::observe(double value) {
  size_t bucket = static_cast<size_t>(std::lower_bound(data_.bounds.begin(), data_.bounds.end(), value) -
                                      data_.bounds.begin());
  ++data_.counts[bucket];
  data_.sum += value;
  ++data_.count;
}

EngineMetrics::EngineMetrics() : ttft_(kTtftBounds), itl_(kItlBounds), e2e_(kE2eBounds), queue_(kTtftBounds) {}

void EngineMetrics::observe_ttft(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ttft_.observe(seconds);
}

void EngineMetrics::observe_inter_token(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  itl_.observe(seconds);
}

void EngineMetrics::observe_e2e(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  e2e_.observe(seconds);
}

void EngineMetrics::observe_queue_time(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.observe(seconds);
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

MetricsSnapshot EngineMetrics::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  MetricsSnapshot out = data_;
  out.time_to_first_token = ttft_.snapshot();
  out.inter_token_latency = itl_.snapshot();
  out.e2e_request_latency = e2e_.snapshot();
  out.queue_time = queue_.snapshot();
  return out;
}

std::string render_prometheus(const MetricsSnapshot& m, std::string_view model_name) {
  Writer w(model_name);
  std::string& out = w.out();
  w.gauge("num_requests_running", m.num_requests_running, "Requests being generated.");
  w.gauge("num_requests_waiting", m.num_requests_waiting, "Requests waiting to start.");
  w.gauge("kv_cache_pages_used", m.kv_pages_used, "KV-cache pages referenced by running sequences.");
  w.gauge("kv_cache_pages_total", m.kv_pages_total, "KV-cache pages in the pool.");
  w.gauge("kv_cache_pages_cached", m.kv_pages_cached, "KV-cache pages holding a reusable prefix.");
  w.gauge("kv_cache_usage_ratio", m.kv_pages_total ? static_cast<double>(m.kv_pages_used) / m.kv_pages_total : 0.0,
          "Fraction of KV-cache pages in use.");
  for (const char* what : {"used", "total"}) {
    const std::string name = fmt::format("longbow_kv_cache_group_pages_{}", what);
    header(out, name, "gauge",
           *what == 'u' ? "KV-cache pages (state groups: slots) in use, per cache group."
                        : "KV-cache pages (state groups: slots) in the pool, per cache group.");
    for (size_t g = 0; g < m.kv_groups.size(); ++g) {
      const KvGroupPages& group = m.kv_groups[g];
      w.sample(name, fmt::format("group=\"{}\",kind=\"{}\",window=\"{}\"", g, group.kind, group.window),
               std::to_string(*what == 'u' ? group.used : group.total));
    }
  }
  w.gauge("prefix_cache_hit_rate", m.prefix_cache_hit_rate(),
          "Prompt tokens served by the prefix cache / prompt tokens looked up.");

  std::string finished = "longbow_request_success_total";
  header(out, finished, "counter", "Requests finished, by finish reason.");
  w.sample(finished, "finished_reason=\"stop\"", std::to_string(m.requests_finished_stop));
  w.sample(finished, "finished_reason=\"length\"", std::to_string(m.requests_finished_length));
  w.counter("request_failure", static_cast<double>(m.requests_failed), "Requests ended by an error or cancellation.");
  w.counter("request_rejected", static_cast<double>(m.requests_rejected), "Requests refused at submission.");
  w.counter("prompt_tokens", static_cast<double>(m.prompt_tokens), "Prompt tokens of started requests.");
  w.counter("generation_tokens", static_cast<double>(m.generation_tokens), "Generated tokens.");
  w.counter("prefix_cache_queries", static_cast<double>(m.prefix_cache_query_tokens),
          "Prompt tokens looked up in the prefix cache.");
  w.counter("prefix_cache_hits", static_cast<double>(m.prefix_cache_hit_tokens),
          "Prompt tokens served by the prefix cache.");
  w.counter("num_preemptions", static_cast<double>(m.preemptions), "Sequences preempted for lack of KV pages.");
  w.counter("engine_steps", static_cast<double>(m.steps), "Forward steps run by the engine.");
  w.counter("engine_step_forward_seconds", m.step_forward_seconds,
            "Engine thread time inside model steps (forward and sampling, until the samples are on the host).");
  w.counter("engine_step_host_seconds", m.step_host_seconds,
            "Engine thread time around model steps (scheduling, step inputs, detokenizing, streaming).");

  w.histogram("time_to_first_token_seconds", m.time_to_first_token, "Submission to first generated token.");
  w.histogram("inter_token_latency_seconds", m.inter_token_latency, "Time between consecutive tokens of a choice.");
  w.histogram("e2e_request_latency_seconds", m.e2e_request_latency, "Submission to the request's last event.");
  w.histogram("request_queue_time_seconds", m.queue_time, "Submission to first scheduling.");
  return out;
}

}  // namespace longbow
