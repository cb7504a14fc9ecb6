// The engine on the CPU demo model (<build>/demo-model, target demo_model) with the real runtime,
// CPU backend and sentencepiece tokenizer: batching and preemption do not change greedy tokens,
// cancellation returns every page, and a repeated long prompt is served from the prefix cache.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/transformer.h"
#include "model/tokenizer/tokenizer.h"
#include "model/weights/safetensors.h"
#include "server/engine/engine.h"
#include "tests/unit/engine/step_gate.h"

namespace longbow {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const std::string kModelDir = std::string(LONGBOW_BINARY_DIR) + "/demo-model";

struct Demo {
  ModelConfig config;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Checkpoint> checkpoint;
  std::string text;  // demo corpus text to cut prompts from
};

Demo* demo = nullptr;

class DemoModelEngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = std::make_unique<Demo>();
    auto config = load_model_config(kModelDir);
    ASSERT_TRUE(config.ok()) << config.status().to_string() << " (build the demo_model target)";
    loaded->config = *config;
    auto tokenizer = load_sentencepiece_tokenizer(kModelDir + "/tokenizer.model");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().to_string();
    loaded->tokenizer = std::move(tokenizer).value();
    auto backend = create_backend("cpu");
    ASSERT_TRUE(backend.ok()) << backend.status().to_string();
    loaded->backend = std::move(backend).value();
    auto checkpoint = Checkpoint::open(kModelDir);
    ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
    loaded->checkpoint = std::move(checkpoint).value();
    std::ifstream file(std::string(LONGBOW_SOURCE_DIR) + "/tools/demo_model/text/en_stories.txt");
    std::stringstream text;
    text << file.rdbuf();
    loaded->text = text.str();
    ASSERT_GT(loaded->text.size(), 5000u);
    demo = loaded.release();
  }
  static void TearDownTestSuite() {
    delete demo;
    demo = nullptr;
  }

  ~DemoModelEngineTest() override { stop_engine(); }
  // Stops the engine before its runtime goes; a runtime held at its step gate is let go first.
  void stop_engine() {
    if (gated_) gated_->gate().open();
    engine_.reset();
  }
  void make(int num_pages, int max_batched_tokens, bool start = true, bool device_sampling = true) {
    stop_engine();
    RuntimeOptions options;
    options.num_kv_pages = num_pages;
    options.max_batched_tokens = max_batched_tokens;
    options.max_num_seqs = 64;
    auto runtime = Transformer::load(demo->config, *demo->checkpoint, *demo->backend, options);
    ASSERT_TRUE(runtime.ok()) << runtime.status().to_string();
    runtime_ = std::move(runtime).value();
    gated_ = std::make_unique<fakes::GatedTransformer>(*runtime_);
    EngineConfig config;
    config.scheduler.max_batched_tokens = max_batched_tokens;
    config.scheduler.max_num_seqs = 64;
    config.check_kv_integrity = true;
    config.device_sampling = device_sampling;
    auto engine = Engine::create(config, *gated_, *demo->tokenizer);
    ASSERT_TRUE(engine.ok()) << engine.status().to_string();
    engine_ = std::move(engine).value();
    if (start) {
      ASSERT_TRUE(engine_->start().ok());
    }
  }

  // A prompt of about `num_tokens` tokens cut from the demo corpus at `offset` characters.
  static std::vector<TokenId> prompt(size_t offset, int num_tokens) {
    std::vector<TokenId> ids = demo->tokenizer->encode(demo->text.substr(offset % (demo->text.size() / 2)));
    ids.resize(std::min(ids.size(), static_cast<size_t>(num_tokens)));
    return ids;
  }

  static GenerateRequest greedy(std::vector<TokenId> prompt_tokens, int max_tokens) {
    GenerateRequest request;
    request.prompt_tokens = std::move(prompt_tokens);
    request.sampling.temperature = 0.0f;
    request.sampling.max_tokens = max_tokens;
    request.sampling.ignore_eos = true;
    return request;
  }

  RequestHandle submit(GenerateRequest request) {
    auto handle = engine_->submit(std::move(request));
    EXPECT_TRUE(handle.ok()) << handle.status().to_string();
    return handle.ok() ? *handle : RequestHandle{};
  }

  struct Result {
    std::vector<TokenId> tokens;
    std::string text;
    Usage usage;
    Status error;
  };
  static Result collect(const RequestHandle& handle) {
    Result result;
    if (!handle.events) return result;
    while (auto event = handle.events->next(120s)) {
      result.tokens.insert(result.tokens.end(), event->token_ids.begin(), event->token_ids.end());
      result.text += event->text;
      if (event->usage) result.usage = *event->usage;
      if (!event->error.ok()) result.error = event->error;
      if (event->last) return result;
    }
    ADD_FAILURE() << "request " << handle.request_id << " did not finish";
    return result;
  }

  bool wait_for_idle_pages() {
    auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      MetricsSnapshot m = engine_->metrics();
      if (m.kv_pages_used == 0 && m.num_requests_running == 0 && m.num_requests_waiting == 0) return true;
      std::this_thread::sleep_for(2ms);
    }
    return false;
  }

  std::unique_ptr<Transformer> runtime_;
  std::unique_ptr<fakes::GatedTransformer> gated_;  // runtime_ behind a step gate; the engine runs this
  std::unique_ptr<Engine> engine_;
};

// The target request's greedy tokens alone, in the middle of 32 other requests (mixed prompt
// lengths and max_tokens, so prefill chunks and decodes share steps), and when it is preempted and
// recomputed: two older requests that outgrow a 6-page pool take its pages (the newest running
// request is the victim). Everything is queued before start(), so the schedule is deterministic.
TEST_F(DemoModelEngineTest, GreedyTokensAreTheSameAloneAmong32AndWhenPreempted) {
  const std::vector<TokenId> target_prompt = prompt(0, 90);
  constexpr int kTargetTokens = 24;

  make(/*num_pages=*/64, /*max_batched_tokens=*/128);
  Result alone = collect(submit(greedy(target_prompt, kTargetTokens)));
  ASSERT_TRUE(alone.error.ok()) << alone.error.to_string();
  ASSERT_EQ(alone.tokens.size(), static_cast<size_t>(kTargetTokens));
  EXPECT_EQ(alone.usage.num_preemptions, 0);

  make(/*num_pages=*/64, /*max_batched_tokens=*/128, /*start=*/false);
  std::vector<RequestHandle> others;
  for (int i = 0; i < 16; ++i) others.push_back(submit(greedy(prompt(300 + 411 * i, 8 + 4 * i), 6 + i % 9)));
  RequestHandle target = submit(greedy(target_prompt, kTargetTokens));
  for (int i = 16; i < 32; ++i) others.push_back(submit(greedy(prompt(300 + 411 * i, 8 + 4 * i), 6 + i % 9)));
  ASSERT_TRUE(engine_->start().ok());
  Result crowded = collect(target);
  for (const RequestHandle& other : others) EXPECT_TRUE(collect(other).error.ok());
  ASSERT_TRUE(crowded.error.ok()) << crowded.error.to_string();
  EXPECT_EQ(crowded.tokens, alone.tokens);
  EXPECT_EQ(crowded.text, alone.text);
  EXPECT_EQ(crowded.usage.num_preemptions, 0);
  EXPECT_TRUE(wait_for_idle_pages());

  make(/*num_pages=*/6, /*max_batched_tokens=*/128, /*start=*/false);
  RequestHandle old_a = submit(greedy(prompt(5000, 120), 150));
  RequestHandle old_b = submit(greedy(prompt(7000, 120), 150));
  target = submit(greedy(target_prompt, kTargetTokens));
  ASSERT_TRUE(engine_->start().ok());
  Result preempted = collect(target);
  EXPECT_TRUE(collect(old_a).error.ok());
  EXPECT_TRUE(collect(old_b).error.ok());
  ASSERT_TRUE(preempted.error.ok()) << preempted.error.to_string();
  EXPECT_GT(preempted.usage.num_preemptions, 0) << "the target was never preempted";
  EXPECT_EQ(preempted.tokens, alone.tokens);
  EXPECT_EQ(preempted.text, alone.text);
  EXPECT_TRUE(wait_for_idle_pages());
}

TEST_F(DemoModelEngineTest, CancellingMidGenerationReturnsThePagesToTheirIdleCount) {
  make(/*num_pages=*/64, /*max_batched_tokens=*/256);
  ASSERT_TRUE(wait_for_idle_pages());
  int idle_used = engine_->metrics().kv_pages_used;
  EXPECT_EQ(idle_used, 0);
  // The runtime takes only the steps granted here: the request is mid-generation when cancelled.
  gated_->gate().close();
  RequestHandle handle = submit(greedy(prompt(1000, 200), 3000));
  gated_->gate().grant(8);  // the prefill (the first token) and 7 decodes
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(handle.events->next(60s).has_value());
  ASSERT_TRUE(gated_->gate().wait_blocked());  // the gauges of step 8 are published
  EXPECT_GE(engine_->metrics().kv_pages_used, 4);  // 200 prompt tokens + outputs
  engine_->cancel(handle.request_id);
  gated_->gate().open();  // the cancellation is queued: it ends the request at the next step
  Result rest = collect(handle);
  EXPECT_EQ(rest.error.code(), StatusCode::kCancelled);
  EXPECT_TRUE(wait_for_idle_pages());
  EXPECT_EQ(engine_->metrics().kv_pages_used, idle_used);
  EXPECT_GT(engine_->metrics().kv_pages_cached, 0);  // the full pages stay reusable
}

TEST_F(DemoModelEngineTest, RepeatedLongPromptHitsThePrefixCacheAndStartsSooner) {
  // The demo model's DSA layers select 64 of up to 1000 tokens: the warm run reads index keys that
  // the prefix cache kept with their pages.
  ASSERT_TRUE(demo->config.dsa.has_value() && demo->config.dsa->topk < 1000);
  make(/*num_pages=*/64, /*max_batched_tokens=*/512);
  const std::vector<TokenId> long_prompt = prompt(2000, 1000);
  ASSERT_EQ(long_prompt.size(), 1000u);
  // Work before the first token is counted (model steps and tokens computed), not timed.
  struct FirstToken {
    int64_t steps = 0;
    int64_t tokens_computed = 0;
  };
  auto first_token_after = [&](Result* result) {
    FirstToken cost;
    gated_->gate().close();
    int64_t steps_before = gated_->gate().steps_taken();
    int64_t computed_before = gated_->tokens_computed();
    RequestHandle handle = submit(greedy(long_prompt, 4));  // the first token is never the last
    std::optional<GenerateEvent> first;
    while (!first) {
      gated_->gate().grant(1);
      if (!gated_->gate().wait_blocked()) {
        ADD_FAILURE() << "the engine did not come back to the runtime";
        break;
      }
      first = handle.events->try_next();
    }
    cost.steps = gated_->gate().steps_taken() - steps_before;
    cost.tokens_computed = gated_->tokens_computed() - computed_before;
    gated_->gate().open();
    *result = collect(handle);
    if (first) result->tokens.insert(result->tokens.begin(), first->token_ids.begin(), first->token_ids.end());
    return cost;
  };
  Result cold, warm;
  FirstToken cold_cost = first_token_after(&cold);
  FirstToken warm_cost = first_token_after(&warm);
  EXPECT_EQ(warm.tokens, cold.tokens);
  EXPECT_EQ(cold.usage.cached_prompt_tokens, 0);
  EXPECT_EQ(warm.usage.cached_prompt_tokens, 960);  // 15 full pages; the last 40 tokens are recomputed
  MetricsSnapshot m = engine_->metrics();
  EXPECT_NEAR(m.prefix_cache_hit_rate(), 960.0 / 2000.0, 1e-9);
  EXPECT_EQ(cold_cost.steps, 2);  // 1000 tokens in chunks of 512
  EXPECT_EQ(cold_cost.tokens_computed, 1000);
  EXPECT_EQ(warm_cost.steps, 1);
  EXPECT_EQ(warm_cost.tokens_computed, 40);
}

TEST_F(DemoModelEngineTest, SeededSamplingIsReproducibleAndStreamsValidText) {
  make(/*num_pages=*/64, /*max_batched_tokens=*/256);
  GenerateRequest request;
  request.prompt_tokens = prompt(500, 40);
  request.sampling.temperature = 0.8f;
  request.sampling.top_p = 0.95f;
  request.sampling.top_k = 50;
  request.sampling.seed = 1234;
  request.sampling.max_tokens = 32;
  request.sampling.n = 2;
  auto run = [&] {
    RequestHandle handle = submit(request);
    std::vector<std::vector<TokenId>> tokens(2);
    std::vector<std::string> text(2);
    while (auto event = handle.events->next(60s)) {
      auto i = static_cast<size_t>(event->index);
      tokens[i].insert(tokens[i].end(), event->token_ids.begin(), event->token_ids.end());
      text[i] += event->text;
      EXPECT_TRUE(event->error.ok()) << event->error.to_string();
      if (event->last) break;
    }
    return std::make_pair(tokens, text);
  };
  auto [tokens_a, text_a] = run();
  auto [tokens_b, text_b] = run();
  EXPECT_EQ(tokens_a, tokens_b);
  EXPECT_EQ(text_a, text_b);
  EXPECT_NE(tokens_a[0], tokens_a[1]);
  for (size_t i = 0; i < 2; ++i) {
    // Streamed text equals the tokenizer's decode (when the choice did not stop at EOS).
    std::vector<TokenId> ids = tokens_a[i];
    if (!ids.empty() && demo->tokenizer->eos_id() && ids.back() == *demo->tokenizer->eos_id()) ids.pop_back();
    std::vector<TokenId> with_prompt = request.prompt_tokens;
    std::string prompt_text = demo->tokenizer->decode(with_prompt);
    with_prompt.insert(with_prompt.end(), ids.begin(), ids.end());
    EXPECT_EQ(prompt_text + text_a[i], demo->tokenizer->decode(with_prompt)) << "choice " << i;
  }
}


// Structured outputs on the demo model, whose random weights never write JSON by themselves: the
// grammar masks make every sampled output a complete, valid instance, ended by EOS.
TEST_F(DemoModelEngineTest, StructuredOutputsConstrainTheRandomModel) {
  make(/*num_pages=*/256, /*max_batched_tokens=*/256);
  const std::string schema = R"({"type":"object","properties":{
      "name":{"type":"string","minLength":1,"maxLength":8},
      "age":{"type":"integer","minimum":0,"maximum":99},
      "role":{"enum":["admin","user"]},
      "flags":{"type":"array","items":{"type":"boolean"},"maxItems":3}},
    "required":["name","age","role"]})";
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    GenerateRequest request;
    request.prompt_tokens = prompt(seed * 300, 12);
    request.sampling.temperature = 1.0f;
    request.sampling.seed = seed;
    request.sampling.max_tokens = 300;
    request.sampling.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema, schema, {}};
    const Result result = collect(submit(std::move(request)));
    ASSERT_TRUE(result.error.ok()) << result.error.to_string();
    const nlohmann::json value = nlohmann::json::parse(result.text, nullptr, false);
    ASSERT_TRUE(value.is_object()) << result.text;
    ASSERT_TRUE(value.contains("name") && value["name"].is_string()) << result.text;
    EXPECT_GE(value["name"].get<std::string>().size(), 1u);
    ASSERT_TRUE(value.contains("age") && value["age"].is_number_integer()) << result.text;
    EXPECT_LE(value["age"].get<int>(), 99);
    EXPECT_TRUE(value["role"] == "admin" || value["role"] == "user") << result.text;
    if (value.contains("flags")) {
      EXPECT_LE(value["flags"].size(), 3u) << result.text;
    }
  }
  for (const auto& [spec, accepted] : std::vector<std::pair<StructuredOutputSpec, std::vector<std::string>>>{
           {{StructuredOutputSpec::Kind::kChoice, "", {"positive", "negative", "neutral"}}, {"positive", "negative", "neutral"}},
           {{StructuredOutputSpec::Kind::kRegex, "(yes|no), [0-9]{2}", {}}, {}}}) {
    GenerateRequest request;
    request.prompt_tokens = prompt(100, 8);
    request.sampling.temperature = 1.0f;
    request.sampling.seed = 3;
    request.sampling.max_tokens = 50;
    request.sampling.structured_output = spec;
    const Result result = collect(submit(std::move(request)));
    ASSERT_TRUE(result.error.ok()) << result.error.to_string();
    if (!accepted.empty()) {
      EXPECT_NE(std::find(accepted.begin(), accepted.end(), result.text), accepted.end()) << result.text;
    } else {
      EXPECT_TRUE(std::regex_match(result.text, std::regex("(yes|no), [0-9]{2}"))) << result.text;
    }
  }
  GenerateRequest bad = greedy(prompt(0, 4), 4);
  bad.sampling.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema, R"({"type":"string","format":"email"})", {}};
  auto rejected = engine_->submit(std::move(bad));
  ASSERT_FALSE(rejected.ok());
  EXPECT_NE(rejected.status().message().find("'format'"), std::string::npos) << rejected.status().message();
}

// Sampling on the backend (the CPU op) and on the host (logits downloaded, the host sampler) give the
// same tokens and logprobs for every kind of parameter, batched together: greedy, seeded
// temperature with top-k, top-p and min-p, penalties, logit bias, min_tokens and a grammar.
TEST_F(DemoModelEngineTest, DeviceAndHostSamplingGiveTheSameTokensAndLogprobs) {
  std::vector<GenerateRequest> requests;
  auto add = [&](int i, auto&& set) {
    GenerateRequest request;
    request.prompt_tokens = prompt(211 * static_cast<size_t>(i), 10 + 3 * i);
    request.sampling.max_tokens = 12;
    request.sampling.seed = 100 + static_cast<uint64_t>(i);
    request.sampling.logprobs = i % 3 == 0 ? 5 : (i % 3 == 1 ? 0 : std::optional<int>());
    set(request.sampling);
    requests.push_back(std::move(request));
  };
  add(0, [](SamplingParams& p) { p.temperature = 0.0f; });
  add(1, [](SamplingParams& p) { p.temperature = 0.9f; });
  add(2, [](SamplingParams& p) { p.temperature = 0.7f, p.top_k = 20; });
  add(3, [](SamplingParams& p) { p.temperature = 1.2f, p.top_p = 0.8f; });
  add(4, [](SamplingParams& p) { p.temperature = 1.0f, p.min_p = 0.05f, p.top_k = 100, p.top_p = 0.9f; });
  add(5, [](SamplingParams& p) { p.temperature = 0.0f, p.repetition_penalty = 1.3f, p.frequency_penalty = 0.5f; });
  add(6, [](SamplingParams& p) { p.temperature = 0.8f, p.presence_penalty = 1.0f, p.logit_bias = {{5, 4.0f}, {9, -3.0f}}; });
  add(7, [](SamplingParams& p) { p.temperature = 0.0f, p.min_tokens = 8, p.ignore_eos = false, p.n = 2; });
  add(8, [](SamplingParams& p) {
    p.temperature = 1.0f;
    p.structured_output = StructuredOutputSpec{StructuredOutputSpec::Kind::kChoice, "", {"alpha", "beta", "gamma"}};
  });
  struct Output {
    std::vector<std::vector<TokenId>> tokens;
    std::vector<std::vector<TokenLogprob>> logprobs;
  };
  auto run = [&](bool device_sampling) {
    make(/*num_pages=*/128, /*max_batched_tokens=*/128, /*start=*/false, device_sampling);
    std::vector<RequestHandle> handles;
    for (const GenerateRequest& request : requests) handles.push_back(submit(request));
    EXPECT_TRUE(engine_->start().ok());
    std::vector<Output> outputs;
    for (const RequestHandle& handle : handles) {
      Output out;
      while (auto event = handle.events->next(120s)) {
        EXPECT_TRUE(event->error.ok()) << event->error.to_string();
        const auto i = static_cast<size_t>(event->index);
        if (out.tokens.size() <= i) out.tokens.resize(i + 1), out.logprobs.resize(i + 1);
        out.tokens[i].insert(out.tokens[i].end(), event->token_ids.begin(), event->token_ids.end());
        out.logprobs[i].insert(out.logprobs[i].end(), event->logprobs.begin(), event->logprobs.end());
        if (event->last) break;
      }
      outputs.push_back(std::move(out));
    }
    return outputs;
  };
  const std::vector<Output> host = run(false);
  EXPECT_EQ(engine_->num_device_sampled_rows(), 0);
  EXPECT_GT(engine_->num_host_sampled_rows(), 0);
  const std::vector<Output> device = run(true);
  EXPECT_GT(engine_->num_device_sampled_rows(), 0);
  EXPECT_EQ(engine_->num_host_sampled_rows(), 0);
  ASSERT_EQ(host.size(), device.size());
  for (size_t r = 0; r < host.size(); ++r) {
    ASSERT_FALSE(host[r].tokens.empty()) << "request " << r;
    EXPECT_EQ(device[r].tokens, host[r].tokens) << "request " << r;
    ASSERT_EQ(device[r].logprobs.size(), host[r].logprobs.size()) << "request " << r;
    for (size_t c = 0; c < host[r].logprobs.size(); ++c) {
      ASSERT_EQ(device[r].logprobs[c].size(), host[r].logprobs[c].size()) << "request " << r;
      for (size_t t = 0; t < host[r].logprobs[c].size(); ++t) {
        const TokenLogprob& d = device[r].logprobs[c][t];
        const TokenLogprob& h = host[r].logprobs[c][t];
        EXPECT_EQ(d.token, h.token);
        EXPECT_EQ(d.logprob, h.logprob);
        EXPECT_EQ(d.top, h.top);
      }
    }
  }
  EXPECT_EQ(host[0].logprobs[0].size(), 12u);
  EXPECT_EQ(host[0].logprobs[0][0].top.size(), 5u);
}

}  // namespace
}  // namespace longbow
