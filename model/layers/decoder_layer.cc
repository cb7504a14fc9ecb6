#include "model/layers/decoder_layer.h"

namespace longbow {

StatusOr<DecoderLayer> DecoderLayer::build(const LayerPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                           const DsaLayerOptions& dsa, const Backend& backend) {
  DecoderLayer layer;
  ASSIGN_OR_RETURN(layer.attn_norm_, Norm::build(plan.attn_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.attn_post_norm_, Norm::build(plan.attn_post_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.mlp_norm_, Norm::build(plan.mlp_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.mlp_post_norm_, Norm::build(plan.mlp_post_norm, tensors, backend));
  if (layer.mlp_norm_.is_identity()) return invalid_argument("decoder layer: the plan has no norm before the MLP");
  ASSIGN_OR_RETURN(layer.attention_, GqaAttention::build(plan.attention, tensors, rope, dsa, backend));
  ASSIGN_OR_RETURN(layer.mlp_, GatedMlp::build(plan.mlp, tensors));
  return layer;
}

Status DecoderLayer::forward(Backend& b, const StepTensors& step, LayerScratch& scratch, ResidualStream& r) {
  Tensor x = r.normed;
  if (attn_norm_.is_identity()) {
    if (r.pending) return invalid_argument("decoder layer: no norm to fuse the previous layer's residual add into");
    x = r.hidden;
  } else if (r.pending) {
    RETURN_IF_ERROR(attn_norm_.add_forward(b, r.hidden, r.delta, r.normed));
  } else {
    RETURN_IF_ERROR(attn_norm_.forward(b, r.hidden, r.normed));
  }
  RETURN_IF_ERROR(attention_.forward(b, step, scratch, x, r.delta));
  if (!attn_post_norm_.is_identity()) RETURN_IF_ERROR(attn_post_norm_.forward(b, r.delta, r.delta));
  RETURN_IF_ERROR(mlp_norm_.add_forward(b, r.hidden, r.delta, r.normed));
  RETURN_IF_ERROR(mlp_.forward(b, scratch, r.normed, r.delta));
  if (!mlp_post_norm_.is_identity()) RETURN_IF_ERROR(mlp_post_norm_.forward(b, r.delta, r.delta));
  r.pending = true;
  return Status::Ok();
}

}  // namespace longbow
