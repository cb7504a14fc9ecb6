// CpuBackend::moe_route and moe_experts (the contracts are in backend.h): softmax or DeepSeek's
// sigmoid group-limited top-k routing, and the routed experts, token by token, in double.
#include <algorithm>
#include <cmath>
#include <limits>
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

namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// Indices 0..n-1 ordered by descending score, ties to the lower index.
std::vector<int32_t> ranked(const std::vector<double>& score) {
  std::vector<int32_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&score](int32_t x, int32_t y) {
    return score[static_cast<size_t>(x)] > score[static_cast<size_t>(y)];
  });
  return order;
}

Status check_route_args(std::string_view op, const MoeRouteArgs& a) {
  RETURN_IF_ERROR(check_tensor(op, "logits", a.logits, DType::kF32, {kAnyDim, kAnyDim}));
  const int64_t tokens = a.logits.dim(0), experts = a.logits.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "ids", a.ids, DType::kI32, {tokens, kAnyDim}));
  const int64_t k = a.ids.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "weights", a.weights, DType::kF32, {tokens, k}));
  if (k < 1 || k > experts) {
    return invalid_argument(fmt::format("{}: top-k {} must be in [1, {}] (the experts)", op, k, experts));
  }
  if (a.correction_bias.data != nullptr) {
    RETURN_IF_ERROR(check_tensor(op, "correction_bias", a.correction_bias, DType::kF32, {experts}));
  }
  if (a.scoring == MoeScoring::kSigmoid) {
    const int64_t g = a.num_groups;
    if (g < 1 || experts % g != 0 || experts / g < 2 || a.topk_groups < 1 || a.topk_groups > g ||
        k > int64_t{a.topk_groups} * (experts / g)) {
      return invalid_argument(fmt::format("{}: {} experts in {} groups of which {} are kept cannot route top-{} "
                                          "(groups must divide the experts, hold 2 or more, and keep k of them)",
                                          op, experts, g, a.topk_groups, k));
    }
  } else if (a.num_groups != 1) {
    return invalid_argument(fmt::format("{}: group-limited routing ({} groups) needs sigmoid scoring", op,
                                        a.num_groups));
  }
  return Status::Ok();
}

}  // namespace

Status CpuBackend::moe_route(const MoeRouteArgs& a) {
  constexpr std::string_view op = "moe_route";
  RETURN_IF_ERROR(check_route_args(op, a));
  const int64_t tokens = a.logits.dim(0), experts = a.logits.dim(1), k = a.ids.dim(1);
  const bool sigmoid = a.scoring == MoeScoring::kSigmoid;
  const int64_t group_size = experts / a.num_groups;
  std::vector<double> weight(static_cast<size_t>(experts)), choice(static_cast<size_t>(experts));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* row = a.logits.as<float>() + t * experts;
    if (sigmoid) {
      for (int64_t e = 0; e < experts; ++e) weight[static_cast<size_t>(e)] = 1.0 / (1.0 + std::exp(-double{row[e]}));
    } else {
      const double top = *std::max_element(row, row + experts);
      double sum = 0.0;
      for (int64_t e = 0; e < experts; ++e) sum += weight[static_cast<size_t>(e)] = std::exp(double{row[e]} - top);
      for (double& x : weight) x /= sum;
    }
    choice = weight;
    if (a.correction_bias.data != nullptr) {
      for (int64_t e = 0; e < experts; ++e) choice[static_cast<size_t>(e)] += a.correction_bias.as<float>()[e];
    }
    if (sigmoid && a.num_groups > 1) {
      std::vector<double> group_score(static_cast<size_t>(a.num_groups));
      for (int g = 0; g < a.num_groups; ++g) {
        std::vector<double> members(choice.begin() + g * group_size, choice.begin() + (g + 1) * group_size);
        const std::vector<int32_t> best = ranked(members);
        group_score[static_cast<size_t>(g)] = members[static_cast<size_t>(best[0])] + members[static_cast<size_t>(best[1])];
      }
      const std::vector<int32_t> groups = ranked(group_score);
      std::vector<bool> kept(static_cast<size_t>(a.num_groups), false);
      for (int j = 0; j < a.topk_groups; ++j) kept[static_cast<size_t>(groups[static_cast<size_t>(j)])] = true;
      for (int64_t e = 0; e < experts; ++e) {
        if (!kept[static_cast<size_t>(e / group_size)]) choice[static_cast<size_t>(e)] = -kInfinity;
      }
    }
    const std::vector<int32_t> order = ranked(choice);
    double chosen = 0.0;
    for (int64_t j = 0; j < k; ++j) chosen += weight[static_cast<size_t>(order[static_cast<size_t>(j)])];
    const double denominator = !a.renormalize ? 1.0 : sigmoid ? chosen + 1e-20 : chosen;
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = order[static_cast<size_t>(j)];
      a.ids.as<int32_t>()[t * k + j] = e;
      a.weights.as<float>()[t * k + j] = static_cast<float>(weight[static_cast<size_t>(e)] / denominator * a.scaling);
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
  const int64_t all_experts = a.num_experts > 0 ? a.num_experts : experts;
  if (a.expert_begin < 0 || a.expert_begin + experts > all_experts) {
    return invalid_argument(fmt::format("{}: experts [{}, {}) of {}", op, a.expert_begin, a.expert_begin + experts,
                                        all_experts));
  }
  for (int64_t i = 0; i < tokens * k; ++i) {
    const int32_t e = a.ids.as<int32_t>()[i];
    if (e < 0 || e >= all_experts) {
      return invalid_argument(fmt::format("{}: ids[{}][{}] = {} is not an expert in [0, {})", op, i / k, i % k, e,
                                          all_experts));
    }
  }
  std::vector<float> h(static_cast<size_t>(inter));
  std::vector<double> acc(static_cast<size_t>(hidden));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* x = a.x.as<float>() + t * hidden;
    for (int64_t o = 0; o < hidden; ++o) {
      acc[static_cast<size_t>(o)] = a.accumulate ? double{a.out.as<float>()[t * hidden + o]} : 0.0;
    }
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = a.ids.as<int32_t>()[t * k + j] - a.expert_begin;
      if (e < 0 || e >= experts) continue;  // another rank's expert
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
