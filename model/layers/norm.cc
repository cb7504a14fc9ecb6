#include "model/layers/norm.h"

namespace longbow {

StatusOr<Tensor> take_tensor(const TensorMap& tensors, const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) return not_found(fmt::format("layer: tensor {} was not loaded", name));
  return it->second;
}

StatusOr<Linear> make_linear(const TensorMap& tensors, const LinearPlan& plan) {
  Linear linear;
  ASSIGN_OR_RETURN(Tensor weight, take_tensor(tensors, plan.weight));
  linear.weight = plan.out == plan.rows ? weight : weight.rows(plan.row_begin, plan.out);
  if (!plan.bias.empty()) {
    ASSIGN_OR_RETURN(Tensor bias, take_tensor(tensors, plan.bias));
    linear.bias = plan.out == plan.rows ? bias : bias.rows(plan.row_begin, plan.out);
  }
  return linear;
}

StatusOr<Norm> Norm::build(const NormPlan& plan, const TensorMap& tensors, const Backend& backend) {
  Norm norm;
  norm.kind_ = plan.kind;
  norm.eps_ = plan.eps;
  if (plan.kind == NormKind::kNone) return norm;
  if (plan.kind == NormKind::kLayer) RETURN_IF_ERROR(backend.supports(OpQuery{"layer_norm"}));
  ASSIGN_OR_RETURN(norm.weight_, take_tensor(tensors, plan.weight));
  if (!plan.bias.empty()) {
    ASSIGN_OR_RETURN(norm.bias_, take_tensor(tensors, plan.bias));
  }
  return norm;
}

Status Norm::forward(Backend& backend, const Tensor& x, Tensor& out) const {
  switch (kind_) {
    case NormKind::kRms: return backend.rms_norm(x, weight_, eps_, out);
    case NormKind::kLayer: return backend.layer_norm(x, weight_, bias_, eps_, out);
    case NormKind::kNone: break;
  }
  return invalid_argument("norm: the identity norm has no output of its own");
}

Status Norm::add_forward(Backend& backend, Tensor& residual, const Tensor& delta, Tensor& out) const {
  switch (kind_) {
    case NormKind::kRms: return backend.add_rms_norm(residual, delta, weight_, eps_, out);
    case NormKind::kLayer: return backend.add_layer_norm(residual, delta, weight_, bias_, eps_, out);
    case NormKind::kNone: break;
  }
  return invalid_argument("norm: a residual add needs a norm after it (the plan puts none here)");
}

}  // namespace longbow
