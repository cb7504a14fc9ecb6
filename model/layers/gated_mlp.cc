#include "model/layers/gated_mlp.h"

namespace longbow {

StatusOr<GatedMlp> GatedMlp::build(const MlpPlan& plan, const TensorMap& tensors) {
  GatedMlp mlp;
  mlp.activation_ = plan.activation;
  mlp.intermediate_ = plan.gate.out;
  ASSIGN_OR_RETURN(mlp.gate_, make_linear(tensors, plan.gate));
  ASSIGN_OR_RETURN(mlp.up_, make_linear(tensors, plan.up));
  ASSIGN_OR_RETURN(mlp.down_, make_linear(tensors, plan.down));
  return mlp;
}

Status GatedMlp::forward(Backend& backend, LayerScratch& scratch, const Tensor& x, Tensor& out) const {
  const int64_t t = x.dim(0);
  Tensor gate = LayerScratch::view(scratch.gate, t, intermediate_);
  Tensor up = LayerScratch::view(scratch.up, t, intermediate_);
  RETURN_IF_ERROR(gate_.forward(backend, x, gate));
  RETURN_IF_ERROR(up_.forward(backend, x, up));
  RETURN_IF_ERROR(backend.gated_activation(activation_, gate, up, gate));
  return down_.forward(backend, gate, out);
}

}  // namespace longbow
