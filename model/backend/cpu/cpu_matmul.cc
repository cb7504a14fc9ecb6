// CpuBackend::matmul: out = x · wᵀ (+ bias), the bulk of a CPU forward pass.
#include <algorithm>
#include <string>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_checks.h"
#include "model/backend/cpu/cpu_dot.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

namespace {

// Rows of w processed together: a block of about 256 KiB stays in cache while every row of x
// passes over it, so w streams from memory once per call instead of once per row of x.
constexpr int64_t kWeightBlockBytes = 256 * 1024;

}  // namespace

Status CpuBackend::matmul(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) {
  RETURN_IF_ERROR(check_tensor("matmul", "x", x, DType::kF32, {kAnyDim, kAnyDim}));
  int64_t m_rows = x.dim(0), k_dim = x.dim(1);
  RETURN_IF_ERROR(check_tensor("matmul", "w", w, DType::kF32, {kAnyDim, k_dim}));
  int64_t n_cols = w.dim(0);
  bool has_bias = bias.data != nullptr;
  if (has_bias) RETURN_IF_ERROR(check_tensor("matmul", "bias", bias, DType::kF32, {n_cols}));
  RETURN_IF_ERROR(check_tensor("matmul", "out", out, DType::kF32, {m_rows, n_cols}));
  RETURN_IF_ERROR(cpu::check_disjoint("matmul", "out", out, "x", x));
  RETURN_IF_ERROR(cpu::check_disjoint("matmul", "out", out, "w", w));
  if (has_bias) RETURN_IF_ERROR(cpu::check_disjoint("matmul", "out", out, "bias", bias));

  const float* xs = x.as<float>();
  const float* ws = w.as<float>();
  float* os = out.as<float>();
  int64_t block = std::max<int64_t>(1, kWeightBlockBytes / std::max<int64_t>(1, k_dim * 4));
  for (int64_t n0 = 0; n0 < n_cols; n0 += block) {
    int64_t n1 = std::min(n_cols, n0 + block);
    for (int64_t m = 0; m < m_rows; ++m) {
      const float* x_row = xs + m * k_dim;
      float* out_row = os + m * n_cols;
      for (int64_t n = n0; n < n1; ++n) {
        double sum = cpu::dot(x_row, ws + n * k_dim, k_dim);
        if (has_bias) sum += bias.as<float>()[n];
        out_row[n] = static_cast<float>(sum);
      }
    }
  }
  return Status::Ok();
}

}  // namespace longbow
