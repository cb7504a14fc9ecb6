#include "server/engine/metrics.h"

#include <gtest/gtest.h>

#include <sstream>

namespace longbow {
namespace {

TEST(Histogram, BucketsAreUpperInclusive) {
  Histogram h({0.1, 1.0, 10.0});
  for (double v : {0.05, 0.1, 0.5, 1.0, 3.0, 50.0}) h.observe(v);
  const HistogramSnapshot& s = h.snapshot();
  EXPECT_EQ(s.counts, (std::vector<uint64_t>{2, 2, 1, 1}));
  EXPECT_EQ(s.count, 6u);
  EXPECT_DOUBLE_EQ(s.sum, 54.65);
  EXPECT_DOUBLE_EQ(s.mean(), 54.65 / 6);
}

// Finds "name value" in the exposition text.
std::optional<std::string> sample(const std::string& text, const std::string& name) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return line.substr(name.size() + 1);
  }
  return std::nullopt;
}

TEST(EngineMetrics, RendersPrometheusText) {
  EngineMetrics metrics;
  metrics.update([](MetricsSnapshot& m) {
    m.num_requests_running = 3;
    m.kv_pages_used = 5;
    m.kv_pages_total = 20;
    m.kv_groups = {KvGroupPages{"window", 512, 2, 8}, KvGroupPages{"full", 0, 3, 12}};
    m.requests_finished_stop = 7;
    m.prefix_cache_query_tokens = 400;
    m.prefix_cache_hit_tokens = 100;
    m.preemptions = 2;
    m.step_forward_seconds = 1.5;
    m.step_host_seconds = 0.25;
  });
  metrics.observe_ttft(0.003);
  metrics.observe_ttft(0.3);
  metrics.observe_ttft(5000.0);
  MetricsSnapshot snapshot = metrics.snapshot();
  EXPECT_DOUBLE_EQ(snapshot.prefix_cache_hit_rate(), 0.25);
  std::string text = render_prometheus(snapshot, "tiny \"m\"");
  EXPECT_EQ(sample(text, "longbow_num_requests_running{model_name=\"tiny \\\"m\\\"\"}"), "3");
  EXPECT_EQ(sample(text, "longbow_kv_cache_usage_ratio{model_name=\"tiny \\\"m\\\"\"}"), "0.25");
  EXPECT_EQ(sample(text, "longbow_prefix_cache_hit_rate{model_name=\"tiny \\\"m\\\"\"}"), "0.25");
  EXPECT_EQ(sample(text, "longbow_kv_cache_pages_used{model_name=\"tiny \\\"m\\\"\"}"), "5");  // the total over groups, as before
  EXPECT_EQ(sample(text, "longbow_kv_cache_group_pages_used{model_name=\"tiny \\\"m\\\"\",group=\"0\",kind=\"window\",window=\"512\"}"), "2");
  EXPECT_EQ(sample(text, "longbow_kv_cache_group_pages_total{model_name=\"tiny \\\"m\\\"\",group=\"1\",kind=\"full\",window=\"0\"}"), "12");
  EXPECT_EQ(sample(text, "longbow_request_success_total{model_name=\"tiny \\\"m\\\"\",finished_reason=\"stop\"}"), "7");
  EXPECT_EQ(sample(text, "longbow_num_preemptions_total{model_name=\"tiny \\\"m\\\"\"}"), "2");
  EXPECT_EQ(sample(text, "longbow_engine_step_forward_seconds_total{model_name=\"tiny \\\"m\\\"\"}"), "1.5");
  EXPECT_EQ(sample(text, "longbow_engine_step_host_seconds_total{model_name=\"tiny \\\"m\\\"\"}"), "0.25");
  // Cumulative buckets, then +Inf, sum and count.
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_bucket{model_name=\"tiny \\\"m\\\"\",le=\"0.001\"}"), "0");
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_bucket{model_name=\"tiny \\\"m\\\"\",le=\"0.005\"}"), "1");
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_bucket{model_name=\"tiny \\\"m\\\"\",le=\"0.5\"}"), "2");
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_bucket{model_name=\"tiny \\\"m\\\"\",le=\"2560\"}"), "2");
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_bucket{model_name=\"tiny \\\"m\\\"\",le=\"+Inf\"}"), "3");
  EXPECT_EQ(sample(text, "longbow_time_to_first_token_seconds_count{model_name=\"tiny \\\"m\\\"\"}"), "3");
  EXPECT_NE(text.find("# TYPE longbow_time_to_first_token_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE longbow_generation_tokens_total counter\n"), std::string::npos);
  // Every non-comment line is "name value" with a parseable value.
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    EXPECT_NO_THROW((void)std::stod(line.substr(space + 1))) << line;
  }
}

}  // namespace
}  // namespace longbow
