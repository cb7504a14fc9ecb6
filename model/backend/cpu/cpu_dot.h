// The dot product used by the CPU backend's matmul and attention.
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

}  // namespace longbow::cpu
