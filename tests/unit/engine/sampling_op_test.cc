// The CPU backend's `sample` op (model/backend/backend.h) against the engine's host Sampler: the same
// tokens and logprobs on random logits (NaN, -inf and tied values included) for every combination of
// temperature, top-k, top-p, min-p, penalties, logit bias, min_tokens masks, logprobs and a grammar
// allow mask, many rows in one call.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/rng.h"
#include "model/backend/backend.h"
#include "server/engine/sampler.h"

namespace longbow {
namespace {

constexpr int kVocab = 1000;
const std::vector<TokenId> kEos = {3, 17};

std::vector<float> random_row(std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> row(kVocab);
  for (float& x : row) x = normal(rng);
  std::uniform_int_distribution<int> pick(0, kVocab - 1);
  for (int i = 0; i < 20; ++i) row[static_cast<size_t>(pick(rng))] = row[static_cast<size_t>(pick(rng))];  // ties
  row[static_cast<size_t>(pick(rng))] = std::numeric_limits<float>::quiet_NaN();
  row[static_cast<size_t>(pick(rng))] = -std::numeric_limits<float>::infinity();
  return row;
}

struct Case {
  SamplingParams params;
  PenaltyState penalties;
  int num_outputs = 0;
  uint64_t stream = 0;
  std::vector<uint32_t> allow;
};

TEST(SamplingOp, CpuOpEqualsTheHostSamplerForEveryParameterCombination) {
  std::mt19937 rng(20261207);
  std::vector<Case> cases;
  int combo = 0;
  for (float temperature : {0.0f, 0.6f, 1.3f}) {
    for (int top_k : {0, 1, 7, 200}) {
      for (float top_p : {1.0f, 0.9f, 0.3f}) {
        for (float min_p : {0.0f, 0.1f}) {
          for (int extras = 0; extras < 16; ++extras) {
            Case c;
            SamplingParams& p = c.params;
            p.temperature = temperature;
            p.top_k = top_k;
            p.top_p = top_p;
            p.min_p = min_p;
            p.logprobs = combo % 3 == 0 ? std::optional<int>() : std::optional<int>(combo % 3 == 1 ? 0 : 5);
            std::vector<TokenId> prompt;
            if (extras & 1) {  // penalties
              p.repetition_penalty = 1.4f;
              p.presence_penalty = 0.7f;
              p.frequency_penalty = 0.3f;
              for (int i = 0; i < 30; ++i) prompt.push_back(static_cast<TokenId>(rng() % kVocab));
            }
            if (extras & 2) p.logit_bias = {{5, 3.0f}, {900, -50.0f}, {5, 1.5f}, {42, 8.0f}};
            if (extras & 4) {  // min_tokens masks EOS and the stop ids
              p.min_tokens = 100;
              p.stop_token_ids = {11, 12};
            }
            c.penalties = PenaltyState(p, prompt, kVocab);
            for (int i = 0; i < 12; ++i) c.penalties.record_output(static_cast<TokenId>(rng() % 60));
            c.num_outputs = 12;
            c.stream = sampling_stream(rng(), static_cast<uint64_t>(combo));
            if (extras & 8) {  // a grammar allowing about a quarter of the vocabulary
              c.allow.assign((kVocab + 31) / 32, 0);
              for (int id = 0; id < kVocab; ++id) {
                if (rng() % 4 == 0) c.allow[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
              }
            }
            cases.push_back(std::move(c));
            ++combo;
          }
        }
      }
    }
  }

  auto cpu = create_backend("cpu");
  ASSERT_TRUE(cpu.ok());
  Backend& backend = **cpu;
  constexpr size_t kRowsPerCall = 48;
  Sampler sampler(kVocab, kEos);
  int draws = 0, with_logprobs = 0;
  for (size_t first = 0; first < cases.size(); first += kRowsPerCall) {
    const size_t n = std::min(kRowsPerCall, cases.size() - first);
    std::vector<float> logits;
    std::vector<SamplingRow> rows;
    std::vector<SampleInput> inputs;
    for (size_t r = 0; r < n; ++r) {
      std::vector<float> row = random_row(rng);
      logits.insert(logits.end(), row.begin(), row.end());
    }
    for (size_t r = 0; r < n; ++r) {
      const Case& c = cases[first + r];
      SampleInput in{std::span<const float>(logits).subspan(r * kVocab, kVocab), &c.params, &c.penalties,
                     c.num_outputs, c.stream, c.allow};
      inputs.push_back(in);
      rows.push_back(make_sampling_row(in, kEos));
      ASSERT_TRUE(backend.supports_sampling(rows.back(), kVocab));
    }
    auto tensor = backend.allocate(DType::kF32, {static_cast<int64_t>(n), kVocab});
    ASSERT_TRUE(tensor.ok());
    ASSERT_TRUE(backend.upload(logits.data(), *tensor).ok());
    std::vector<RowSample> samples(n);
    ASSERT_TRUE(backend.sample(*tensor, rows, samples).ok());
    for (size_t r = 0; r < n; ++r) {
      auto expected = sampler.sample(inputs[r]);
      ASSERT_TRUE(expected.ok()) << expected.status().to_string();
      EXPECT_EQ(samples[r].token, expected->token) << "case " << first + r;
      draws += rows[r].greedy() ? 0 : 1;
      ASSERT_EQ(expected->logprob.has_value(), rows[r].num_logprobs >= 0);
      if (!expected->logprob) continue;
      ++with_logprobs;
      EXPECT_EQ(samples[r].logprob, expected->logprob->logprob) << "case " << first + r;
      EXPECT_EQ(samples[r].top, expected->logprob->top) << "case " << first + r;
      EXPECT_EQ(samples[r].top.size(), static_cast<size_t>(*cases[first + r].params.logprobs));
    }
  }
  EXPECT_GT(draws, 500);
  EXPECT_GT(with_logprobs, 500);
}

TEST(SamplingOp, CpuOpChecksShapes) {
  auto cpu = create_backend("cpu");
  ASSERT_TRUE(cpu.ok());
  auto tensor = (*cpu)->allocate(DType::kF32, {2, 10});
  ASSERT_TRUE(tensor.ok());
  const std::vector<float> zeros(20, 0.0f);
  ASSERT_TRUE((*cpu)->upload(zeros.data(), *tensor).ok());
  std::vector<SamplingRow> rows(1);
  std::vector<RowSample> out(1);
  EXPECT_EQ((*cpu)->sample(*tensor, rows, out).code(), StatusCode::kInvalidArgument);
  rows.resize(2);
  out.resize(2);
  rows[1].allow_mask = {1u, 2u};  // 10 ids need one word
  EXPECT_EQ((*cpu)->sample(*tensor, rows, out).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace longbow
