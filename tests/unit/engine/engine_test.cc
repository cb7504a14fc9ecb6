// The engine loop end to end on a fake model that checks paging (fake_transformer.h): batching,
// preemption, cancellation, prefix caching, stop conditions, errors and lifecycle. Every test runs
// the KV-cache integrity check after each step.
#include "server/engine/engine.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <future>
#include <numeric>
#include <thread>

#include "common/rng.h"
#include "tests/unit/engine/fake_tokenizer.h"
#include "tests/unit/engine/fake_transformer.h"

namespace longbow {
namespace {

using fakes::FakeTokenizer;
using fakes::FakeTransformer;
using namespace std::chrono_literals;

constexpr TokenId kEos = FakeTokenizer::kEos;

struct Collected {
  std::vector<std::vector<TokenId>> tokens;
  std::vector<std::string> text;
  std::vector<std::optional<FinishReason>> finish;
  std::vector<std::optional<std::string>> stop_string;
  std::vector<std::optional<TokenId>> stop_token;
  std::vector<std::vector<TokenLogprob>> logprobs;
  std::vector<std::vector<TokenLogprob>> prompt_logprobs;  // per choice
  int prompt_logprobs_events = 0;  // events that carried prompt logprobs
  std::optional<Usage> usage;
  Status error;
  int num_events = 0;
};

Collected collect(const RequestHandle& handle, int n = 1, std::chrono::milliseconds timeout = 20s) {
  Collected out;
  if (!handle.events) {
    ADD_FAILURE() << "no request handle";
    return out;
  }
  out.tokens.resize(static_cast<size_t>(n));
  out.text.resize(static_cast<size_t>(n));
  out.finish.resize(static_cast<size_t>(n));
  out.stop_string.resize(static_cast<size_t>(n));
  out.stop_token.resize(static_cast<size_t>(n));
  out.logprobs.resize(static_cast<size_t>(n));
  out.prompt_logprobs.resize(static_cast<size_t>(n));
  while (true) {
    std::optional<GenerateEvent> event = handle.events->next(timeout);
    if (!event) {
      ADD_FAILURE() << "request " << handle.request_id << ": no event within the timeout";
      return out;
    }
    ++out.num_events;
    auto i = static_cast<size_t>(event->index);
    out.tokens[i].insert(out.tokens[i].end(), event->token_ids.begin(), event->token_ids.end());
    out.text[i] += event->text;
    out.logprobs[i].insert(out.logprobs[i].end(), event->logprobs.begin(), event->logprobs.end());
    if (!event->prompt_logprobs.empty()) {
      ++out.prompt_logprobs_events;
      EXPECT_EQ(out.tokens[i].size(), event->token_ids.size()) << "prompt logprobs come with a choice's first event";
      out.prompt_logprobs[i] = event->prompt_logprobs;
    }
    if (event->finish_reason) {
      EXPECT_FALSE(out.finish[i].has_value()) << "choice " << i << " finished twice";
      out.finish[i] = event->finish_reason;
      out.stop_string[i] = event->stop_string;
      out.stop_token[i] = event->stop_token;
    }
    if (event->usage) out.usage = event->usage;
    if (!event->error.ok()) out.error = event->error;
    if (event->last) break;
  }
  EXPECT_TRUE(handle.events->done());
  return out;
}

std::vector<TokenId> make_prompt(int length, int seed) {
  std::vector<TokenId> prompt;
  for (int i = 0; i < length; ++i) prompt.push_back(static_cast<TokenId>((i * 7 + seed * 31 + i * i * seed) % 256));
  return prompt;
}

// Greedy decoding straight from the fake model's logits, one sequence at a time.
std::vector<TokenId> greedy_reference(const FakeTransformer& model, std::vector<TokenId> context, int max_tokens) {
  std::vector<TokenId> out;
  for (int i = 0; i < max_tokens; ++i) {
    std::vector<float> row = model.reference_logits(context);
    auto token = static_cast<TokenId>(std::max_element(row.begin(), row.end()) - row.begin());
    out.push_back(token);
    context.push_back(token);
    if (token == kEos) break;
  }
  return out;
}

GenerateRequest greedy_request(std::vector<TokenId> prompt, int max_tokens) {
  GenerateRequest request;
  request.prompt_tokens = std::move(prompt);
  request.sampling.temperature = 0.0f;
  request.sampling.max_tokens = max_tokens;
  return request;
}

EngineConfig test_config() {
  EngineConfig config;
  config.scheduler.max_batched_tokens = 256;
  config.scheduler.max_num_seqs = 64;
  config.check_kv_integrity = true;
  config.default_seed = 99;
  return config;
}

class EngineTest : public ::testing::Test {
 protected:
  ~EngineTest() override { stop_engine(); }
  // Stops the engine before its model goes; a model held at its step gate is let go first.
  void stop_engine() {
    if (model_) model_->gate().open();
    engine_.reset();
  }
  void make(EngineConfig config = test_config(), int num_pages = 256, bool start = true) {
    stop_engine();
    model_ = std::make_unique<FakeTransformer>(FakeTransformer::default_config(), num_pages);
    configure_model(*model_);
    auto engine = Engine::create(config, *model_, tokenizer_);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
    if (start) {
      ASSERT_TRUE(engine_->start().ok());
    }
  }
  virtual void configure_model(FakeTransformer&) {}

  RequestHandle submit(GenerateRequest request) {
    auto handle = engine_->submit(std::move(request));
    EXPECT_TRUE(handle.ok()) << handle.status().to_string();
    return handle.ok() ? *handle : RequestHandle{};
  }

  template <typename Predicate>
  bool wait_until(Predicate predicate, std::chrono::milliseconds timeout = 5s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (predicate(engine_->metrics())) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }
  // Gauges are refreshed after every loop iteration (so they may lag an event by one iteration);
  // call this once every request has ended.
  bool wait_for_idle_pages() {
    return wait_until([](const MetricsSnapshot& m) {
      return m.kv_pages_used == 0 && m.num_requests_running == 0 && m.num_requests_waiting == 0;
    });
  }

  FakeTokenizer tokenizer_;
  std::unique_ptr<FakeTransformer> model_;
  std::unique_ptr<Engine> engine_;
};

// A runtime that samples only some rows on its device: steps whose every row it takes sample there,
// the others on the host, and the outputs (tokens, logprobs) are those of host sampling throughout.
TEST_F(EngineTest, DeviceSamplingTakesWholeStepsAndChangesNoOutput) {
  auto requests = [] {
    std::vector<GenerateRequest> out;
    for (int i = 0; i < 6; ++i) {
      GenerateRequest request = greedy_request(make_prompt(30 + 7 * i, 10 + i), i % 2 == 0 ? 40 : 12);
      request.sampling.ignore_eos = true;
      request.sampling.logprobs = i % 3;
      if (i % 2 == 1) {  // seeded sampling, only on the host here; shorter, so later steps are all greedy
        request.sampling.temperature = 0.9f;
        request.sampling.top_k = 20;
        request.sampling.seed = 50 + static_cast<uint64_t>(i);
        request.sampling.frequency_penalty = 0.5f;
      }
      out.push_back(std::move(request));
    }
    return out;
  };
  std::vector<std::vector<Collected>> runs;
  std::vector<std::pair<int64_t, int64_t>> rows;  // (device, host) rows of each run
  for (bool device : {false, true}) {
    EngineConfig config = test_config();
    config.device_sampling = device;
    make(config, 256, /*start=*/false);
    model_->set_device_sampling([](const SamplingRow& row) { return row.greedy(); });
    std::vector<RequestHandle> handles;
    for (GenerateRequest& request : requests()) handles.push_back(submit(std::move(request)));
    ASSERT_TRUE(engine_->start().ok());
    std::vector<Collected> outputs;
    for (const RequestHandle& handle : handles) outputs.push_back(collect(handle));
    runs.push_back(std::move(outputs));
    rows.emplace_back(engine_->num_device_sampled_rows(), engine_->num_host_sampled_rows());
  }
  EXPECT_EQ(rows[0].first, 0);
  EXPECT_GT(rows[1].first, 0);  // the steps after the seeded requests finished
  EXPECT_GT(rows[1].second, 0);  // the steps with a seeded row
  EXPECT_EQ(rows[0].first + rows[0].second, rows[1].first + rows[1].second);
  for (size_t r = 0; r < runs[0].size(); ++r) {
    ASSERT_TRUE(runs[0][r].error.ok() && runs[1][r].error.ok());
    EXPECT_EQ(runs[0][r].tokens[0].size(), r % 2 == 0 ? 40u : 12u);
    EXPECT_EQ(runs[0][r].logprobs[0].size(), runs[0][r].tokens[0].size());
    EXPECT_EQ(runs[1][r].tokens, runs[0][r].tokens) << "request " << r;
    ASSERT_EQ(runs[1][r].logprobs[0].size(), runs[0][r].logprobs[0].size());
    for (size_t t = 0; t < runs[0][r].logprobs[0].size(); ++t) {
      EXPECT_EQ(runs[1][r].logprobs[0][t].logprob, runs[0][r].logprobs[0][t].logprob);
      EXPECT_EQ(runs[1][r].logprobs[0][t].top, runs[0][r].logprobs[0][t].top);
    }
  }
}

TEST_F(EngineTest, GreedyRequestStreamsItsTokensAndFinishes) {
  make();
  std::vector<TokenId> prompt = make_prompt(150, 1);
  Collected out = collect(submit(greedy_request(prompt, 20)));
  ASSERT_TRUE(out.error.ok()) << out.error.to_string();
  std::vector<TokenId> expected = greedy_reference(*model_, prompt, 20);
  EXPECT_EQ(out.tokens[0], expected);
  EXPECT_EQ(out.finish[0], expected.back() == kEos ? FinishReason::kStop : FinishReason::kLength);
  ASSERT_TRUE(out.usage.has_value());
  EXPECT_EQ(out.usage->prompt_tokens, 150);
  EXPECT_EQ(out.usage->completion_tokens, static_cast<int>(expected.size()));
  StreamingDetokenizer detokenizer(tokenizer_, {});
  std::string text;
  for (TokenId token : expected) text += detokenizer.add_token(token).text;
  EXPECT_EQ(out.text[0], text + detokenizer.flush());
  EXPECT_TRUE(wait_for_idle_pages());
  MetricsSnapshot m = engine_->metrics();
  EXPECT_EQ(m.requests_finished_stop + m.requests_finished_length, 1);
  EXPECT_EQ(m.generation_tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(m.time_to_first_token.count, 1u);
  EXPECT_EQ(m.inter_token_latency.count, expected.size() - 1);
  EXPECT_EQ(m.e2e_request_latency.count, 1u);
  // Every step was timed, inside the model and around it.
  EXPECT_GT(m.steps, 0);
  EXPECT_GT(m.step_forward_seconds, 0.0);
  EXPECT_GT(m.step_host_seconds, 0.0);
}

// The same greedy request gives the same tokens alone, among 32 concurrent requests (mixed chunked
// prefills and decodes), and in a pool so small that requests are preempted and resumed.
TEST_F(EngineTest, GreedyOutputIsTheSameAloneAmongManyAndUnderPreemption) {
  const int kRequests = 33;
  std::vector<std::vector<TokenId>> prompts;
  for (int i = 0; i < kRequests; ++i) prompts.push_back(make_prompt(20 + (i * 37) % 200, i + 2));
  auto run_all = [&](int num_pages, int budget) {
    EngineConfig config = test_config();
    config.scheduler.max_batched_tokens = budget;
    make(config, num_pages);
    std::vector<RequestHandle> handles;
    for (int i = 0; i < kRequests; ++i) {
      GenerateRequest request = greedy_request(prompts[static_cast<size_t>(i)], 24);
      request.sampling.ignore_eos = true;
      handles.push_back(submit(std::move(request)));
    }
    std::vector<std::vector<TokenId>> outputs;
    for (const RequestHandle& handle : handles) {
      Collected out = collect(handle);
      EXPECT_TRUE(out.error.ok()) << out.error.to_string();
      EXPECT_EQ(out.finish[0], FinishReason::kLength);
      outputs.push_back(out.tokens[0]);
    }
    EXPECT_TRUE(wait_for_idle_pages());
    return outputs;
  };

  // Alone: one request at a time.
  make();
  std::vector<std::vector<TokenId>> alone;
  for (int i = 0; i < kRequests; ++i) {
    GenerateRequest request = greedy_request(prompts[static_cast<size_t>(i)], 24);
    request.sampling.ignore_eos = true;
    Collected out = collect(submit(std::move(request)));
    alone.push_back(out.tokens[0]);
    // The reference is independent of the engine.
    std::vector<TokenId> context = prompts[static_cast<size_t>(i)];
    for (int step = 0; step < 24; ++step) {
      std::vector<float> row = model_->reference_logits(context);
      context.push_back(static_cast<TokenId>(std::max_element(row.begin(), row.end()) - row.begin()));
    }
    EXPECT_EQ(alone.back(), std::vector<TokenId>(context.end() - 24, context.end())) << "request " << i;
  }

  EXPECT_EQ(run_all(/*num_pages=*/256, /*budget=*/128), alone);
  EXPECT_EQ(engine_->metrics().preemptions, 0);

  // 8 usable pages (and the null page) hold 512 tokens; 33 requests of up to 243 tokens compete for them.
  EXPECT_EQ(run_all(/*num_pages=*/9, /*budget=*/128), alone);
  EXPECT_GT(engine_->metrics().preemptions, 0);
}

TEST_F(EngineTest, SameSeedGivesTheSameTokensWhateverTheBatch) {
  make();
  auto seeded = [](uint64_t seed, int n = 1) {
    GenerateRequest request;
    request.prompt_tokens = make_prompt(70, 5);
    request.sampling.temperature = 1.0f;
    request.sampling.top_p = 0.9f;
    request.sampling.seed = seed;
    request.sampling.n = n;
    request.sampling.max_tokens = 30;
    request.sampling.ignore_eos = true;
    return request;
  };
  Collected alone = collect(submit(seeded(7)));
  // Reference: the sampler fed the fake model's logits, one token at a time.
  {
    Sampler sampler(model_->config().vocab_size, {kEos});
    GenerateRequest request = seeded(7);
    PenaltyState penalties;
    std::vector<TokenId> context = request.prompt_tokens;
    std::vector<TokenId> expected;
    for (int i = 0; i < 30; ++i) {
      std::vector<float> row = model_->reference_logits(context);
      auto out = sampler.sample(SampleInput{row, &request.sampling, &penalties, i, sampling_stream(7, 0)});
      ASSERT_TRUE(out.ok());
      expected.push_back(out->token);
      context.push_back(out->token);
    }
    EXPECT_EQ(alone.tokens[0], expected);
  }
  // In a crowd, as one of several choices, and next to a different seed.
  std::vector<RequestHandle> crowd;
  for (int i = 0; i < 10; ++i) crowd.push_back(submit(greedy_request(make_prompt(40 + i, 50 + i), 30)));
  RequestHandle again = submit(seeded(7));
  RequestHandle other = submit(seeded(8));
  RequestHandle three = submit(seeded(7, 3));
  EXPECT_EQ(collect(again).tokens[0], alone.tokens[0]);
  EXPECT_NE(collect(other).tokens[0], alone.tokens[0]);
  Collected choices = collect(three, 3);
  EXPECT_EQ(choices.tokens[0], alone.tokens[0]);
  EXPECT_NE(choices.tokens[1], choices.tokens[0]);
  EXPECT_NE(choices.tokens[2], choices.tokens[1]);
  ASSERT_TRUE(choices.usage.has_value());
  EXPECT_EQ(choices.usage->completion_tokens, 90);
  for (const RequestHandle& handle : crowd) EXPECT_TRUE(collect(handle).error.ok());
}

TEST_F(EngineTest, ChoicesShareThePromptPages) {
  make();
  GenerateRequest request = greedy_request(make_prompt(300, 9), 5);
  request.sampling.n = 4;
  request.sampling.ignore_eos = true;
  Collected out = collect(submit(request), 4);
  ASSERT_TRUE(out.error.ok()) << out.error.to_string();
  for (int i = 1; i < 4; ++i) EXPECT_EQ(out.tokens[static_cast<size_t>(i)], out.tokens[0]);
  // Choices 1..3 found the prompt's four full pages (256 tokens) in the prefix cache.
  EXPECT_EQ(engine_->metrics().prefix_cache_hit_tokens, 3 * 256);
  EXPECT_EQ(model_->tokens_computed(), 300 + 3 * 44 + 4 * 4);
}

TEST_F(EngineTest, CancellingMidGenerationReturnsEveryPage) {
  make();
  ASSERT_TRUE(wait_for_idle_pages());
  GenerateRequest request = greedy_request(make_prompt(200, 3), 3000);
  request.sampling.ignore_eos = true;
  // The model takes only the steps granted here: the request is mid-generation when cancelled,
  // however fast the machine.
  model_->gate().close();
  RequestHandle handle = submit(request);
  model_->gate().grant(5);  // the prefill (the first token) and 4 decodes
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(handle.events->next(20s).has_value());
  ASSERT_TRUE(model_->gate().wait_blocked());  // the gauges of step 5 are published
  EXPECT_GT(engine_->metrics().kv_pages_used, 0);
  engine_->cancel(handle.request_id);
  model_->gate().open();  // the cancellation is queued: it ends the request at the next step
  Collected rest = collect(handle);
  EXPECT_EQ(rest.error.code(), StatusCode::kCancelled);
  EXPECT_LT(rest.tokens[0].size(), 10u);
  EXPECT_TRUE(wait_for_idle_pages());
  EXPECT_EQ(engine_->metrics().requests_failed, 1);

  // Dropping the handle cancels too.
  model_->gate().close();
  {
    RequestHandle dropped = submit(request);
    model_->gate().grant(1);
    ASSERT_TRUE(dropped.events->next(20s).has_value());
  }
  model_->gate().open();
  // The engine notices at its next step; gauges may still show the state before it.
  EXPECT_TRUE(wait_until([](const MetricsSnapshot& m) { return m.requests_failed == 2; }));
  EXPECT_TRUE(wait_for_idle_pages());
  // Cancelling an unknown or finished request is harmless.
  engine_->cancel("no-such-request");
  engine_->cancel(handle.request_id);
  EXPECT_TRUE(collect(submit(greedy_request(make_prompt(10, 1), 2))).error.ok());
}

// A warm prompt reaches its first token in fewer model steps than a cold one. Steps are counted at
// the step gate (granted one at a time), not timed.
TEST_F(EngineTest, RepeatedLongPromptHitsThePrefixCache) {
  make();
  std::vector<TokenId> prompt = make_prompt(2000, 4);
  auto run = [&](int64_t* steps_to_first_token) {
    model_->gate().close();
    int64_t steps_before = model_->gate().steps_taken();
    int64_t computed_before = model_->tokens_computed();
    RequestHandle handle = submit(greedy_request(prompt, 3));  // the first token is never the last
    std::optional<GenerateEvent> first;
    while (!first) {
      model_->gate().grant(1);
      if (!model_->gate().wait_blocked()) {
        ADD_FAILURE() << "the engine did not come back to the model";
        break;
      }
      first = handle.events->try_next();
    }
    *steps_to_first_token = model_->gate().steps_taken() - steps_before;
    int64_t computed = model_->tokens_computed() - computed_before;
    model_->gate().open();
    Collected rest = collect(handle);
    EXPECT_TRUE(rest.error.ok());
    return std::make_pair(computed, rest);
  };
  int64_t cold_steps = 0, warm_steps = 0;
  auto [computed_cold, cold] = run(&cold_steps);
  auto [computed_warm, warm] = run(&warm_steps);
  MetricsSnapshot m = engine_->metrics();
  EXPECT_EQ(m.prefix_cache_hit_tokens, 1984);  // 31 full pages; the last 16 tokens are recomputed
  EXPECT_NEAR(m.prefix_cache_hit_rate(), 1984.0 / 4000.0, 1e-9);
  ASSERT_TRUE(warm.usage.has_value());
  EXPECT_EQ(warm.usage->cached_prompt_tokens, 1984);
  EXPECT_EQ(computed_cold, 2000);  // tokens computed up to the first token: the whole prompt
  EXPECT_EQ(computed_warm, 16);    // only what the prefix cache did not hold
  EXPECT_EQ(cold_steps, 8);  // 2000 tokens in chunks of max_batched_tokens = 256
  EXPECT_EQ(warm_steps, 1);
  EXPECT_EQ(m.time_to_first_token.count, 2u);
}

TEST_F(EngineTest, PromptLogprobsScoreEveryPromptTokenWhateverTheChunksAndCache) {
  EngineConfig config = test_config();
  config.scheduler.max_num_seqs = 8;  // prompt chunks of at most 8 logits rows
  make(config);
  const std::vector<TokenId> prompt = make_prompt(150, 5);
  // The reference: each prompt token scored against the fake model's logits for the tokens before it.
  std::vector<TokenLogprob> expected;
  for (size_t i = 1; i < prompt.size(); ++i) {
    std::vector<float> row = model_->reference_logits(std::span<const int32_t>(prompt).first(i));
    double max_value = *std::max_element(row.begin(), row.end());
    double sum = 0.0;
    for (float x : row) sum += std::exp(static_cast<double>(x) - max_value);
    const double log_total = max_value + std::log(sum);
    TokenLogprob lp;
    lp.token = prompt[i];
    lp.logprob = static_cast<float>(row[static_cast<size_t>(prompt[i])] - log_total);
    lp.rank = 1 + static_cast<int>(std::count_if(row.begin(), row.end(),
                                                 [&](float x) { return x > row[static_cast<size_t>(prompt[i])]; }));
    std::vector<TokenId> order(row.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](TokenId a, TokenId b) {
      return row[static_cast<size_t>(a)] > row[static_cast<size_t>(b)];
    });
    for (int k = 0; k < 3; ++k) lp.top.emplace_back(order[static_cast<size_t>(k)], static_cast<float>(row[static_cast<size_t>(order[static_cast<size_t>(k)])] - log_total));
    expected.push_back(lp);
  }
  auto check = [&](const Collected& out, const std::string& what) {
    EXPECT_TRUE(out.error.ok()) << what << ": " << out.error.to_string();
    EXPECT_EQ(out.prompt_logprobs_events, static_cast<int>(out.tokens.size())) << what << ": one per choice";
    for (const std::vector<TokenLogprob>& scored : out.prompt_logprobs) {
      ASSERT_EQ(scored.size(), expected.size()) << what;
      for (size_t i = 0; i < expected.size(); ++i) {
        const TokenLogprob& got = scored[i];
        EXPECT_EQ(got.token, expected[i].token) << what << " token " << i + 1;
        EXPECT_NEAR(got.logprob, expected[i].logprob, 1e-5) << what << " token " << i + 1;
        EXPECT_EQ(got.rank, expected[i].rank) << what << " token " << i + 1;
        ASSERT_EQ(got.top.size(), 3u) << what;
        for (size_t k = 0; k < 3; ++k) {
          EXPECT_EQ(got.top[k].first, expected[i].top[k].first) << what << " token " << i + 1 << " top " << k;
          EXPECT_NEAR(got.top[k].second, expected[i].top[k].second, 1e-5) << what;
        }
      }
    }
  };
  auto scored = [&](int n) {
    GenerateRequest request = greedy_request(prompt, 4);
    request.sampling.prompt_logprobs = 3;
    request.sampling.n = n;
    return request;
  };
  // Cold, with two choices (choice 0 scores the prompt), and three at once (they share the rows).
  Collected first = collect(submit(scored(2)), 2);
  check(first, "cold, n=2");
  EXPECT_EQ(first.usage->cached_prompt_tokens, 0);
  std::vector<RequestHandle> together;
  for (int i = 0; i < 3; ++i) together.push_back(submit(scored(1)));
  for (const RequestHandle& handle : together) {
    Collected out = collect(handle);
    check(out, "concurrent, prompt in the prefix cache");
    EXPECT_EQ(out.usage->cached_prompt_tokens, 0) << "a request scoring its prompt computes all of it";
    EXPECT_EQ(out.tokens[0], first.tokens[0]);
  }
  // The same prompt without prompt logprobs takes the cached pages and gets none.
  Collected plain = collect(submit(greedy_request(prompt, 4)));
  EXPECT_GT(plain.usage->cached_prompt_tokens, 0);
  EXPECT_EQ(plain.prompt_logprobs_events, 0);
  EXPECT_EQ(plain.tokens[0], first.tokens[0]);
  EXPECT_TRUE(wait_for_idle_pages());
  // Without prefix caching the other choices still wait for choice 0, so each first event has the scores.
  config.enable_prefix_caching = false;
  make(config);
  check(collect(submit(scored(3)), 3), "no prefix caching, n=3");
}

// A scripted model that spells `text` and then emits EOS.
class ScriptedEngineTest : public EngineTest {
 protected:
  static constexpr int kPromptLen = 5;
  std::string script_ = "Hello World! Bye";
  void configure_model(FakeTransformer& model) override {
    model.set_favorite([this](std::span<const int32_t> context) -> std::optional<TokenId> {
      size_t produced = context.size() - kPromptLen;
      if (produced < script_.size()) return static_cast<unsigned char>(script_[produced]);
      return kEos;
    });
  }
  Collected generate(SamplingParams params) {
    GenerateRequest request;
    request.prompt_tokens = make_prompt(kPromptLen, 1);
    request.sampling = params;
    return collect(submit(request));
  }
};

TEST_F(ScriptedEngineTest, StopConditions) {
  make();
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 40;

  Collected eos = generate(greedy);
  EXPECT_EQ(eos.text[0], "Hello World! Bye");
  EXPECT_EQ(eos.finish[0], FinishReason::kStop);
  EXPECT_EQ(eos.tokens[0].back(), kEos);
  EXPECT_FALSE(eos.stop_token[0].has_value());

  SamplingParams stop_string = greedy;
  stop_string.stop = {"xyz", "World"};
  Collected s = generate(stop_string);
  EXPECT_EQ(s.text[0], "Hello ");
  EXPECT_EQ(s.finish[0], FinishReason::kStop);
  EXPECT_EQ(s.stop_string[0], "World");
  EXPECT_EQ(s.tokens[0].size(), 11u);  // through the "d" that completed the stop string

  SamplingParams stop_token = greedy;
  stop_token.stop_token_ids = {'!'};
  Collected t = generate(stop_token);
  EXPECT_EQ(t.text[0], "Hello World");
  EXPECT_EQ(t.stop_token[0], '!');

  // include_stop_str_in_output: the stop string (or the stop token's text) ends the output.
  SamplingParams with_string = stop_string;
  with_string.include_stop_str_in_output = true;
  Collected ws = generate(with_string);
  EXPECT_EQ(ws.text[0], "Hello World");
  EXPECT_EQ(ws.stop_string[0], "World");
  SamplingParams with_token = stop_token;
  with_token.include_stop_str_in_output = true;
  Collected wt = generate(with_token);
  EXPECT_EQ(wt.text[0], "Hello World!");
  EXPECT_EQ(wt.stop_token[0], '!');

  SamplingParams length = greedy;
  length.max_tokens = 5;
  Collected l = generate(length);
  EXPECT_EQ(l.text[0], "Hello");
  EXPECT_EQ(l.finish[0], FinishReason::kLength);

  SamplingParams ignore = greedy;
  ignore.ignore_eos = true;
  ignore.max_tokens = 20;
  Collected i = generate(ignore);
  EXPECT_EQ(i.tokens[0].size(), 20u);
  EXPECT_EQ(i.finish[0], FinishReason::kLength);
  EXPECT_EQ(i.tokens[0][16], kEos);  // generated, but it did not end the choice

  SamplingParams min_tokens = greedy;
  min_tokens.min_tokens = 18;  // EOS is masked until 18 outputs
  min_tokens.max_tokens = 19;
  Collected m = generate(min_tokens);
  EXPECT_EQ(m.tokens[0].size(), 19u);
  EXPECT_EQ(std::count(m.tokens[0].begin(), m.tokens[0].begin() + 18, kEos), 0);

  SamplingParams logprobs = greedy;
  logprobs.logprobs = 2;
  logprobs.max_tokens = 3;
  Collected lp = generate(logprobs);
  ASSERT_EQ(lp.logprobs[0].size(), 3u);
  EXPECT_EQ(lp.logprobs[0][0].token, 'H');
  EXPECT_EQ(lp.logprobs[0][0].top.size(), 2u);
  EXPECT_EQ(lp.logprobs[0][0].top[0].first, 'H');
  EXPECT_LT(lp.logprobs[0][0].logprob, 0.0f);
  EXPECT_GT(lp.logprobs[0][0].logprob, -0.01f);  // the favorite has nearly all the mass
}

TEST_F(EngineTest, SubmitRejectsBadRequestsWithClearErrors) {
  EngineConfig config = test_config();
  config.max_model_len = 1000;
  make(config, /*num_pages=*/9);  // 512 tokens of KV and the null page

  auto code_of = [&](GenerateRequest request) { return engine_->submit(std::move(request)).status(); };
  Status too_long = code_of(greedy_request(make_prompt(400, 1), 200));
  EXPECT_EQ(too_long.code(), StatusCode::kOutOfRange);
  EXPECT_NE(too_long.message().find("KV cache capacity of 512"), std::string::npos) << too_long.message();
  config.max_model_len = 100;
  make(config, 8);
  Status context = code_of(greedy_request(make_prompt(90, 1), 20));
  EXPECT_EQ(context.code(), StatusCode::kOutOfRange);
  EXPECT_NE(context.message().find("context of 100"), std::string::npos) << context.message();
  EXPECT_EQ(code_of(greedy_request(make_prompt(100, 1), 1)).code(), StatusCode::kOutOfRange);
  EXPECT_EQ(code_of(greedy_request({}, 1)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(code_of(greedy_request({300}, 1)).code(), StatusCode::kInvalidArgument);
  GenerateRequest bad = greedy_request(make_prompt(5, 1), 3);
  bad.sampling.top_p = 0.0f;
  Status top_p = code_of(bad);
  EXPECT_EQ(top_p.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(top_p.message().find("top_p"), std::string::npos);
  bad = greedy_request(make_prompt(5, 1), 3);
  bad.sampling.stop = {""};
  EXPECT_EQ(code_of(bad).code(), StatusCode::kInvalidArgument);
  bad = greedy_request(make_prompt(5, 1), 3);
  bad.sampling.min_tokens = 4;
  EXPECT_EQ(code_of(bad).code(), StatusCode::kInvalidArgument);
  bad = greedy_request(make_prompt(5, 1), 3);
  bad.sampling.logprobs = 21;
  EXPECT_EQ(code_of(bad).code(), StatusCode::kInvalidArgument);

  // No max_tokens: generate until the context is full.
  GenerateRequest open = greedy_request(make_prompt(90, 1), 1);
  open.sampling.max_tokens.reset();
  open.sampling.ignore_eos = true;
  Collected out = collect(submit(open));
  EXPECT_EQ(out.tokens[0].size(), 10u);
  EXPECT_EQ(out.finish[0], FinishReason::kLength);
  EXPECT_EQ(engine_->metrics().requests_rejected, 8);
}

TEST_F(EngineTest, PromptLogprobsOutsideTheLimitAreRefused) {
  make();
  GenerateRequest request = greedy_request(make_prompt(10, 1), 2);
  request.sampling.prompt_logprobs = 21;
  StatusOr<RequestHandle> handle = engine_->submit(request);
  ASSERT_FALSE(handle.ok());
  EXPECT_EQ(handle.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(handle.status().message().find("prompt_logprobs"), std::string::npos) << handle.status().message();
}

TEST_F(EngineTest, OverloadDuplicateIdsAndStop) {
  EngineConfig config = test_config();
  config.max_waiting_requests = 2;
  make(config, 64, /*start=*/false);
  GenerateRequest request = greedy_request(make_prompt(10, 1), 4);
  request.request_id = "a";
  RequestHandle a = submit(request);
  EXPECT_EQ(engine_->submit(request).status().code(), StatusCode::kInvalidArgument);  // id in use
  request.request_id.clear();
  RequestHandle b = submit(request);
  EXPECT_NE(b.request_id, "a");
  Status overloaded = engine_->submit(request).status();
  EXPECT_EQ(overloaded.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(overloaded.message().find("overloaded"), std::string::npos);
  engine_->stop();
  EXPECT_EQ(collect(a).error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(collect(b).error.code(), StatusCode::kUnavailable);
  EXPECT_EQ(engine_->submit(request).status().code(), StatusCode::kUnavailable);
}

TEST_F(EngineTest, DrainFinishesInFlightRequestsOrAbortsThemAtTheDeadline) {
  make();
  RequestHandle quick = submit(greedy_request(make_prompt(30, 1), 8));
  EXPECT_TRUE(engine_->drain(10s).ok());
  EXPECT_TRUE(collect(quick).error.ok());
  EXPECT_EQ(engine_->submit(greedy_request(make_prompt(30, 1), 8)).status().code(), StatusCode::kUnavailable);

  // A request that needs 16,000 model steps, while the test grants at most one step per
  // millisecond of waiting: it cannot finish within the 50 ms deadline (it would need 16 s), and
  // the steps granted after the deadline let the engine apply the drain's abort.
  EngineConfig config = test_config();
  config.max_model_len = 16384;
  make(config, /*num_pages=*/256);  // 16384 tokens of KV
  GenerateRequest endless = greedy_request(make_prompt(30, 1), 16000);
  endless.sampling.ignore_eos = true;
  model_->gate().close();
  RequestHandle slow = submit(endless);
  std::promise<void> draining;
  std::future<Status> drained = std::async(std::launch::async, [&] {
    draining.set_value();
    return engine_->drain(50ms);
  });
  draining.get_future().wait();
  while (drained.wait_for(1ms) != std::future_status::ready) model_->gate().grant(1);
  Status status = drained.get();
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.to_string();
  model_->gate().open();
  Collected rest = collect(slow);
  EXPECT_EQ(rest.error.code(), StatusCode::kUnavailable);
  EXPECT_LT(rest.tokens[0].size(), 16000u);
  EXPECT_TRUE(wait_for_idle_pages());
}

TEST_F(EngineTest, AFailedStepFailsItsRequestsAndFreesTheirPages) {
  make();
  EXPECT_TRUE(collect(submit(greedy_request(make_prompt(100, 1), 3))).error.ok());
  model_->fail_forward_calls(true);
  Collected failed = collect(submit(greedy_request(make_prompt(100, 2), 3)));
  EXPECT_EQ(failed.error.code(), StatusCode::kInternal);
  EXPECT_NE(failed.error.message().find("fake forward failure"), std::string::npos);
  EXPECT_TRUE(wait_for_idle_pages());
  model_->fail_forward_calls(false);
  EXPECT_TRUE(collect(submit(greedy_request(make_prompt(100, 3), 3))).error.ok());
}

TEST(EngineConfig, RejectsBadValues) {
  EngineConfig config;
  EXPECT_TRUE(config.validate().ok());
  config.max_waiting_requests = 0;
  EXPECT_FALSE(config.validate().ok());
  config = EngineConfig{};
  config.scheduler.max_batched_tokens = 0;
  EXPECT_FALSE(config.validate().ok());
}

}  // namespace
}  // namespace longbow
