// CpuBackend::fill_random: the reference of the counter-based random fill.
//
// The mapping (seed, i) -> value is the contract both backends share; the CUDA kernel
// (kernels/elementwise/elementwise.cu, fill_random_kernel) computes the same function, and
// tests/kernels/backend_ops_test.cc checks that the two agree after rounding to bf16.
#include <cmath>
#include <cstdint>
#include <string>

#include "model/backend/cpu/cpu_backend.h"

namespace longbow {
namespace {

// splitmix64's finaliser: a good 64-bit mix of (seed, index).
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Element i of the fill: 24 random bits as a unit value in [0, 1), then low + (high - low) · unit,
// each operation rounded separately (no FMA), as the kernel does with __fsub_rn/__fmul_rn/__fadd_rn.
float fill_value(uint64_t seed, uint64_t i, float low, float span) {
  const uint64_t bits = mix64(seed * 0x100000001b3ull + i);
  const float unit = static_cast<float>(bits >> 40) * (1.0f / 16777216.0f);
  volatile float scaled = span * unit;  // volatile: keeps the compiler from contracting into an FMA
  return low + scaled;
}

}  // namespace

Status CpuBackend::fill_random(Tensor& tensor, uint64_t seed, float mean, float std) {
  if (tensor.dtype != DType::kF32) {
    return invalid_argument("cpu fill_random: tensor is " + std::string(dtype_name(tensor.dtype)) + " " +
                            tensor.shape_string() + ", expected F32");
  }
  if (!std::isfinite(mean) || !std::isfinite(std) || std < 0.0f) {
    return invalid_argument("cpu fill_random: mean " + std::to_string(mean) + " and std " + std::to_string(std) +
                            " must be finite, std >= 0");
  }
  const int64_t n = tensor.numel();
  if (n == 0) return Status::Ok();
  if (tensor.data == nullptr) return invalid_argument("cpu fill_random: tensor has no memory");
  const float half_width = std::sqrt(3.0f) * std;
  const float low = mean - half_width;
  const float high = mean + half_width;
  const float span = high - low;
  float* out = tensor.as<float>();
  for (int64_t i = 0; i < n; ++i) out[i] = fill_value(seed, static_cast<uint64_t>(i), low, span);
  return Status::Ok();
}

}  // namespace longbow
