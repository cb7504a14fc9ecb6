// The inner loops of the CPU backend's matmul and attention.
#pragma once

#include <cstdint>

namespace longbow::cpu {

// Σ a[i]·b[i] over n fp32 values. Eight fp32 partial sums (the compiler vectorises them) combined
// in double: error grows like sqrt(n/8)·eps instead of n·eps for one running sum.
inline double dot(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 8;
  float partial[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) partial[l] += a[i + l] * b[i + l];
  }
  double sum = 0.0;
  for (; i < n; ++i) sum += static_cast<double>(a[i]) * b[i];
  for (int l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

// y[i] += a · x[i] over n fp32 values, in blocks of eight the compiler vectorises.
inline void axpy(float a, const float* x, float* y, int64_t n) {
  constexpr int kLanes = 8;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    float block[kLanes];  // x's block read before y is written, so the block vectorises even if x, y alias
    for (int l = 0; l < kLanes; ++l) block[l] = x[i + l];
    for (int l = 0; l < kLanes; ++l) y[i + l] += a * block[l];
  }
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace longbow::cpu
