#include "model/runtime/workspace.h"

#include <algorithm>
#include <utility>

namespace longbow {

StatusOr<Workspace> allocate_workspace(Backend& backend, const WorkspaceShape& shape) {
  Workspace ws;
  const DType dt = backend.compute_dtype();
  const int64_t t = shape.tokens, s = shape.seqs, h = shape.hidden, w = shape.table_width, g = shape.groups;
  auto take = [&](Tensor* tensor, DType type, std::initializer_list<int64_t> dims) -> Status {
    ASSIGN_OR_RETURN(*tensor, backend.allocate(type, dims));
    ws.num_bytes += tensor->num_bytes();
    return Status::Ok();
  };
  RETURN_IF_ERROR(take(&ws.hidden, dt, {t, h}));
  RETURN_IF_ERROR(take(&ws.delta, dt, {t, h}));
  RETURN_IF_ERROR(take(&ws.normed, dt, {t, h}));
  RETURN_IF_ERROR(take(&ws.scratch.q, dt, {t * shape.q_dim}));
  RETURN_IF_ERROR(take(&ws.scratch.attn, dt, {t * shape.q_dim}));
  RETURN_IF_ERROR(take(&ws.scratch.k, dt, {t * shape.kv_dim}));
  RETURN_IF_ERROR(take(&ws.scratch.v, dt, {t * shape.kv_dim}));
  RETURN_IF_ERROR(take(&ws.scratch.gate, dt, {t * shape.intermediate}));
  RETURN_IF_ERROR(take(&ws.scratch.up, dt, {t * shape.intermediate}));
  if (shape.experts > 0) {
    RETURN_IF_ERROR(take(&ws.scratch.router_logits, DType::kF32, {t * shape.experts}));
    RETURN_IF_ERROR(take(&ws.scratch.route_ids, DType::kI32, {t * shape.top_k}));
    RETURN_IF_ERROR(take(&ws.scratch.route_weights, DType::kF32, {t * shape.top_k}));
  }
  RETURN_IF_ERROR(take(&ws.indices, DType::kI32, {2 * t + t * g + 4 * s + 1 + s * w * g}));
  int64_t offset = 0;
  auto carve = [&](Tensor* tensor, int64_t count) {
    *tensor = ws.indices.rows(offset, count);
    offset += count;
  };
  carve(&ws.token_ids, t);
  carve(&ws.positions, t);
  ws.slots.resize(static_cast<size_t>(g));
  for (Tensor& slots : ws.slots) carve(&slots, t);
  carve(&ws.query_start, s + 1);
  carve(&ws.context_lens, s);
  carve(&ws.logit_rows, s);
  carve(&ws.state_slots, s);
  ws.block_tables.resize(static_cast<size_t>(g));
  for (Tensor& table : ws.block_tables) carve(&table, s * w);
  RETURN_IF_ERROR(take(&ws.last_normed, dt, {s, h}));
  RETURN_IF_ERROR(take(&ws.logits, DType::kF32, {s, shape.vocab}));
  return ws;
}

StatusOr<StepViews> upload_step(Backend& backend, Workspace& ws, const StepInputs& in,
                                std::vector<int32_t>& staging) {
  const int64_t t = in.num_tokens(), s = in.num_seqs(), l = static_cast<int64_t>(in.logit_rows.size());
  if (static_cast<size_t>(in.num_groups()) != ws.block_tables.size()) {
    return invalid_argument(fmt::format("runtime: a step of {} cache groups for a workspace of {}", in.num_groups(),
                                        ws.block_tables.size()));
  }
  StepViews v;
  v.stream.hidden = ws.hidden.rows(0, t);
  v.stream.delta = ws.delta.rows(0, t);
  v.stream.normed = ws.normed.rows(0, t);
  v.token_ids = ws.token_ids.rows(0, t);
  v.logit_rows = ws.logit_rows.rows(0, l);
  v.last_normed = ws.last_normed.rows(0, l);
  v.logits = ws.logits.rows(0, l);
  StepTensors& step = v.step;
  step.num_tokens = t;
  step.positions = ws.positions.rows(0, t);
  step.query_start = ws.query_start.rows(0, s + 1);
  step.context_lens = ws.context_lens.rows(0, s);
  step.state_slots = ws.state_slots.rows(0, s);
  step.max_query_len = in.max_query_len;
  step.max_context_len = in.max_context_len;
  std::vector<std::pair<const std::vector<int32_t>*, Tensor>> arrays = {
      {&in.token_ids, v.token_ids}, {&in.positions, step.positions}, {&in.query_start, step.query_start},
      {&in.context_lens, step.context_lens}, {&in.logit_rows, v.logit_rows}, {&in.state_slots, step.state_slots}};
  for (size_t g = 0; g < ws.block_tables.size(); ++g) {
    step.slots.push_back(ws.slots[g].rows(0, t));
    step.block_tables.push_back(ws.block_tables[g].rows(0, s * in.pages_per_seq).reshape({s, in.pages_per_seq}));
    arrays.emplace_back(&in.slots[g], step.slots.back());
    arrays.emplace_back(&in.block_tables[g], step.block_tables.back());
  }
  // One host image of ws.indices up to the step's last entry, uploaded in one copy; each array at its
  // tensor's offset (the gaps between them are never read).
  auto offset_of = [&](const Tensor& view) {
    return static_cast<size_t>(static_cast<const int32_t*>(view.data) - ws.indices.as<int32_t>());
  };
  size_t end = 0;
  for (const auto& [host, view] : arrays) end = std::max(end, offset_of(view) + host->size());
  staging.resize(end);
  for (const auto& [host, view] : arrays) {
    std::copy(host->begin(), host->end(), staging.begin() + static_cast<std::ptrdiff_t>(offset_of(view)));
  }
  Tensor used = ws.indices.rows(0, static_cast<int64_t>(staging.size()));
  RETURN_IF_ERROR(backend.upload(staging.data(), used));
  return v;
}

}  // namespace longbow
