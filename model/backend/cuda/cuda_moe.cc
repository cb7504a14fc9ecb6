// CudaBackend's moe_route and moe_experts over kernels/moe (kernel design in moe.cu).
#include "model/backend/cuda/cuda_moe.h"

#include <fmt/format.h>

#include <cstdint>
#include <string_view>

#include "kernels/moe/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow::cuda_moe {
namespace {

using op_checks::fits_int;

Status check(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
             std::initializer_list<int64_t> dims) {
  return op_checks::tensor_is(op, name, t, dtype, dims);
}

kernels::GatedActivation gated(Activation act) {
  switch (act) {
    case Activation::kSilu: return kernels::GatedActivation::kSilu;
    case Activation::kGeluTanh: return kernels::GatedActivation::kGeluTanh;
    case Activation::kGelu: return kernels::GatedActivation::kGelu;
    case Activation::kSigmoid: return kernels::GatedActivation::kSigmoid;
  }
  return kernels::GatedActivation::kSilu;
}

}  // namespace

Status route(const Context& ctx, const MoeRouteArgs& a) {
  constexpr std::string_view op = "moe_route";
  RETURN_IF_ERROR(check(op, "logits", a.logits, DType::kF32, {-1, -1}));
  const int64_t tokens = a.logits.dim(0), experts = a.logits.dim(1);
  RETURN_IF_ERROR(check(op, "ids", a.ids, DType::kI32, {tokens, -1}));
  const int64_t k = a.ids.dim(1);
  RETURN_IF_ERROR(check(op, "weights", a.weights, DType::kF32, {tokens, k}));
  if (k < 1 || k > experts) {
    return invalid_argument(fmt::format("{}: top-k {} must be in [1, {}] (the experts)", op, k, experts));
  }
  if (experts > kernels::kMoeRouteMaxExperts || k > kernels::kMoeRouteMaxTopk) {
    return unimplemented(fmt::format("{}: {} experts, top-k {} (the CUDA kernel takes up to {} experts and top-k {})",
                                     op, experts, k, kernels::kMoeRouteMaxExperts, kernels::kMoeRouteMaxTopk));
  }
  RETURN_IF_ERROR(fits_int(op, "logits", tokens));
  if (a.scoring == MoeScoring::kSigmoid) {
    if (a.correction_bias.data != nullptr) RETURN_IF_ERROR(check(op, "correction_bias", a.correction_bias, DType::kF32, {experts}));
    if (a.num_groups < 1 || a.num_groups > kernels::kMoeRouteMaxGroups || experts % a.num_groups != 0 ||
        experts / a.num_groups < 2 || a.topk_groups < 1 || a.topk_groups > a.num_groups ||
        k > int64_t{a.topk_groups} * (experts / a.num_groups)) {
      return invalid_argument(fmt::format("{}: {} experts in {} groups keeping {} (up to {} groups of 2 or more "
                                          "experts) cannot route top-{}", op, experts, a.num_groups, a.topk_groups,
                                          kernels::kMoeRouteMaxGroups, k));
    }
    if (tokens == 0) return Status::Ok();
    kernels::MoeSigmoidRouteParams p;
    p.logits = a.logits.as<float>();
    p.bias = a.correction_bias.data != nullptr ? a.correction_bias.as<float>() : nullptr;
    p.ids = a.ids.as<int>();
    p.weights = a.weights.as<float>();
    p.tokens = static_cast<int>(tokens);
    p.experts = static_cast<int>(experts);
    p.k = static_cast<int>(k);
    p.groups = a.num_groups;
    p.topk_groups = a.topk_groups;
    p.renormalize = a.renormalize;
    p.scaling = a.scaling;
    return cuda_status(kernels::launch_moe_sigmoid_route(p, ctx.stream), op);
  }
  if (a.correction_bias.data != nullptr || a.num_groups != 1 || !a.renormalize || a.scaling != 1.0f) {
    return unimplemented(fmt::format("{}: the CUDA kernel's softmax routing is renormalized and unscaled, without "
                                     "a bias or groups (MiniMax, Mixtral)", op));
  }
  if (tokens == 0) return Status::Ok();
  kernels::MoeRouteParams p;
  p.logits = a.logits.as<float>();
  p.ids = a.ids.as<int>();
  p.weights = a.weights.as<float>();
  p.tokens = static_cast<int>(tokens);
  p.experts = static_cast<int>(experts);
  p.k = static_cast<int>(k);
  return cuda_status(kernels::launch_moe_route(p, ctx.stream), op);
}

Status experts(const Context& ctx, const MoeExpertsArgs& a) {
  constexpr std::string_view op = "moe_experts";
  RETURN_IF_ERROR(check(op, "x", a.x, DType::kBF16, {-1, -1}));
  const int64_t tokens = a.x.dim(0), hidden = a.x.dim(1);
  RETURN_IF_ERROR(check(op, "ids", a.ids, DType::kI32, {tokens, -1}));
  const int64_t k = a.ids.dim(1);
  RETURN_IF_ERROR(check(op, "weights", a.weights, DType::kF32, {tokens, k}));
  RETURN_IF_ERROR(check(op, "gate_up", a.gate_up, DType::kBF16, {-1, -1, hidden}));
  const int64_t experts = a.gate_up.dim(0), inter = a.gate_up.dim(1) / 2;
  if (a.expert_begin != 0 || (a.num_experts != 0 && a.num_experts != experts)) {
    return unimplemented(fmt::format("{}: a subset of the experts (expert parallelism runs on the cpu backend only)",
                                     op));
  }
  if (a.gate_up.dim(1) % 2 != 0) {
    return invalid_argument(fmt::format("{}: gate_up has {} rows per expert, not 2·intermediate", op,
                                        a.gate_up.dim(1)));
  }
  RETURN_IF_ERROR(check(op, "down", a.down, DType::kBF16, {experts, hidden, inter}));
  RETURN_IF_ERROR(check(op, "out", a.out, DType::kBF16, {tokens, hidden}));
  if (k < 1) return invalid_argument(fmt::format("{}: ids has {} choices per token (need >= 1)", op, k));
  if (experts < 1 || hidden < 1 || inter < 1) {
    return invalid_argument(fmt::format("{}: gate_up {} has no experts, hidden or intermediate size", op,
                                        a.gate_up.shape_string()));
  }
  if (experts > kernels::kMoeMaxExperts) {
    return unimplemented(fmt::format("{}: {} experts (the CUDA kernels group up to {})", op, experts,
                                     kernels::kMoeMaxExperts));
  }
  RETURN_IF_ERROR(fits_int(op, "pairs", tokens * k));
  RETURN_IF_ERROR(fits_int(op, "hidden", hidden));
  RETURN_IF_ERROR(fits_int(op, "intermediate", inter));
  if (tokens == 0) return Status::Ok();
  kernels::MoeExpertsParams p;
  p.x = a.x.data;
  p.ids = a.ids.as<int>();
  p.weights = a.weights.as<float>();
  p.gate_up = a.gate_up.data;
  p.down = a.down.data;
  p.out = a.out.data;
  p.accumulate = a.accumulate;
  p.tokens = static_cast<int>(tokens);
  p.hidden = static_cast<int>(hidden);
  p.inter = static_cast<int>(inter);
  p.experts = static_cast<int>(experts);
  p.k = static_cast<int>(k);
  p.act = gated(a.activation);
  const size_t bytes = kernels::moe_experts_workspace_bytes(p.tokens, p.k, p.experts, p.hidden, p.inter);
  ASSIGN_OR_RETURN(p.workspace, ctx.workspace(bytes));
  return cuda_status(kernels::launch_moe_experts(p, ctx.stream), op);
}

}  // namespace longbow::cuda_moe
