// CpuBackend::fill_random: the distribution it promises, determinism by (seed, index), argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "model/backend/backend.h"

namespace longbow {
namespace {

std::vector<float> fill(Backend& backend, int64_t n, uint64_t seed, float mean, float std) {
  auto t = backend.allocate(DType::kF32, {n});
  EXPECT_TRUE(t.ok());
  Status s = backend.fill_random(*t, seed, mean, std);
  EXPECT_TRUE(s.ok()) << s.to_string();
  std::vector<float> out(static_cast<size_t>(n));
  EXPECT_TRUE(backend.download(*t, out.data()).ok());
  return out;
}

TEST(CpuFillRandom, HasTheRequestedMeanStdAndBounds) {
  auto backend = create_backend("cpu");
  ASSERT_TRUE(backend.ok());
  const float mean = 0.75f, std = 0.125f;
  const std::vector<float> v = fill(**backend, 100003, 17, mean, std);
  double sum = 0.0;
  for (float x : v) {
    ASSERT_GE(x, mean - std::sqrt(3.0f) * std);
    ASSERT_LT(x, mean + std::sqrt(3.0f) * std);
    sum += x;
  }
  const double n = static_cast<double>(v.size());
  const double m = sum / n;
  double squares = 0.0;
  for (float x : v) squares += (x - m) * (x - m);
  EXPECT_NEAR(m, mean, 5.0 * std / std::sqrt(n));
  EXPECT_NEAR(std::sqrt(squares / n), std, 0.02 * std);
}

TEST(CpuFillRandom, ElementIDependsOnSeedAndIOnly) {
  auto backend = create_backend("cpu");
  ASSERT_TRUE(backend.ok());
  const std::vector<float> long_fill = fill(**backend, 1001, 5, 0.0f, 1.0f);
  const std::vector<float> short_fill = fill(**backend, 13, 5, 0.0f, 1.0f);
  for (size_t i = 0; i < short_fill.size(); ++i) EXPECT_EQ(short_fill[i], long_fill[i]) << i;
  EXPECT_EQ(fill(**backend, 1001, 5, 0.0f, 1.0f), long_fill);
  const std::vector<float> other = fill(**backend, 1001, 6, 0.0f, 1.0f);
  int same = 0;
  for (size_t i = 0; i < other.size(); ++i) same += other[i] == long_fill[i];
  EXPECT_LT(same, 5);
  // std 0: every element is the mean.
  for (float x : fill(**backend, 7, 1, -2.5f, 0.0f)) EXPECT_EQ(x, -2.5f);
}

TEST(CpuFillRandom, RejectsOtherDtypesAndBadParameters) {
  auto backend = create_backend("cpu");
  ASSERT_TRUE(backend.ok());
  auto ints = (*backend)->allocate(DType::kI32, {5});
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ((*backend)->fill_random(*ints, 1, 0.0f, 1.0f).code(), StatusCode::kInvalidArgument);
  auto floats = (*backend)->allocate(DType::kF32, {5});
  ASSERT_TRUE(floats.ok());
  EXPECT_EQ((*backend)->fill_random(*floats, 1, 0.0f, -1.0f).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->fill_random(*floats, 1, NAN, 1.0f).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace longbow
