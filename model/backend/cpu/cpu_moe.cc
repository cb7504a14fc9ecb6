// CpuBackend::moe_route and moe_experts (the contracts are in backend.h): softmax top-k routing and
// the routed experts, token by token, in double.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include "model/backend/cpu/cpu_activation.h"
#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_checks.h"
#include "model/backend/cpu/cpu_dot.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

Status CpuBackend::moe_route(const MoeRouteArgs& a) {
  constexpr std::string_view op = "moe_route";
  RETURN_IF_ERROR(check_tensor(op, "logits", a.logits, DType::kF32, {kAnyDim, kAnyDim}));
  const int64_t tokens = a.logits.dim(0), experts = a.logits.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "ids", a.ids, DType::kI32, {tokens, kAnyDim}));
  const int64_t k = a.ids.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "weights", a.weights, DType::kF32, {tokens, k}));
  if (k < 1 || k > experts) {
    return invalid_argument(fmt::format("{}: top-k {} must be in [1, {}] (the experts)", op, k, experts));
  }
  std::vector<double> p(static_cast<size_t>(experts));
  std::vector<int32_t> order(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = a.logits.as<float>() + t * experts;
    const double top = *std::max_element(row, row + experts);
    double sum = 0.0;
    for (int64_t e = 0; e < experts; ++e) sum += p[static_cast<size_t>(e)] = std::exp(double{row[e]} - top);
    for (double& x : p) x /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&p](int32_t x, int32_t y) {
      return p[static_cast<size_t>(x)] > p[static_cast<size_t>(y)];
    });
    double chosen = 0.0;
    for (int64_t j = 0; j < k; ++j) chosen += p[static_cast<size_t>(order[static_cast<size_t>(j)])];
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = order[static_cast<size_t>(j)];
      a.ids.as<int32_t>()[t * k + j] = e;
      a.weights.as<float>()[t * k + j] = static_cast<float>(p[static_cast<size_t>(e)] / chosen);
    }
  }
  return Status::Ok();
}

Status CpuBackend::moe_experts(const MoeExpertsArgs& a) {
  constexpr std::string_view op = "moe_experts";
  RETURN_IF_ERROR(check_tensor(op, "x", a.x, DType::kF32, {kAnyDim, kAnyDim}));
  const int64_t tokens = a.x.dim(0), hidden = a.x.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "ids", a.ids, DType::kI32, {tokens, kAnyDim}));
  const int64_t k = a.ids.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "weights", a.weights, DType::kF32, {tokens, k}));
  RETURN_IF_ERROR(check_tensor(op, "gate_up", a.gate_up, DType::kF32, {kAnyDim, kAnyDim, hidden}));
  const int64_t experts = a.gate_up.dim(0), inter = a.gate_up.dim(1) / 2;
  if (a.gate_up.dim(1) % 2 != 0) {
    return invalid_argument(fmt::format("{}: gate_up has {} rows per expert, not 2·intermediate", op,
                                        a.gate_up.dim(1)));
  }
  RETURN_IF_ERROR(check_tensor(op, "down", a.down, DType::kF32, {experts, hidden, inter}));
  RETURN_IF_ERROR(check_tensor(op, "out", a.out, DType::kF32, {tokens, hidden}));
  RETURN_IF_ERROR(cpu::check_disjoint(op, "out", a.out, "x", a.x));
  for (int64_t i = 0; i < tokens * k; ++i) {
    const int32_t e = a.ids.as<int32_t>()[i];
    if (e < 0 || e >= experts) {
      return invalid_argument(fmt::format("{}: ids[{}][{}] = {} is not an expert in [0, {})", op, i / k, i % k, e,
                                          experts));
    }
  }
  std::vector<float> h(static_cast<size_t>(inter));
  std::vector<double> acc(static_cast<size_t>(hidden));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = a.x.as<float>() + t * hidden;
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = a.ids.as<int32_t>()[t * k + j];
      const double w = a.weights.as<float>()[t * k + j];
      const float* gate = a.gate_up.as<float>() + e * 2 * inter * hidden;
      const float* up = gate + inter * hidden;
      for (int64_t i = 0; i < inter; ++i) {
        const double g = cpu::dot(gate + i * hidden, x, hidden), u = cpu::dot(up + i * hidden, x, hidden);
        h[static_cast<size_t>(i)] = static_cast<float>(cpu::activate(a.activation, g) * u);
      }
      const float* down = a.down.as<float>() + e * hidden * inter;
      for (int64_t o = 0; o < hidden; ++o) acc[static_cast<size_t>(o)] += w * cpu::dot(down + o * inter, h.data(), inter);
    }
    for (int64_t o = 0; o < hidden; ++o) a.out.as<float>()[t * hidden + o] = static_cast<float>(acc[static_cast<size_t>(o)]);
  }
  return Status::Ok();
}

}  // namespace longbow
