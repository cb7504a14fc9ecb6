// The engine on a local/global model (DESIGN §5): a window group (five local layers, window 100)
// and a full group (one global layer), each with its own pool, on the fake transformer, which checks
// that both groups hold the tokens their layers read. The window group's pages stay bounded while
// the global group's grow, every group's pages return on finish and cancel, and a repeated prompt
// hits the prefix cache only as far as both groups can honour it.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "model/kv_cache/window_pages.h"
#include "server/engine/engine.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/engine/request_helpers.h"
#include "tests/unit/engine/fake_transformer.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;
using fakes::FakeTokenizer;
using fakes::FakeTransformer;

constexpr int kWindow = 100;
constexpr int kChunk = 64;  // max_batched_tokens
constexpr int kLocal = 0;   // cache-group index of the local layers (layer 0 is local, as in Gemma 3)
constexpr int kGlobal = 1;
// Live window pages one sequence holds at most: 1 + ceil((100 + 64 + 62) / 64).
constexpr int kWindowPagesPerSeq = static_cast<int>(window_live_pages_bound(kWindow, kChunk, kPageSize));

std::vector<CacheGroup> local_global_groups() {
  CacheGroup local;
  local.window = kWindow;
  local.layers = {0, 1, 2, 3, 4};
  CacheGroup global;
  global.layers = {5};
  return {local, global};
}

// Forwards to the fake and records, per group, the most live (non-null) table entries one sequence
// and one step held.
class GroupWatcher final : public Transformer {
 public:
  explicit GroupWatcher(FakeTransformer& inner) : inner_(inner) {}

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    int step_live[2] = {0, 0};
    for (const SequenceStep& step : steps) {
      const int64_t context = step.num_cached + static_cast<int64_t>(step.tokens.size());
      for (int g = 0; g < 2 && static_cast<size_t>(g) < step.block_tables.size(); ++g) {
        int live = 0;
        for (int64_t b = 0; b < (context + kPageSize - 1) / kPageSize; ++b) {
          if (step.block_tables[static_cast<size_t>(g)][static_cast<size_t>(b)] != kNullPage) ++live;
        }
        seq_max_[g] = std::max(seq_max_[g].load(), live);
        step_live[g] += live;
        if (g == kLocal && live < (context + kPageSize - 1) / kPageSize) ++null_entries_seen_;
      }
    }
    for (int g = 0; g < 2; ++g) step_max_[g] = std::max(step_max_[g].load(), step_live[g]);
    return inner_.forward(steps, logits);
  }
  const ModelConfig& config() const override { return inner_.config(); }
  const std::vector<CacheGroup>& cache_groups() const override { return inner_.cache_groups(); }
  int num_pages(int group) const override { return inner_.num_pages(group); }

  int seq_max(int group) const { return seq_max_[group]; }
  int step_max(int group) const { return step_max_[group]; }
  int64_t null_entries_seen() const { return null_entries_seen_; }

 private:
  FakeTransformer& inner_;
  std::atomic<int> seq_max_[2] = {0, 0};
  std::atomic<int> step_max_[2] = {0, 0};
  std::atomic<int64_t> null_entries_seen_{0};
};

std::vector<TokenId> make_prompt(int length, int seed) {
  std::vector<TokenId> prompt;
  for (int i = 0; i < length; ++i) prompt.push_back(static_cast<TokenId>((i * 7 + seed * 31 + i * i * seed) % 256));
  return prompt;
}

std::vector<TokenId> greedy_reference(const FakeTransformer& model, std::vector<TokenId> context, int max_tokens) {
  std::vector<TokenId> out;
  for (int i = 0; i < max_tokens; ++i) {
    std::vector<float> row = model.reference_logits(context);
    auto token = static_cast<TokenId>(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(token);
    context.push_back(token);
  }
  return out;
}

using fakes::Collected;
using fakes::collect;
using fakes::greedy_request;

class HybridEngineTest : public ::testing::Test {
 protected:
  // Pools: the window group holds `window_seqs` sequences' windows, the global group 64 pages.
  void make(int window_seqs, bool start = true) {
    model_ = std::make_unique<FakeTransformer>(FakeTransformer::default_config(), local_global_groups(),
                                               std::vector<int>{1 + window_seqs * kWindowPagesPerSeq, 65});
    watcher_ = std::make_unique<GroupWatcher>(*model_);
    EngineConfig config;
    config.scheduler.max_batched_tokens = kChunk;
    config.scheduler.max_num_seqs = 4;
    config.check_kv_integrity = true;
    config.default_seed = 5;
    auto engine = Engine::create(config, *watcher_, tokenizer_);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
    if (start) {
      ASSERT_TRUE(engine_->start().ok());
    }
  }
  void TearDown() override {
    if (engine_) engine_->stop();
  }

  template <typename Predicate>
  bool wait_until(Predicate predicate) {
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (predicate(engine_->metrics())) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
  static bool groups_idle(const MetricsSnapshot& m) {
    return m.kv_groups.size() == 2 && m.kv_groups[0].used == 0 && m.kv_groups[1].used == 0 &&
           m.num_requests_running == 0 && m.num_requests_waiting == 0;
  }

  FakeTokenizer tokenizer_;
  std::unique_ptr<FakeTransformer> model_;
  std::unique_ptr<GroupWatcher> watcher_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(HybridEngineTest, WindowGroupStaysBoundedWhileTheGlobalGroupGrows) {
  make(/*window_seqs=*/2, /*start=*/false);  // both requests are queued before the first step
  ASSERT_EQ(kWindowPagesPerSeq, 5);
  const std::vector<std::vector<TokenId>> prompts = {make_prompt(150, 1), make_prompt(90, 2)};
  const std::vector<int> max_tokens = {500, 450};  // 650 and 540 tokens: 11 and 9 global pages
  std::vector<RequestHandle> handles;
  for (size_t i = 0; i < 2; ++i) {
    auto handle = engine_->submit(greedy_request(prompts[i], max_tokens[i]));
    ASSERT_TRUE(handle.ok()) << handle.status().to_string();
    handles.push_back(*handle);
  }
  ASSERT_TRUE(engine_->start().ok());
  for (size_t i = 0; i < 2; ++i) {
    Collected out = collect(handles[i]);
    ASSERT_TRUE(out.error.ok()) << out.error.to_string();
    EXPECT_EQ(out.tokens, greedy_reference(*model_, prompts[i], max_tokens[i])) << "request " << i;
  }
  // The global group held every page of the longest sequence; the window group never more than a
  // window per sequence, so both sequences ran in its 10 pages without a preemption.
  EXPECT_EQ(watcher_->seq_max(kGlobal), 11);
  EXPECT_GE(watcher_->step_max(kGlobal), 18);
  EXPECT_LE(watcher_->seq_max(kLocal), kWindowPagesPerSeq);
  EXPECT_LE(watcher_->step_max(kLocal), 2 * kWindowPagesPerSeq);
  EXPECT_GT(watcher_->null_entries_seen(), 0);
  MetricsSnapshot m = engine_->metrics();
  EXPECT_EQ(m.preemptions, 0);
  ASSERT_EQ(m.kv_groups.size(), 2u);
  EXPECT_EQ(m.kv_groups[kLocal].kind, "window");
  EXPECT_EQ(m.kv_groups[kLocal].window, kWindow);
  EXPECT_EQ(m.kv_groups[kLocal].total, 10);
  EXPECT_EQ(m.kv_groups[kGlobal].kind, "full");
  EXPECT_EQ(m.kv_groups[kGlobal].total, 64);
  EXPECT_EQ(m.kv_pages_total, 74);
  // Every group's pages return when the requests finish.
  EXPECT_TRUE(wait_until(groups_idle));
}

TEST_F(HybridEngineTest, CancellingReturnsEveryGroupsPages) {
  make(/*window_seqs=*/2);
  auto handle = engine_->submit(greedy_request(make_prompt(200, 3), 3000));
  ASSERT_TRUE(handle.ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(handle->events->next(5s).has_value());
  EXPECT_TRUE(wait_until([](const MetricsSnapshot& m) {
    return m.kv_groups.size() == 2 && m.kv_groups[kLocal].used > 0 && m.kv_groups[kGlobal].used > 0;
  }));
  engine_->cancel(handle->request_id);
  EXPECT_EQ(collect(*handle).error.code(), StatusCode::kCancelled);
  EXPECT_TRUE(wait_until(groups_idle));
}

TEST_F(HybridEngineTest, RepeatedPromptHitsThePrefixCacheOnlyWhereEveryGroupCan) {
  make(/*window_seqs=*/2);
  // A 200-token prompt: a hit of 3 pages (192 tokens) needs global pages 0..2 and window pages 0..2
  // (the next query at 192 reads keys 93..192); both groups still hold them.
  const std::vector<TokenId> short_prompt = make_prompt(200, 4);
  ASSERT_TRUE(collect(*engine_->submit(greedy_request(short_prompt, 1))).error.ok());
  Collected again = collect(*engine_->submit(greedy_request(short_prompt, 1)));
  ASSERT_TRUE(again.usage.has_value());
  EXPECT_EQ(again.usage->cached_prompt_tokens, 192);

  // A 700-token prompt (10 full pages), then another one: the window group's 10 pages are all
  // reused by the second, so its keys for the first prompt are gone, while the global group (64
  // pages) still holds every page of both. The first prompt, repeated, hits nothing: its window
  // group cannot serve the last window.
  const std::vector<TokenId> long_prompt = make_prompt(700, 5);
  ASSERT_TRUE(collect(*engine_->submit(greedy_request(long_prompt, 1))).error.ok());
  Collected warm = collect(*engine_->submit(greedy_request(long_prompt, 1)));
  ASSERT_TRUE(warm.usage.has_value());
  EXPECT_EQ(warm.usage->cached_prompt_tokens, 640);  // right after: the window pages are still there
  ASSERT_TRUE(collect(*engine_->submit(greedy_request(make_prompt(700, 6), 1))).error.ok());
  const int64_t hits_before = engine_->metrics().prefix_cache_hit_tokens;
  Collected cold = collect(*engine_->submit(greedy_request(long_prompt, 1)));
  ASSERT_TRUE(cold.usage.has_value());
  EXPECT_EQ(cold.usage->cached_prompt_tokens, 0);
  EXPECT_EQ(engine_->metrics().prefix_cache_hit_tokens, hits_before);
  EXPECT_TRUE(wait_until(groups_idle));
}

// A model with a state group (linear-attention layers) beside a full group: each running sequence
// holds one of its two slots, a third request waits for one, and every sequence starts (num_cached
// 0, when the runtime zeroes its slot) exactly once.
TEST(HybridEngineStateTest, StateSlotsBoundTheRunningSequences) {
  CacheGroup full;
  full.layers = {1};
  CacheGroup state;
  state.is_state = true;
  state.layers = {0};
  FakeTransformer model(FakeTransformer::default_config(), {state, full}, {2, 65});
  FakeTokenizer tokenizer;
  EngineConfig config;
  config.scheduler.max_batched_tokens = kChunk;
  config.scheduler.max_num_seqs = 4;
  config.check_kv_integrity = true;
  auto engine = Engine::create(config, model, tokenizer);
  ASSERT_TRUE(engine.ok()) << engine.status().to_string();
  std::vector<RequestHandle> handles;
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(make_prompt(70, 10 + i));
    auto handle = (*engine)->submit(greedy_request(prompts.back(), 20));
    ASSERT_TRUE(handle.ok());
    handles.push_back(*handle);
  }
  ASSERT_TRUE((*engine)->start().ok());
  for (size_t i = 0; i < 3; ++i) {
    Collected out = collect(handles[i]);
    ASSERT_TRUE(out.error.ok()) << out.error.to_string();
    EXPECT_EQ(out.tokens, greedy_reference(model, prompts[i], 20));
    ASSERT_TRUE(out.usage.has_value());
    EXPECT_EQ(out.usage->cached_prompt_tokens, 0);  // a state group takes no prefix hit
  }
  (*engine)->stop();
  EXPECT_EQ(model.state_slots_zeroed(), 3);
  MetricsSnapshot m = (*engine)->metrics();
  ASSERT_EQ(m.kv_groups.size(), 2u);
  EXPECT_EQ(m.kv_groups[0].kind, "state");
  EXPECT_EQ(m.kv_groups[0].total, 2);
  EXPECT_EQ(m.kv_groups[0].used, 0);
  EXPECT_EQ(m.preemptions, 0);
}

}  // namespace
}  // namespace longbow
