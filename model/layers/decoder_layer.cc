#include "model/layers/decoder_layer.h"

namespace longbow {

StatusOr<DecoderLayer> DecoderLayer::build(const LayerPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                           const DsaLayerOptions& dsa, Backend& backend, Communicator* comm) {
  DecoderLayer layer;
  if (comm == nullptr && (plan.mixer_partial || plan.ffn_partial)) {
    return invalid_argument("decoder layer: a tensor-parallel rank's plan without a communicator");
  }
  layer.mixer_comm_ = plan.mixer_partial ? comm : nullptr;
  layer.ffn_comm_ = plan.ffn_partial ? comm : nullptr;
  ASSIGN_OR_RETURN(layer.attn_norm_, Norm::build(plan.attn_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.attn_post_norm_, Norm::build(plan.attn_post_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.mlp_norm_, Norm::build(plan.mlp_norm, tensors, backend));
  ASSIGN_OR_RETURN(layer.mlp_post_norm_, Norm::build(plan.mlp_post_norm, tensors, backend));
  if (layer.mlp_norm_.is_identity()) return invalid_argument("decoder layer: the plan has no norm before the MLP");
  if (plan.lightning) {
    ASSIGN_OR_RETURN(layer.mixer_, LightningAttention::build(*plan.lightning, tensors, backend));
  } else if (plan.mla) {
    ASSIGN_OR_RETURN(layer.mixer_, MlaAttention::build(*plan.mla, tensors, rope, dsa, backend));
  } else {
    ASSIGN_OR_RETURN(layer.mixer_, GqaAttention::build(plan.attention, tensors, rope, dsa, backend));
  }
  if (plan.moe) {
    ASSIGN_OR_RETURN(layer.ffn_, MoeFfn::build(*plan.moe, tensors));
  } else {
    ASSIGN_OR_RETURN(layer.ffn_, GatedMlp::build(plan.mlp, tensors));
  }
  if (plan.attn_residual.has_value() != plan.mlp_residual.has_value()) {
    return invalid_argument("decoder layer: scaled residuals must be given for both blocks or neither");
  }
  if (plan.attn_residual) {
    if (layer.attn_norm_.is_identity() || !layer.attn_post_norm_.is_identity() || !layer.mlp_post_norm_.is_identity()) {
      return invalid_argument("decoder layer: scaled residuals need an input norm and no post norms");
    }
    RETURN_IF_ERROR(backend.supports(OpQuery{"scale"}));
  }
  layer.attn_residual_ = plan.attn_residual;
  layer.mlp_residual_ = plan.mlp_residual;
  return layer;
}

CacheSpec DecoderLayer::cache_spec(DType kv_dtype) const {
  if (const LightningAttention* l = lightning()) return l->cache_spec();
  if (const MlaAttention* m = mla()) return m->cache_spec(kv_dtype);
  return attention()->cache_spec(kv_dtype);
}

StatusOr<size_t> DecoderLayer::allocate_cache(Backend& backend, int64_t size, int group) {
  if (auto* l = std::get_if<LightningAttention>(&mixer_)) return l->allocate_cache(backend, size);
  if (auto* m = std::get_if<MlaAttention>(&mixer_)) return m->allocate_cache(backend, size, group);
  return attention()->allocate_cache(backend, size, group);
}

const Tensor& DecoderLayer::index_cache() const {
  static const Tensor kNone;
  if (const MlaAttention* m = mla()) return m->index_cache();
  if (const GqaAttention* a = attention()) return a->index_cache();
  return kNone;
}

ScratchWidths DecoderLayer::scratch_widths() const {
  ScratchWidths w;
  if (const LightningAttention* l = lightning()) {
    w.q = l->qkv_dim();
    w.intermediate = l->attn_dim();  // the output gate
  } else if (const MlaAttention* m = mla()) {
    w.q = m->q_width();
    w.kv = m->kv_width();
    w.intermediate = m->gate_width();
  } else {
    w.q = attention()->q_dim();
    w.kv = attention()->kv_dim();
  }
  if (const auto* mlp = std::get_if<GatedMlp>(&ffn_)) {
    w.intermediate = std::max(w.intermediate, mlp->intermediate_size());
  } else {
    const auto& moe = std::get<MoeFfn>(ffn_);
    w.experts = moe.num_experts();
    w.top_k = moe.top_k();
    w.intermediate = std::max(w.intermediate, moe.shared_intermediate());
  }
  return w;
}

Status DecoderLayer::scale(Backend& b, Tensor& x, float factor) const {
  return factor == 1.0f ? Status::Ok() : b.scale(x, factor);
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
  if (auto* gqa = std::get_if<GqaAttention>(&mixer_)) {
    RETURN_IF_ERROR(gqa->forward(b, step, scratch, x, r.delta));
  } else if (auto* m = std::get_if<MlaAttention>(&mixer_)) {
    RETURN_IF_ERROR(m->forward(b, step, scratch, x, r.delta));
  } else {
    RETURN_IF_ERROR(std::get<LightningAttention>(mixer_).forward(b, step, scratch, x, r.delta));
  }
  if (mixer_comm_ != nullptr) RETURN_IF_ERROR(mixer_comm_->all_reduce_sum(r.delta));
  if (!attn_post_norm_.is_identity()) RETURN_IF_ERROR(attn_post_norm_.forward(b, r.delta, r.delta));
  Tensor y = r.normed;
  if (attn_residual_) {
    // h = α·x + β·a with x (r.normed) as the residual; y = mlp_norm(h) goes to r.hidden.
    RETURN_IF_ERROR(scale(b, r.normed, attn_residual_->alpha));
    RETURN_IF_ERROR(scale(b, r.delta, attn_residual_->beta));
    RETURN_IF_ERROR(mlp_norm_.add_forward(b, r.normed, r.delta, r.hidden));
    y = r.hidden;
  } else {
    RETURN_IF_ERROR(mlp_norm_.add_forward(b, r.hidden, r.delta, r.normed));
  }
  if (const auto* mlp = std::get_if<GatedMlp>(&ffn_)) {
    RETURN_IF_ERROR(mlp->forward(b, scratch, y, r.delta));
  } else {
    RETURN_IF_ERROR(std::get<MoeFfn>(ffn_).forward(b, scratch, y, r.delta));
  }
  if (ffn_comm_ != nullptr) RETURN_IF_ERROR(ffn_comm_->all_reduce_sum(r.delta));
  if (!mlp_post_norm_.is_identity()) RETURN_IF_ERROR(mlp_post_norm_.forward(b, r.delta, r.delta));
  if (mlp_residual_) {
    // The stream becomes α'·y (y is in r.hidden) with β'·m pending.
    RETURN_IF_ERROR(scale(b, r.hidden, mlp_residual_->alpha));
    RETURN_IF_ERROR(scale(b, r.delta, mlp_residual_->beta));
  }
  r.pending = true;
  return Status::Ok();
}

}  // namespace longbow
