// The CUDA `sample` op against the CPU op (the reference sampler, model/sampling/reference_sampler.h)
// on fresh random logits: odd vocabulary sizes (1000, 32001, 128256), batches of 1 to 64 rows, every
// kind of row in one call (greedy, seeded temperature, top-k, top-p, min-p, penalties, bias, min_tokens
// masks, grammar allow masks, logprobs with top-N), NaN, -inf and tied logits included.
//
// Tokens must be equal, except for a seeded draw on a knife edge: the device sums the same double
// terms in another order (and exp may differ by an ulp), so a draw can move only where u lies within
// kKnifeEdge of a CDF boundary, top_p of a prefix mass, or min_p of a weight ratio. Such rows are
// detected from the reference's own distribution, counted and skipped (they must stay rare).
// Logprobs: within 1e-5 of the reference's (float rounding of a double sum in another order); top-N
// ids equal.
//
// Built only with LONGBOW_CUDA, run on the GPU machine from the bundle (longbow_kernel_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "common/rng.h"
#include "model/backend/backend.h"
#include "model/sampling/reference_sampler.h"

namespace longbow {
namespace {

constexpr double kKnifeEdge = 1e-9;
constexpr float kLogprobTolerance = 1e-5f;

class SamplingKernelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cuda = create_backend("cuda");
    ASSERT_TRUE(cuda.ok()) << cuda.status().to_string();
    auto cpu = create_backend("cpu");
    ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
    cuda_ = std::move(cuda).value().release();
    cpu_ = std::move(cpu).value().release();
  }
  static void TearDownTestSuite() {
    delete cuda_;
    delete cpu_;
  }

  std::vector<float> random_logits(int rows, int vocab) {
    std::vector<float> out(static_cast<size_t>(rows) * static_cast<size_t>(vocab));
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    for (int r = 0; r < rows; ++r) {
      // Flat rows (a long nucleus) and peaked ones (a short one).
      std::normal_distribution<float> normal(0.0f, r % 3 == 0 ? 8.0f : 2.0f);
      float* row = out.data() + static_cast<size_t>(r) * static_cast<size_t>(vocab);
      for (int i = 0; i < vocab; ++i) row[i] = normal(rng_);
      for (int i = 0; i < 16; ++i) row[pick(rng_)] = row[pick(rng_)];  // ties
      row[pick(rng_)] = std::numeric_limits<float>::quiet_NaN();
      row[pick(rng_)] = -std::numeric_limits<float>::infinity();
    }
    return out;
  }

  // Row `index`'s parameters: cycles through the kinds of rows.
  SamplingRow make_row(int index, int vocab) {
    SamplingRow row;
    row.stream = sampling_stream(rng_(), static_cast<uint64_t>(index));
    row.counter = rng_() % 1000;
    const int kind = index % 14;
    switch (kind) {
      case 0: row.temperature = 0.0f; break;
      case 1: row.temperature = 0.0f, row.num_logprobs = 5; break;
      case 2: row.temperature = 0.8f; break;
      case 3: row.temperature = 1.0f, row.top_k = 40; break;
      case 4: row.temperature = 0.7f, row.top_p = 0.9f; break;
      case 5: row.temperature = 1.3f, row.top_p = 0.5f, row.num_logprobs = 0; break;
      case 6: row.temperature = 1.0f, row.min_p = 0.05f; break;
      case 7: row.temperature = 0.9f, row.top_k = 1000, row.top_p = 0.95f, row.min_p = 0.02f; break;
      case 8: row.temperature = 1.0f, row.top_k = 1; break;
      case 9: row.temperature = 0.0f, row.num_logprobs = 20; break;
      case 10: row.temperature = 1.1f, row.top_k = 3, row.num_logprobs = 3; break;
      case 11: row.temperature = 0.6f, row.top_p = 0.99f; break;
      case 12: row.temperature = 2.0f; break;
      default: row.temperature = 0.0f; break;
    }
    std::uniform_int_distribution<int> pick(0, vocab - 1);
    if (index % 2 == 1) {  // bias (an id repeated), min_tokens masks, penalties
      row.logit_bias = {{pick(rng_), 5.0f}, {pick(rng_), -100.0f}, {7, 2.0f}, {7, 1.0f}};
      row.masked_ids = {pick(rng_), pick(rng_), 2};
      row.repetition_penalty = 1.3f;
      row.presence_penalty = 0.5f;
      row.frequency_penalty = 0.25f;
      std::vector<bool> used(static_cast<size_t>(vocab), false);
      for (int i = 0; i < 200; ++i) {
        const int id = pick(rng_);
        if (used[static_cast<size_t>(id)]) continue;
        used[static_cast<size_t>(id)] = true;
        row.penalties.push_back(PenaltyEntry{id, static_cast<int32_t>(rng_() % 3), rng_() % 2 == 0});
      }
    }
    if (index % 5 == 4) {  // a grammar allowing about a third of the vocabulary
      row.allow_mask.assign((static_cast<size_t>(vocab) + 31) / 32, 0u);
      for (int id = 0; id < vocab; ++id) {
        if (rng_() % 3 == 0) row.allow_mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
      }
    }
    return row;
  }

  // How close `row`'s draw lies to a knife edge (see the file comment); +inf for greedy rows.
  static double draw_margin(std::span<const float> logits, const SamplingRow& row) {
    if (row.greedy()) return std::numeric_limits<double>::infinity();
    ReferenceSampler reference(static_cast<int>(logits.size()));
    double margin = std::numeric_limits<double>::infinity();
    std::vector<std::pair<int32_t, double>> dist;
    EXPECT_TRUE(reference.distribution(logits, row, &dist).ok());
    const double u = uniform_draw(row.stream, row.counter);
    double cum = 0.0;
    for (const auto& [id, p] : dist) margin = std::min(margin, std::abs((cum += p) - u));
    // The top_p and min_p cuts, from the distribution without them, best first.
    SamplingRow open = row;
    open.top_p = 1.0f;
    open.min_p = 0.0f;
    EXPECT_TRUE(reference.distribution(logits, open, &dist).ok());
    std::sort(dist.begin(), dist.end(),
              [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
    if (row.min_p > 0.0f && !dist.empty()) {
      for (const auto& [id, p] : dist) margin = std::min(margin, std::abs(p / dist.front().second - row.min_p));
    }
    if (row.top_p < 1.0f) {
      SamplingRow kept = row;
      kept.top_p = 1.0f;
      EXPECT_TRUE(reference.distribution(logits, kept, &dist).ok());
      std::sort(dist.begin(), dist.end(),
                [](const auto& a, const auto& b) { return a.second > b.second || (a.second == b.second && a.first < b.first); });
      cum = 0.0;
      for (const auto& [id, p] : dist) margin = std::min(margin, std::abs((cum += p) - row.top_p));
    }
    return margin;
  }

  void run_case(int rows, int vocab) {
    const std::string label = "B=" + std::to_string(rows) + " vocab=" + std::to_string(vocab);
    std::vector<float> logits = random_logits(rows, vocab);
    std::vector<SamplingRow> params;
    for (int r = 0; r < rows; ++r) {
      params.push_back(make_row(r + next_kind_, vocab));
      ASSERT_TRUE(cuda_->supports_sampling(params.back(), vocab)) << label;
    }
    next_kind_ += 5;
    auto ref_tensor = cpu_->allocate(DType::kF32, {rows, vocab});
    auto dev_tensor = cuda_->allocate(DType::kF32, {rows, vocab});
    ASSERT_TRUE(ref_tensor.ok() && dev_tensor.ok());
    ASSERT_TRUE(cpu_->upload(logits.data(), *ref_tensor).ok());
    ASSERT_TRUE(cuda_->upload(logits.data(), *dev_tensor).ok());
    std::vector<RowSample> expected(static_cast<size_t>(rows)), got(static_cast<size_t>(rows));
    for (RowSample& g : got) g.token = -7, g.logprob = std::numeric_limits<float>::quiet_NaN();
    ASSERT_TRUE(cpu_->sample(*ref_tensor, params, expected).ok()) << label;
    Status status = cuda_->sample(*dev_tensor, params, got);
    ASSERT_TRUE(status.ok()) << label << ": " << status.to_string();
    int skipped = 0, draws = 0;
    for (int r = 0; r < rows; ++r) {
      const auto i = static_cast<size_t>(r);
      const SamplingRow& row = params[i];
      const std::span<const float> row_logits(logits.data() + i * static_cast<size_t>(vocab), static_cast<size_t>(vocab));
      draws += row.greedy() ? 0 : 1;
      if (draw_margin(row_logits, row) < kKnifeEdge) {
        ++skipped;
        continue;
      }
      EXPECT_EQ(got[i].token, expected[i].token) << label << " row " << r << " (kind " << (r + next_kind_ - 5) % 14 << ")";
      if (row.num_logprobs < 0 || expected[i].token < 0) continue;
      EXPECT_NEAR(got[i].logprob, expected[i].logprob, kLogprobTolerance) << label << " row " << r;
      ASSERT_EQ(got[i].top.size(), expected[i].top.size()) << label << " row " << r;
      for (size_t n = 0; n < got[i].top.size(); ++n) {
        EXPECT_EQ(got[i].top[n].first, expected[i].top[n].first) << label << " row " << r << " top " << n;
        EXPECT_NEAR(got[i].top[n].second, expected[i].top[n].second, kLogprobTolerance) << label << " row " << r;
      }
    }
    total_skipped_ += skipped;
    total_draws_ += draws;
    std::printf("[ sample ] %-24s %d rows, %d seeded draws, %d on a knife edge (skipped)\n", label.c_str(), rows,
                draws, skipped);
  }

  static Backend* cuda_;
  static Backend* cpu_;
  std::mt19937 rng_{std::random_device{}()};
  int next_kind_ = 0;
  int total_skipped_ = 0, total_draws_ = 0;
};

Backend* SamplingKernelTest::cuda_ = nullptr;
Backend* SamplingKernelTest::cpu_ = nullptr;

TEST_F(SamplingKernelTest, MatchesTheReferenceOnOddVocabulariesAndBatches) {
  const unsigned seed = std::random_device{}();
  rng_.seed(seed);
  RecordProperty("seed", std::to_string(seed));
  std::printf("[ sample ] seed %u\n", seed);
  for (int vocab : {1000, 32001, 128256}) {
    for (int rows : {1, 3, 14, 64}) run_case(rows, vocab);
  }
  // A knife edge needs u within 1e-9 of a boundary: with a few hundred draws, essentially never.
  EXPECT_LE(total_skipped_ * 20, total_draws_) << total_skipped_ << " of " << total_draws_ << " draws skipped";
}

TEST_F(SamplingKernelTest, RowsWithNothingFiniteGiveNoToken) {
  const int vocab = 1000;
  std::vector<float> logits(2 * vocab, -std::numeric_limits<float>::infinity());
  logits[vocab + 5] = 1.0f;
  std::vector<SamplingRow> rows(2);
  rows[0].temperature = 0.7f;
  rows[1].temperature = 0.7f;
  rows[1].masked_ids = {5};
  auto dev = cuda_->allocate(DType::kF32, {2, vocab});
  ASSERT_TRUE(dev.ok());
  ASSERT_TRUE(cuda_->upload(logits.data(), *dev).ok());
  std::vector<RowSample> got(2);
  ASSERT_TRUE(cuda_->sample(*dev, rows, got).ok());
  EXPECT_EQ(got[0].token, -1);
  EXPECT_EQ(got[1].token, -1);
}

// Times of one call (upload, kernel, download) at the largest shape, for the record; not asserted.
TEST_F(SamplingKernelTest, TimesAtTheLargestVocabulary) {
  const int vocab = 128256;
  for (int rows : {1, 64}) {
    for (int kind : {0, 1, 2, 3, 4}) {
      std::vector<float> logits = random_logits(rows, vocab);
      std::vector<SamplingRow> params(static_cast<size_t>(rows));
      for (SamplingRow& row : params) {
        row.stream = rng_();
        if (kind == 0) row.temperature = 0.0f;
        if (kind == 1) row.temperature = 0.0f, row.num_logprobs = 20;
        if (kind == 2) row.temperature = 0.8f;
        if (kind == 3) row.temperature = 0.8f, row.top_k = 50, row.top_p = 0.9f;
        if (kind == 4) row.temperature = 0.8f, row.top_p = 0.95f;
      }
      auto dev = cuda_->allocate(DType::kF32, {rows, vocab});
      ASSERT_TRUE(dev.ok());
      std::vector<RowSample> got(static_cast<size_t>(rows));
      double best_us = 1e30;
      for (int rep = 0; rep < 5; ++rep) {
        ASSERT_TRUE(cuda_->upload(logits.data(), *dev).ok());
        const auto start = std::chrono::steady_clock::now();
        ASSERT_TRUE(cuda_->sample(*dev, params, got).ok());
        best_us = std::min(best_us, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
      }
      static const char* const kNames[] = {"greedy", "greedy+20 logprobs", "temperature", "top_k 50 + top_p 0.9",
                                           "top_p 0.95"};
      std::printf("[ sample ] vocab %d B=%-3d %-22s %8.1f us per call\n", vocab, rows, kNames[kind], best_us);
      RecordProperty("us " + std::string(kNames[kind]) + " B=" + std::to_string(rows), std::to_string(best_us));
    }
  }
}

}  // namespace
}  // namespace longbow
