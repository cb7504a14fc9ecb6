// The engine on a real local/global checkpoint: the tiny gemma3_text parity fixture (made by
// transformers, tests/model/make_fixtures.py: 7 layers, 5 local with window 24 : 1 global, then one
// more local), with the CPU runtime. Its two cache groups (window 24 and full) each get their own
// pool; the engine's greedy tokens equal a direct decode that never releases a page, the window
// group's live pages stay bounded as a sequence grows while the full group's grow with it, every
// group's pages return on finish and on cancel, and a repeated prompt is served from the prefix
// cache.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/window_pages.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"
#include "server/engine/engine.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/engine/request_helpers.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;

const std::string kModelDir = std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity/gemma3_text";
constexpr int kChunk = 32;     // max_batched_tokens: prompts are prefilled in several chunks
constexpr int kPoolPages = 24;  // pages per group's pool (null page included)

// Forwards to the runtime and records, per cache group, the most live (non-null) table entries one
// sequence held in a step, and whether a window group's table ever held the null page.
class GroupWatcher final : public Transformer {
 public:
  explicit GroupWatcher(Transformer& inner) : inner_(inner), max_live_(inner.cache_groups().size()) {}

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    for (const SequenceStep& step : steps) {
      const int64_t context = step.num_cached + static_cast<int64_t>(step.tokens.size());
      const int64_t entries = (context + kPageSize - 1) / kPageSize;
      for (size_t g = 0; g < step.block_tables.size() && g < max_live_.size(); ++g) {
        int live = 0;
        for (int64_t b = 0; b < entries; ++b) live += step.block_tables[g][static_cast<size_t>(b)] != kNullPage;
        max_live_[g] = std::max(max_live_[g], live);
        if (live < entries) null_entries_seen_ = true;
      }
    }
    return inner_.forward(steps, logits);
  }
  const ModelConfig& config() const override { return inner_.config(); }
  const std::vector<CacheGroup>& cache_groups() const override { return inner_.cache_groups(); }
  int num_pages(int group) const override { return inner_.num_pages(group); }

  // Read after the engine has stopped stepping (a finished request: its last step is done).
  int max_live(size_t group) const { return max_live_[group]; }
  bool null_entries_seen() const { return null_entries_seen_; }

 private:
  Transformer& inner_;
  std::vector<int> max_live_;
  bool null_entries_seen_ = false;
};

struct Fixture {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Checkpoint> checkpoint;
};

std::vector<TokenId> make_prompt(int length, int seed) {
  std::vector<TokenId> prompt;
  for (int i = 0; i < length; ++i) prompt.push_back(static_cast<TokenId>(3 + (i * 37 + seed * 101 + i * i) % 300));
  return prompt;
}

using fakes::Collected;
using fakes::collect;
using fakes::greedy_request;

class LocalGlobalEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto config = load_model_config(kModelDir);
    ASSERT_TRUE(config.ok()) << config.status().to_string();
    fixture_.config = *config;
    auto backend = create_backend("cpu");
    ASSERT_TRUE(backend.ok()) << backend.status().to_string();
    fixture_.backend = std::move(backend).value();
    auto checkpoint = Checkpoint::open(kModelDir);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
    fixture_.checkpoint = std::move(checkpoint).value();
  }
  void TearDown() override {
    if (engine_) engine_->stop();
  }

  StatusOr<std::unique_ptr<Transformer>> load_runtime(int pool_pages) {
    RuntimeOptions options;
    options.num_kv_pages = pool_pages;
    options.max_batched_tokens = kChunk;
    options.max_num_seqs = 4;
    return Transformer::load(fixture_.config, *fixture_.checkpoint, *fixture_.backend, options);
  }

  void make() {
    auto runtime = load_runtime(kPoolPages);
    ASSERT_TRUE(runtime.ok()) << runtime.status().to_string();
    runtime_ = std::move(runtime).value();
    watcher_ = std::make_unique<GroupWatcher>(*runtime_);
    EngineConfig config;
    config.scheduler.max_batched_tokens = kChunk;
    config.scheduler.max_num_seqs = 4;
    config.check_kv_integrity = true;
    auto engine = Engine::create(config, *watcher_, tokenizer_);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
    ASSERT_TRUE(engine_->start().ok());
  }

  // Greedy tokens from Transformer::forward alone: the prompt in chunks of kChunk, then one token per
  // step, every group's table the pages 1, 2, ... (nothing released, nothing shared).
  std::vector<TokenId> direct_greedy(std::vector<TokenId> sequence, int max_tokens) {
    auto runtime = load_runtime(kPoolPages);
    EXPECT_TRUE(runtime.ok()) << runtime.status().to_string();
    if (!runtime.ok()) return {};
    const size_t groups = (*runtime)->cache_groups().size();
    std::vector<int32_t> table;
    for (int32_t p = 1; p < kPoolPages; ++p) table.push_back(p);
    std::vector<TokenId> out;
    std::vector<float> logits;
    size_t cached = 0;
    while (static_cast<int>(out.size()) < max_tokens) {
      SequenceStep step;
      const size_t n = std::min<size_t>(kChunk, sequence.size() - cached);
      step.tokens = std::span<const int32_t>(sequence).subspan(cached, n);
      step.num_cached = static_cast<int32_t>(cached);
      step.block_tables.assign(groups, std::span<const int32_t>(table));
      step.want_logits = cached + n == sequence.size();
      Status status = (*runtime)->forward(std::span(&step, 1), &logits);
      EXPECT_TRUE(status.ok()) << status.to_string();
      if (!status.ok()) return out;
      cached += n;
      if (!step.want_logits) continue;
      out.push_back(static_cast<TokenId>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
      sequence.push_back(out.back());
    }
    return out;
  }

  size_t group_with_window(bool windowed) const {
    const std::vector<CacheGroup>& groups = runtime_->cache_groups();
    for (size_t g = 0; g < groups.size(); ++g) {
      if ((groups[g].window > 0) == windowed) return g;
    }
    return groups.size();
  }

  bool wait_for_idle() {
    const auto deadline = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < deadline) {
      MetricsSnapshot m = engine_->metrics();
      bool idle = m.num_requests_running == 0 && m.num_requests_waiting == 0;
      for (const KvGroupPages& g : m.kv_groups) idle = idle && g.used == 0;
      if (idle) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  Fixture fixture_;
  fakes::FakeTokenizer tokenizer_{{}, 320};
  std::unique_ptr<Transformer> runtime_;
  std::unique_ptr<GroupWatcher> watcher_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(LocalGlobalEngineTest, WindowGroupStaysBoundedWhileTheFullGroupGrows) {
  make();
  ASSERT_EQ(runtime_->cache_groups().size(), 2u);
  const size_t local = group_with_window(true), global = group_with_window(false);
  ASSERT_LT(local, 2u);
  ASSERT_LT(global, 2u);
  EXPECT_EQ(runtime_->cache_groups()[local].window, 24);
  EXPECT_EQ(runtime_->cache_groups()[global].layers, (std::vector<int>{5}));

  const std::vector<TokenId> prompt = make_prompt(150, 1);
  const int max_tokens = 250;  // 400 tokens: 7 pages of the full group
  Collected out = collect(*engine_->submit(greedy_request(prompt, max_tokens)));
  ASSERT_TRUE(out.error.ok()) << out.error.to_string();
  EXPECT_EQ(out.tokens, direct_greedy(prompt, max_tokens));

  EXPECT_EQ(watcher_->max_live(global), 7);
  EXPECT_LE(watcher_->max_live(local), window_live_pages_bound(24, kChunk, kPageSize));
  EXPECT_LT(watcher_->max_live(local), 7);
  EXPECT_TRUE(watcher_->null_entries_seen());
  MetricsSnapshot m = engine_->metrics();
  ASSERT_EQ(m.kv_groups.size(), 2u);
  EXPECT_EQ(m.kv_groups[local].kind, "window");
  EXPECT_EQ(m.kv_groups[global].kind, "full");
  EXPECT_TRUE(wait_for_idle());
}

TEST_F(LocalGlobalEngineTest, PagesReturnOnCancelAndARepeatedPromptHitsThePrefixCache) {
  make();
  auto handle = engine_->submit(greedy_request(make_prompt(100, 2), 1300));
  ASSERT_TRUE(handle.ok()) << handle.status().to_string();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(handle->events->next(60s).has_value());
  engine_->cancel(handle->request_id);
  EXPECT_EQ(collect(*handle).error.code(), StatusCode::kCancelled);
  EXPECT_TRUE(wait_for_idle());

  // 200 prompt tokens: the first request leaves its full pages keyed in both groups; the repeat
  // reuses the three whole pages before its last token (192 tokens): the full group from the left,
  // the window group the pages holding the 24 tokens before position 192.
  const std::vector<TokenId> prompt = make_prompt(200, 3);
  Collected first = collect(*engine_->submit(greedy_request(prompt, 4)));
  ASSERT_TRUE(first.error.ok()) << first.error.to_string();
  Collected again = collect(*engine_->submit(greedy_request(prompt, 4)));
  ASSERT_TRUE(again.error.ok()) << again.error.to_string();
  ASSERT_TRUE(again.usage.has_value());
  EXPECT_EQ(again.usage->cached_prompt_tokens, 192);
  EXPECT_EQ(again.tokens, first.tokens);
  EXPECT_TRUE(wait_for_idle());
}

}  // namespace
}  // namespace longbow
