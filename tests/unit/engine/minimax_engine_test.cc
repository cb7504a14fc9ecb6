// The engine on a real tiny lightning hybrid (model_type minimax: three linear-attention layers with
// a state slot per sequence, one full-attention layer with pages) on the CPU runtime: greedy tokens
// are the same when requests run alone, together, and preempted and recomputed (a preempted sequence
// gets a new slot and restarts from token 0); every slot and page comes back on finish and cancel.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "model/backend/backend.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"
#include "server/engine/engine.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/engine/request_helpers.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;
using fakes::collect;
using fakes::Collected;
using fakes::greedy_request;

class MinimaxEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::tiny_minimax_config();
    testing::write_tiny_checkpoint(config_, dir_.path(), DType::kF32, 31);
    auto checkpoint = Checkpoint::open(dir_.path());
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
    checkpoint_ = std::move(checkpoint).value();
    backend_ = std::move(create_backend("cpu")).value();
    std::mt19937 rng(9);
    for (int len : {70, 45, 90}) {
      std::vector<TokenId> prompt(static_cast<size_t>(len));
      for (TokenId& t : prompt) t = static_cast<TokenId>(rng() % static_cast<uint32_t>(config_.vocab_size));
      prompts_.push_back(prompt);
    }
  }
  void TearDown() override {
    if (engine_) engine_->stop();
    engine_.reset();
  }

  // A fresh runtime and engine: a full-attention pool of `num_pages` pages, `max_num_seqs` slots.
  void make(int num_pages, int max_num_seqs = 4) {
    if (engine_) engine_->stop();
    engine_.reset();
    RuntimeOptions options;
    options.num_kv_pages = num_pages;
    options.max_batched_tokens = 64;
    options.max_num_seqs = max_num_seqs;
    auto runtime = Transformer::load(config_, *checkpoint_, *backend_, options);
    ASSERT_TRUE(runtime.ok()) << runtime.status().to_string();
    runtime_ = std::move(runtime).value();
    EngineConfig config;
    config.scheduler.max_batched_tokens = 64;
    config.scheduler.max_num_seqs = max_num_seqs;
    config.check_kv_integrity = true;
    auto engine = Engine::create(config, *runtime_, tokenizer_);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
  }
  std::vector<std::vector<TokenId>> run_all(int max_tokens) {
    std::vector<RequestHandle> handles;
    for (const auto& prompt : prompts_) {
      auto handle = engine_->submit(greedy_request(prompt, max_tokens));
      EXPECT_TRUE(handle.ok());
      if (handle.ok()) handles.push_back(*handle);
    }
    EXPECT_TRUE(engine_->start().ok());
    std::vector<std::vector<TokenId>> out;
    for (const RequestHandle& h : handles) {
      Collected c = collect(h, 120s);
      EXPECT_TRUE(c.error.ok()) << c.error.to_string();
      out.push_back(c.tokens);
    }
    return out;
  }
  // Waits until no slot or page is held.
  bool idle() {
    for (int i = 0; i < 5000; ++i) {
      MetricsSnapshot m = engine_->metrics();
      bool held = m.num_requests_running > 0;
      for (const auto& g : m.kv_groups) held = held || g.used > 0;
      if (!held) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  ModelConfig config_;
  testing::TempDir dir_;
  std::unique_ptr<Checkpoint> checkpoint_;
  std::unique_ptr<Backend> backend_;
  fakes::FakeTokenizer tokenizer_;
  std::vector<std::vector<TokenId>> prompts_;
  std::unique_ptr<Transformer> runtime_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(MinimaxEngineTest, GreedyTokensAreTheSameAloneTogetherAndPreempted) {
  constexpr int kTokens = 40;
  std::vector<std::vector<TokenId>> alone;
  for (size_t i = 0; i < prompts_.size(); ++i) {
    make(32);
    auto handle = engine_->submit(greedy_request(prompts_[i], kTokens));
    ASSERT_TRUE(handle.ok());
    ASSERT_TRUE(engine_->start().ok());
    Collected c = collect(*handle, 120s);
    ASSERT_TRUE(c.error.ok()) << c.error.to_string();
    ASSERT_EQ(c.tokens.size(), static_cast<size_t>(kTokens));
    alone.push_back(c.tokens);
  }
  make(32);
  EXPECT_EQ(run_all(kTokens), alone);
  EXPECT_EQ(engine_->metrics().preemptions, 0);
  EXPECT_TRUE(idle());

  // 5 pages (4 usable) cannot hold the three sequences' 2 pages each: someone is preempted, gets a
  // new state slot later and recomputes from token 0.
  make(5);
  EXPECT_EQ(run_all(kTokens), alone);
  EXPECT_GT(engine_->metrics().preemptions, 0) << "no request was preempted";
  EXPECT_TRUE(idle());
  MetricsSnapshot m = engine_->metrics();
  ASSERT_EQ(m.kv_groups.size(), 2u);
  EXPECT_EQ(m.kv_groups[0].kind, "state");
  EXPECT_EQ(m.kv_groups[0].total, 4);
}

TEST_F(MinimaxEngineTest, CancellingReturnsTheSlotAndThePages) {
  make(32);
  ASSERT_TRUE(engine_->start().ok());
  auto handle = engine_->submit(greedy_request(prompts_[0], 500));
  ASSERT_TRUE(handle.ok());
  // Cancel once the first token arrived (the sequence then holds its slot and pages).
  auto first = handle->events->next(60s);
  ASSERT_TRUE(first.has_value());
  engine_->cancel(handle->request_id);
  (void)collect(*handle, 60s);
  EXPECT_TRUE(idle());
  // The slot is usable again: a new request runs to the end.
  auto again = engine_->submit(greedy_request(prompts_[1], 5));
  ASSERT_TRUE(again.ok());
  Collected c = collect(*again, 60s);
  EXPECT_TRUE(c.error.ok()) << c.error.to_string();
  EXPECT_EQ(c.tokens.size(), 5u);
  EXPECT_TRUE(idle());
}

}  // namespace
}  // namespace longbow
