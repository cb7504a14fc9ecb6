#include "model/layers/lm_head.h"

namespace longbow {

StatusOr<LmHead> LmHead::build(const HeadPlan& plan, const TensorMap& tensors, int64_t max_rows, Backend& backend,
                               Communicator* comm) {
  LmHead head;
  ASSIGN_OR_RETURN(head.lm_head_, make_linear(tensors, plan.lm_head));
  head.comm_ = comm;
  if (comm != nullptr) {
    ASSIGN_OR_RETURN(head.rank_logits_, backend.allocate(DType::kF32, {max_rows, plan.lm_head.out}));
  }
  head.final_softcap_ = plan.final_softcap;
  if (plan.final_softcap > 0.0f) RETURN_IF_ERROR(backend.supports(OpQuery{"softcap"}));
  if (plan.dense.weight.empty()) return head;
  head.has_dense_ = true;
  head.dense_activation_ = plan.dense_activation;
  ASSIGN_OR_RETURN(head.dense_, make_linear(tensors, plan.dense));
  ASSIGN_OR_RETURN(head.dense_norm_, Norm::build(plan.dense_norm, tensors, backend));
  const int64_t hidden = plan.dense.out;
  ASSIGN_OR_RETURN(head.dense_out_, backend.allocate(backend.compute_dtype(), {max_rows, hidden}));
  ASSIGN_OR_RETURN(head.ones_, backend.allocate(backend.compute_dtype(), {max_rows, hidden}));
  // fill_random with std 0 writes exactly `mean` everywhere (backend.h).
  RETURN_IF_ERROR(backend.fill_random(head.ones_, 0, 1.0f, 0.0f));
  return head;
}

Status LmHead::forward(Backend& backend, Tensor& x, Tensor& logits) const {
  const int64_t rows = x.dim(0);
  if (has_dense_) {
    Tensor dense = dense_out_.rows(0, rows);
    RETURN_IF_ERROR(dense_.forward(backend, x, dense));
    RETURN_IF_ERROR(backend.gated_activation(dense_activation_, dense, ones_.rows(0, rows), dense));
    if (dense_norm_.is_identity()) return invalid_argument("lm head: the prediction head has no norm");
    RETURN_IF_ERROR(dense_norm_.forward(backend, dense, x));
  }
  Tensor out = comm_ == nullptr ? logits : rank_logits_.rows(0, rows);
  RETURN_IF_ERROR(lm_head_.forward(backend, x, out));
  if (final_softcap_ > 0.0f) RETURN_IF_ERROR(backend.softcap(out, final_softcap_));
  return comm_ == nullptr ? Status::Ok() : comm_->all_gather_columns(out, logits);
}

}  // namespace longbow
