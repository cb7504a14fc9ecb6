#include "server/engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "common/rng.h"

namespace longbow {
namespace {

constexpr TokenId kEos = 5;

std::vector<float> log_probs(const std::vector<double>& probs) {
  std::vector<float> out;
  for (double p : probs) out.push_back(static_cast<float>(std::log(p)));
  return out;
}

struct Fixture {
  explicit Fixture(std::vector<float> row) : logits(std::move(row)), sampler(static_cast<int>(logits.size()), {kEos}) {}

  SampleInput input(int num_outputs = 0, uint64_t stream = 7) const {
    SampleInput in;
    in.logits = logits;
    in.params = &params;
    in.penalties = &penalties;
    in.num_outputs = num_outputs;
    in.stream = stream;
    return in;
  }
  TokenId sample(int num_outputs = 0, uint64_t stream = 7) {
    auto out = sampler.sample(input(num_outputs, stream));
    EXPECT_TRUE(out.ok()) << out.status().to_string();
    return out.ok() ? out->token : -1;
  }
  std::map<TokenId, double> distribution() {
    auto dist = sampler.distribution(input());
    EXPECT_TRUE(dist.ok()) << dist.status().to_string();
    std::map<TokenId, double> out;
    if (dist.ok()) for (auto [id, p] : *dist) out[id] = p;
    return out;
  }
  // Empirical frequencies over `draws` counters of one stream.
  std::map<TokenId, double> frequencies(int draws) {
    std::map<TokenId, double> out;
    for (int i = 0; i < draws; ++i) out[sample(i)] += 1.0 / draws;
    return out;
  }

  std::vector<float> logits;
  SamplingParams params;
  PenaltyState penalties;
  Sampler sampler;
};

void expect_distribution(const std::map<TokenId, double>& actual, const std::map<TokenId, double>& expected,
                         double tolerance) {
  ASSERT_EQ(actual.size(), expected.size());
  for (auto [id, p] : expected) {
    ASSERT_TRUE(actual.count(id)) << "token " << id << " missing";
    EXPECT_NEAR(actual.at(id), p, tolerance) << "token " << id;
  }
}

TEST(Rng, DrawsAreUniformAndDependOnlyOnStreamAndCounter) {
  EXPECT_EQ(uniform_draw(1, 5), uniform_draw(1, 5));
  EXPECT_NE(uniform_draw(1, 5), uniform_draw(2, 5));
  EXPECT_NE(sampling_stream(9, 0), sampling_stream(9, 1));
  std::vector<int> buckets(10, 0);
  double mean = 0.0;
  constexpr int kDraws = 100000;
  for (int i = 0; i < kDraws; ++i) {
    double u = uniform_draw(sampling_stream(42, 0), static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++buckets[static_cast<size_t>(u * 10)];
    mean += u / kDraws;
  }
  EXPECT_NEAR(mean, 0.5, 0.01);
  for (int count : buckets) EXPECT_NEAR(count, kDraws / 10, kDraws / 100);
}

TEST(Sampler, GreedyTakesTheArgmaxWithTiesToTheLowestId) {
  Fixture f({0.1f, 2.0f, -1.0f, 2.0f, 0.5f, 1.0f});
  f.params.temperature = 0.0f;
  EXPECT_EQ(f.sample(), 1);
  f.params.temperature = 1.0f;
  f.params.top_k = 1;
  EXPECT_EQ(f.sample(), 1);
}

TEST(Sampler, TemperatureSamplesTheSoftmax) {
  Fixture f(log_probs({0.5, 0.3, 0.2}));
  expect_distribution(f.distribution(), {{0, 0.5}, {1, 0.3}, {2, 0.2}}, 1e-6);
  expect_distribution(f.frequencies(40000), {{0, 0.5}, {1, 0.3}, {2, 0.2}}, 0.01);
  // T = 0.5 squares the probabilities: 0.25 : 0.09 : 0.04.
  f.params.temperature = 0.5f;
  expect_distribution(f.distribution(), {{0, 0.25 / 0.38}, {1, 0.09 / 0.38}, {2, 0.04 / 0.38}}, 1e-6);
  expect_distribution(f.frequencies(40000), {{0, 0.25 / 0.38}, {1, 0.09 / 0.38}, {2, 0.04 / 0.38}}, 0.01);
}

TEST(Sampler, TopKKeepsTheKMostLikely) {
  Fixture f(log_probs({0.1, 0.4, 0.2, 0.3}));
  f.params.top_k = 2;
  expect_distribution(f.distribution(), {{1, 4.0 / 7}, {3, 3.0 / 7}}, 1e-6);
  expect_distribution(f.frequencies(20000), {{1, 4.0 / 7}, {3, 3.0 / 7}}, 0.015);
  f.params.top_k = -1;  // off
  EXPECT_EQ(f.distribution().size(), 4u);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  Fixture f(log_probs({0.05, 0.5, 0.15, 0.3}));
  f.params.top_p = 0.75f;  // 0.5 + 0.3 covers it
  expect_distribution(f.distribution(), {{1, 0.5 / 0.8}, {3, 0.3 / 0.8}}, 1e-6);
  expect_distribution(f.frequencies(20000), {{1, 0.5 / 0.8}, {3, 0.3 / 0.8}}, 0.015);
  f.params.top_p = 0.85f;
  expect_distribution(f.distribution(), {{1, 0.5 / 0.95}, {3, 0.3 / 0.95}, {2, 0.15 / 0.95}}, 1e-6);
  f.params.top_p = 0.01f;  // at least one token survives
  expect_distribution(f.distribution(), {{1, 1.0}}, 1e-9);
}

TEST(Sampler, MinPDropsTokensFarBelowTheBest) {
  Fixture f(log_probs({0.5, 0.3, 0.15, 0.05}));
  f.params.min_p = 0.5f;  // keep p >= 0.25
  expect_distribution(f.distribution(), {{0, 0.5 / 0.8}, {1, 0.3 / 0.8}}, 1e-6);
  f.params.min_p = 0.2f;  // keep p >= 0.1
  expect_distribution(f.distribution(), {{0, 0.5 / 0.95}, {1, 0.3 / 0.95}, {2, 0.15 / 0.95}}, 1e-6);
}

// On a large vocabulary the nucleus is found among the best 1024 candidates first; the result must
// equal the nucleus computed by sorting everything.
TEST(Sampler, TopPOnALargeVocabularyMatchesAFullSort) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(50000);
  for (float& x : logits) x = normal(rng);
  for (float top_p : {0.3f, 0.9f, 0.999f}) {
    Fixture f(logits);
    f.params.top_p = top_p;
    auto actual = f.distribution();

    std::vector<double> p(logits.size());
    double max_value = *std::max_element(logits.begin(), logits.end());
    double total = 0.0;
    for (size_t i = 0; i < p.size(); ++i) total += p[i] = std::exp(logits[i] - max_value);
    std::vector<TokenId> order(p.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](TokenId a, TokenId b) { return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)]; });
    std::map<TokenId, double> expected;
    double kept = 0.0;
    for (TokenId id : order) {
      kept += p[static_cast<size_t>(id)];
      expected[id] = p[static_cast<size_t>(id)];
      if (kept >= top_p * total) break;
    }
    for (auto& [id, q] : expected) q /= kept;
    SCOPED_TRACE(top_p);
    expect_distribution(actual, expected, 1e-9);
  }
}

TEST(Sampler, SameSeedSameTokensDifferentSeedDifferentTokens) {
  Fixture f(log_probs({0.2, 0.2, 0.2, 0.2, 0.2}));
  auto run = [&](uint64_t seed) {
    std::vector<TokenId> tokens;
    for (int i = 0; i < 64; ++i) tokens.push_back(f.sample(i, sampling_stream(seed, 0)));
    return tokens;
  };
  EXPECT_EQ(run(1234), run(1234));
  EXPECT_NE(run(1234), run(1235));
  // Choices of one request get different streams.
  std::vector<TokenId> a, b;
  for (int i = 0; i < 64; ++i) {
    a.push_back(f.sample(i, sampling_stream(1234, 0)));
    b.push_back(f.sample(i, sampling_stream(1234, 1)));
  }
  EXPECT_NE(a, b);
}

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  Fixture f({2.0f, 1.9f, -1.0f, -1.1f, -5.0f, -5.0f});
  f.params.temperature = 0.0f;
  f.params.repetition_penalty = 2.0f;
  std::vector<TokenId> prompt = {0};
  f.penalties = PenaltyState(f.params, prompt, 6);
  EXPECT_EQ(f.sample(), 1);  // 2.0 / 2 = 1.0 < 1.9
  // Token 1 seen in the output too: 0.95 < 1.0.
  f.penalties.record_output(1);
  EXPECT_EQ(f.sample(), 0);
  // Negative logits move away from zero: with 0 and 1 masked, -1.0 * 2 = -2 loses to -1.1.
  f.params.logit_bias = {{0, -100.0f}, {1, -100.0f}};
  f.penalties.record_output(2);
  EXPECT_EQ(f.sample(), 3);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesUseOutputCounts) {
  Fixture f({3.0f, 2.5f, 0.0f, 0.0f, 0.0f, 0.0f});
  f.params.temperature = 0.0f;
  f.penalties.record_output(0);
  f.penalties.record_output(0);
  f.params.frequency_penalty = 0.2f;  // 3.0 - 0.4 = 2.6 > 2.5
  EXPECT_EQ(f.sample(), 0);
  f.params.presence_penalty = 0.2f;  // 3.0 - 0.4 - 0.2 = 2.4 < 2.5
  EXPECT_EQ(f.sample(), 1);
  f.params.frequency_penalty = 0.0f;
  f.params.presence_penalty = -1.0f;  // negative presence encourages repeats
  EXPECT_EQ(f.sample(), 0);
}

TEST(Sampler, LogitBiasShiftsLogits) {
  Fixture f({3.0f, 2.5f, 0.0f, 0.0f, 0.0f, 0.0f});
  f.params.temperature = 0.0f;
  f.params.logit_bias = {{3, 100.0f}};
  EXPECT_EQ(f.sample(), 3);
  f.params.logit_bias = {{0, -100.0f}};
  EXPECT_EQ(f.sample(), 1);
  f.params.logit_bias = {{0, -100.0f}, {1, -100.0f}, {2, 1.0f}};
  f.params.temperature = 1.0f;
  f.params.top_k = 1;
  EXPECT_EQ(f.sample(), 2);
}

TEST(Sampler, MinTokensSuppressesEosAndStopTokens) {
  Fixture f({0.0f, 0.0f, 0.0f, 4.0f, 0.0f, 5.0f});  // EOS (5) is the argmax, then 3
  f.params.temperature = 0.0f;
  f.params.min_tokens = 2;
  f.params.stop_token_ids = {3};
  EXPECT_EQ(f.sample(0), 0);  // both suppressed: ties among the rest go to the lowest id
  EXPECT_EQ(f.sample(1), 0);
  EXPECT_EQ(f.sample(2), kEos);  // from the second output on, EOS is allowed again
}

TEST(Sampler, LogprobsAreTheRawLogSoftmaxWithTopAlternatives) {
  std::vector<double> probs = {0.1, 0.4, 0.2, 0.3};
  Fixture f(log_probs(probs));
  f.params.temperature = 0.0f;
  f.params.logprobs = 3;
  f.params.logit_bias = {{0, 50.0f}};  // changes the choice, not the reported distribution
  auto out = f.sampler.sample(f.input());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->token, 0);
  ASSERT_TRUE(out->logprob.has_value());
  EXPECT_NEAR(out->logprob->logprob, std::log(0.1), 1e-5);
  ASSERT_EQ(out->logprob->top.size(), 3u);
  EXPECT_EQ(out->logprob->top[0].first, 1);
  EXPECT_EQ(out->logprob->top[1].first, 3);
  EXPECT_EQ(out->logprob->top[2].first, 2);
  EXPECT_NEAR(out->logprob->top[0].second, std::log(0.4), 1e-5);
  EXPECT_NEAR(out->logprob->top[2].second, std::log(0.2), 1e-5);
  f.params.logprobs = 0;  // the token's own logprob only
  out = f.sampler.sample(f.input());
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->logprob->top.empty());
}

TEST(Sampler, RejectsWrongSizesAndAllMaskedRows) {
  Fixture f({1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f});
  std::vector<float> short_row = {1.0f, 2.0f};
  SampleInput in = f.input();
  in.logits = short_row;
  EXPECT_EQ(f.sampler.sample(in).status().code(), StatusCode::kInvalidArgument);
  Fixture nan_row(std::vector<float>(6, std::nanf("")));
  EXPECT_EQ(nan_row.sampler.sample(nan_row.input()).status().code(), StatusCode::kInternal);
  nan_row.params.temperature = 0.0f;
  EXPECT_EQ(nan_row.sampler.sample(nan_row.input()).status().code(), StatusCode::kInternal);
}

}  // namespace
}  // namespace longbow
