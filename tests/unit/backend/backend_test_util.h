// Helpers for backend op tests: host vectors in and out of a Backend, random data, error norms.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <vector>

#include "model/backend/backend.h"

namespace longbow::testing {

// A tensor of `dims` on `backend` holding `values` (size must equal the element count).
template <typename T>
Tensor make_tensor(Backend& backend, DType dtype, std::initializer_list<int64_t> dims, const std::vector<T>& values) {
  StatusOr<Tensor> t = backend.allocate(dtype, dims);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_EQ(static_cast<size_t>(t->numel()), values.size());
  EXPECT_TRUE(backend.upload(values.data(), *t).ok());
  return *t;
}

inline Tensor make_f32(Backend& backend, std::initializer_list<int64_t> dims, const std::vector<float>& values) {
  return make_tensor(backend, DType::kF32, dims, values);
}

inline Tensor make_i32(Backend& backend, std::initializer_list<int64_t> dims, const std::vector<int32_t>& values) {
  return make_tensor(backend, DType::kI32, dims, values);
}

// A tensor of any dtype whose bytes are all zero (a cache that must start empty, an all-zero input).
inline Tensor make_zeroed(Backend& backend, DType dtype, std::initializer_list<int64_t> dims) {
  StatusOr<Tensor> t = backend.allocate(dtype, dims);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  std::vector<uint8_t> zeros(t->num_bytes(), 0);
  EXPECT_TRUE(backend.upload(zeros.data(), *t).ok());
  return *t;
}

// An F32 tensor filled with NaN, so an op that skips an element is caught.
inline Tensor make_poisoned(Backend& backend, std::initializer_list<int64_t> dims) {
  StatusOr<Tensor> t = backend.allocate(DType::kF32, dims);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  std::vector<float> nan(static_cast<size_t>(t->numel()), std::nanf(""));
  EXPECT_TRUE(backend.upload(nan.data(), *t).ok());
  return *t;
}

inline std::vector<float> to_host(Backend& backend, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  EXPECT_TRUE(backend.download(t, out.data()).ok());
  return out;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(n);
  for (float& v : out) v = dist(rng);
  return out;
}

// ‖a − b‖ / ‖b‖ (0 when both are zero); NaN anywhere gives infinity.
inline double relative_l2(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (std::isnan(a[i])) return INFINITY;
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  if (norm == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(diff / norm);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (std::isnan(a[i])) return INFINITY;
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  return worst;
}

// Expects INVALID_ARGUMENT whose message mentions every fragment (op name, tensor name, ...).
inline void expect_invalid(const Status& status, std::initializer_list<const char*> fragments) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
  for (const char* fragment : fragments) {
    EXPECT_NE(status.message().find(fragment), std::string::npos)
        << "message '" << status.message() << "' lacks '" << fragment << "'";
  }
}

}  // namespace longbow::testing
