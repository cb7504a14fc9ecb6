// The engine releases the pages behind a sliding window (DESIGN §4; model/kv_cache/window_pages.h)
// on a real tiny Mistral-style model (every layer windowed) on the CPU backend: two greedy
// generations run past several windows hold a bounded number of pages, produce the same tokens as
// the same engine that keeps every page, and agree with an fp64 reference forward pass.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "model/backend/backend.h"
#include "model/kv_cache/window_pages.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"
#include "server/engine/engine.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;
using testing::reference_logits;
using testing::TempDir;
using testing::tiny_config;
using testing::TinyFamily;
using testing::write_tiny_checkpoint;

// Forwards to the real runtime and watches the block tables the engine hands it. With
// hide_window it reports the model without its window, so the engine releases nothing (the
// behaviour before release existed) while the runtime still attends through the window.
class PageWatcher final : public Transformer {
 public:
  PageWatcher(Transformer& inner, bool hide_window)
      : inner_(inner), config_(inner.config()), groups_(inner.cache_groups()) {
    if (hide_window) {
      config_.sliding_window.reset();
      for (CacheGroup& g : groups_) g.window = 0;
    }
  }

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    int live = 0;
    for (const SequenceStep& step : steps) {
      const int64_t context = step.num_cached + static_cast<int64_t>(step.tokens.size());
      for (int64_t b = 0; b < (context + kPageSize - 1) / kPageSize; ++b) {
        if (step.block_tables[0][static_cast<size_t>(b)] == kNullPage) {
          ++released_entries_;
        } else {
          ++live;
        }
      }
    }
    max_live_pages_ = std::max(max_live_pages_, live);
    return inner_.forward(steps, logits);
  }
  const ModelConfig& config() const override { return config_; }
  const std::vector<CacheGroup>& cache_groups() const override { return groups_; }
  int num_pages(int group) const override { return inner_.num_pages(group); }

  int max_live_pages() const { return max_live_pages_; }
  int64_t released_entries() const { return released_entries_; }

 private:
  Transformer& inner_;
  ModelConfig config_;
  std::vector<CacheGroup> groups_;
  int max_live_pages_ = 0;  // the most non-released table entries of one step's sequences
  int64_t released_entries_ = 0;
};

struct Generation {
  std::vector<std::vector<TokenId>> outputs;  // per request
  int max_live_pages = 0;
  int64_t released_entries = 0;
  int64_t preemptions = 0;
};

class SlidingWindowEngineTest : public ::testing::Test {
 protected:
  static constexpr int kWindow = 100;  // spans page boundaries: 1.56 pages
  static constexpr int kChunk = 64;    // max_batched_tokens: prompts prefill in several chunks

  void SetUp() override {
    config_ = tiny_config(TinyFamily::kMistral);
    config_.sliding_window = kWindow;
    write_tiny_checkpoint(config_, dir_.path(), DType::kF32, 21);
    auto checkpoint = Checkpoint::open(dir_.path());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
    checkpoint_ = std::move(checkpoint).value();
    auto backend = create_backend("cpu");
    ASSERT_TRUE(backend.ok()) << backend.status().to_string();
    backend_ = std::move(backend).value();
    std::mt19937 rng(5);
    for (int len : {150, 90}) {
      std::vector<TokenId> prompt(static_cast<size_t>(len));
      for (TokenId& t : prompt) t = static_cast<TokenId>(rng() % static_cast<uint32_t>(config_.vocab_size));
      prompts_.push_back(prompt);
    }
  }

  // Both prompts at once, greedy, `max_tokens` outputs each, on a pool of `num_pages` pages.
  Generation generate(bool release, int num_pages, const std::vector<int>& max_tokens) {
    Generation run;
    RuntimeOptions options;
    options.num_kv_pages = num_pages;
    options.max_batched_tokens = kChunk;
    options.max_num_seqs = 4;
    auto runtime = Transformer::load(config_, *checkpoint_, *backend_, options);
    EXPECT_TRUE(runtime.ok()) << runtime.status().to_string();
    if (!runtime.ok()) return run;
    PageWatcher watcher(**runtime, /*hide_window=*/!release);
    EngineConfig config;
    config.scheduler.max_batched_tokens = kChunk;
    config.scheduler.max_num_seqs = 4;
    config.check_kv_integrity = true;
    auto engine = Engine::create(config, watcher, tokenizer_);
    EXPECT_TRUE(engine.ok()) << engine.status().to_string();
    if (!engine.ok()) return run;
    EXPECT_TRUE((*engine)->start().ok());
    std::vector<RequestHandle> handles;
    for (size_t i = 0; i < prompts_.size(); ++i) {
      GenerateRequest request;
      request.prompt_tokens = prompts_[i];
      request.sampling.temperature = 0.0f;
      request.sampling.max_tokens = max_tokens[i];
      request.sampling.ignore_eos = true;
      auto handle = (*engine)->submit(std::move(request));
      EXPECT_TRUE(handle.ok()) << handle.status().to_string();
      if (handle.ok()) handles.push_back(*handle);
    }
    for (const RequestHandle& handle : handles) {
      std::vector<TokenId> tokens;
      while (auto event = handle.events->next(120s)) {
        EXPECT_TRUE(event->error.ok()) << event->error.to_string();
        tokens.insert(tokens.end(), event->token_ids.begin(), event->token_ids.end());
        if (event->last) break;
      }
      run.outputs.push_back(tokens);
    }
    run.preemptions = (*engine)->metrics().preemptions;
    (*engine)->stop();  // joins the engine thread: the watcher is no longer written
    run.max_live_pages = watcher.max_live_pages();
    run.released_entries = watcher.released_entries();
    return run;
  }

  ModelConfig config_;
  TempDir dir_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Backend> backend_;
  fakes::FakeTokenizer tokenizer_;
  std::vector<std::vector<TokenId>> prompts_;
};

TEST_F(SlidingWindowEngineTest, ReleasedPagesKeepTheCountBoundedAndTheTokensUnchanged) {
  const std::vector<int> max_tokens = {550, 500};  // 700 and 590 tokens: 11 and 10 pages in all
  Generation keep = generate(/*release=*/false, 24, max_tokens);
  Generation released = generate(/*release=*/true, 12, max_tokens);
  ASSERT_EQ(keep.outputs.size(), 2u);
  ASSERT_EQ(released.outputs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(static_cast<int>(keep.outputs[i].size()), max_tokens[i]);
    EXPECT_EQ(released.outputs[i], keep.outputs[i]) << "request " << i;
  }
  EXPECT_EQ(keep.released_entries, 0);
  EXPECT_GE(keep.max_live_pages, 20);  // near the end: about 11 + 10 pages held at once
  EXPECT_GT(released.released_entries, 0);
  // Per sequence: a step's queries read from num_computed - 99 on; released in pairs of pages, at
  // most a 64-token chunk ahead: ceil((64 · 2 + 99 + 64) / 64) = 5 pages.
  EXPECT_LE(released.max_live_pages, 2 * 5);
  EXPECT_EQ(released.preemptions, 0);  // 12 pages hold both windows; kept, they would need 21

  // Greedy tokens against the fp64 reference (teacher-forced), except where its top two logits are
  // closer than the fp32 runtime's error could separate.
  for (size_t i = 0; i < 2; ++i) {
    std::vector<TokenId> tokens = prompts_[i];
    tokens.insert(tokens.end(), released.outputs[i].begin(), released.outputs[i].end() - 1);
    std::vector<std::vector<double>> want = reference_logits(config_, *checkpoint_, tokens);
    int checked = 0;
    for (size_t j = 0; j < released.outputs[i].size(); ++j) {
      const std::vector<double>& row = want[prompts_[i].size() - 1 + j];
      std::vector<double> sorted = row;
      std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<>());
      if (sorted[0] - sorted[1] < 1e-3) continue;
      ++checked;
      auto argmax = static_cast<TokenId>(std::max_element(row.begin(), row.end()) - row.begin());
      ASSERT_EQ(released.outputs[i][j], argmax) << "request " << i << " output " << j;
    }
    EXPECT_GT(checked, static_cast<int>(released.outputs[i].size()) * 9 / 10);
  }
}

}  // namespace
}  // namespace longbow
