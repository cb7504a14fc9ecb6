// The decoder over a ModelPlan (model/arch/), written only against Backend:
//
//   h = embed(ids) · embed_scale → embed_norm
//   per layer (model/layers/decoder_layer.h): norms, a token mixer (GQA attention: full, windowed or
//   DSA; or lightning attention) and an FFN (gated MLP or MoE), residual adds fused into the norms
//   that follow them
//   logits = head(final_norm(h)) for the rows that want them.
//
// Loading (transformer_load.cc) builds the plan's layers, the workspace, one KV pool per layer sized
// by its cache group's plan, and the decode graphs.
#include "model/runtime/transformer_impl.h"

#include <algorithm>

namespace longbow {

Status Decoder::run_model(StepViews& s) {
  ResidualStream& r = s.stream;
  r.pending = false;
  if (rank_.comm == nullptr) {
    RETURN_IF_ERROR(backend_.embed(embed_, s.token_ids, r.hidden));
  } else {  // this rank's vocabulary rows, the others' zeros, summed over the ranks
    RETURN_IF_ERROR(backend_.embed_shard(embed_, s.token_ids, plan_.vocab_begin, r.hidden));
    RETURN_IF_ERROR(rank_.comm->all_reduce_sum(r.hidden));
  }
  if (embed_scale_ != 1.0f) RETURN_IF_ERROR(backend_.scale(r.hidden, embed_scale_));
  if (!embed_norm_.is_identity()) RETURN_IF_ERROR(embed_norm_.forward(backend_, r.hidden, r.hidden));
  for (size_t l = 0; l < layers_.size(); ++l) {
    Status status = layers_[l].forward(backend_, s.step, ws_.scratch, r);
    if (!status.ok()) return status.with_context(fmt::format("layer {}", l));
  }
  if (s.logits.dim(0) == 0) return Status::Ok();
  RETURN_IF_ERROR(final_norm_.add_forward(backend_, r.hidden, r.delta, r.normed));
  RETURN_IF_ERROR(backend_.gather_rows(r.normed, s.logit_rows, s.last_normed));
  return head_.forward(backend_, s.last_normed, s.logits);
}

StatusOr<StepViews> Decoder::prepare_step(const StepInputs& in) {
  ASSIGN_OR_RETURN(StepViews v, upload_step(backend_, ws_, in, index_staging_));
  RETURN_IF_ERROR(plan_dsa_blocks(in, v));
  v.step.dsa_blocks = v.dsa_blocks;
  return v;
}

// A step whose rows' index logits do not fit the DSA scratch at once is scored in row blocks; their
// index arrays are uploaded once per step (every DSA layer reuses them).
Status Decoder::plan_dsa_blocks(const StepInputs& in, StepViews& v) {
  if (num_dsa_layers_ == 0) return Status::Ok();
  if (options_.dsa_prefill == DsaPrefillMode::kDense && in.max_query_len > 1) return Status::Ok();
  const int rows = dsa_rows_per_block(ws_.scratch.dsa.logits.numel(), in.max_context_len);
  if (in.num_tokens() <= rows) return Status::Ok();
  // Every block is launched for the step's bound, not its own longest context: a padded decode
  // step (a graph) then has the same launches whatever its real contexts (the kernels stop at each
  // row's own length), and the blocks' logits fit the scratch, which holds `rows` rows of the bound.
  std::vector<DsaRowBlock> blocks = plan_dsa_row_blocks(in.query_start, in.context_lens, rows);
  std::vector<int32_t> host;
  for (const DsaRowBlock& b : blocks) {
    host.insert(host.end(), b.query_start.begin(), b.query_start.end());
    host.insert(host.end(), b.context_lens.begin(), b.context_lens.end());
  }
  if (static_cast<int64_t>(host.size()) > ws_.dsa_block_index.numel()) {
    return internal_error(fmt::format("runtime: {} DSA row blocks overflow their index buffer", blocks.size()));
  }
  Tensor index = ws_.dsa_block_index.rows(0, static_cast<int64_t>(host.size()));
  RETURN_IF_ERROR(backend_.upload(host.data(), index));
  int64_t offset = 0;
  for (const DsaRowBlock& b : blocks) {
    const int64_t n = b.seq_end - b.seq_begin;
    DsaRowBlockTensors t;
    t.row_begin = b.row_begin;
    t.row_end = b.row_end;
    t.seq_begin = b.seq_begin;
    t.seq_end = b.seq_end;
    t.query_start = index.rows(offset, n + 1);
    t.context_lens = index.rows(offset + n + 1, n);
    t.max_context_len = in.max_context_len;
    offset += 2 * n + 1;
    v.dsa_blocks.push_back(std::move(t));
  }
  return Status::Ok();
}

StatusOr<Tensor> Decoder::run_step(std::span<const SequenceStep> steps) {
  ASSIGN_OR_RETURN(StepInputs in, build_step_inputs(steps, limits_));
  const int bucket = graphs_ != nullptr && is_decode_step(steps) ? graphs_->bucket_for(in.num_seqs()) : 0;
  // The layers see the graph shape's context bound on a graph replay, the step's own otherwise.
  const int layer_context = bucket > 0 ? decode_shape_.max_context_len : in.max_context_len;
  const bool dense = config_.dsa && dsa_attends_densely(config_.dsa->topk, options_.dsa_prefill, in.max_query_len,
                                                        layer_context);
  selection_rows_ = dense ? 0 : in.num_tokens();
  if (bucket > 0) return run_padded_decode(in, bucket);

  ASSIGN_OR_RETURN(StepViews s, prepare_step(in));
  RETURN_IF_ERROR(run_model(s));
  return s.logits;
}

// A decode step padded to `bucket` rows with the fixed shape decode_shape_, so that its launches are
// those of the bucket's graph; only the real rows' logits are returned.
StatusOr<Tensor> Decoder::run_padded_decode(const StepInputs& in, int bucket) {
  ASSIGN_OR_RETURN(StepInputs padded, pad_decode_step(in, bucket, decode_shape_));
  ASSIGN_OR_RETURN(StepViews s, prepare_step(padded));
  RETURN_IF_ERROR(graphs_->run(bucket, [this, &s] { return run_model(s); }));
  return s.logits.rows(0, in.num_seqs());
}

Status Decoder::forward(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  if (logits != nullptr) logits->clear();
  if (steps.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(Tensor rows, run_step(steps));
  if (rows.dim(0) == 0 || logits == nullptr) return backend_.synchronize();
  logits->resize(static_cast<size_t>(rows.numel()));
  return backend_.download(rows, logits->data());
}

Status Decoder::forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                               std::vector<RowSample>* samples) {
  samples->clear();
  const auto wanted = static_cast<size_t>(
      std::count_if(steps.begin(), steps.end(), [](const SequenceStep& s) { return s.want_logits; }));
  if (wanted != rows.size()) {
    return invalid_argument(fmt::format("forward_sample: {} sampling rows for {} steps that want logits", rows.size(),
                                        wanted));
  }
  for (const SamplingRow& row : rows) {
    if (!supports_sampling(row)) {
      return unimplemented(fmt::format("forward_sample: the {} backend cannot sample this row", backend_.name()));
    }
  }
  if (steps.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(Tensor logits, run_step(steps));
  if (logits.dim(0) == 0) return backend_.synchronize();
  samples->resize(rows.size());
  return backend_.sample(logits, rows, *samples);
}

int Decoder::num_pages(int group) const {
  if (group < 0 || static_cast<size_t>(group) >= group_pages_.size()) return 0;
  return group_pages_[static_cast<size_t>(group)];
}

Status Decoder::read_index_cache(int layer, std::vector<uint8_t>* bytes) {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size() || !layers_[static_cast<size_t>(layer)].is_dsa()) {
    return not_found(fmt::format("runtime: layer {} is not a DSA layer", layer));
  }
  const Tensor& cache = layers_[static_cast<size_t>(layer)].index_cache();
  bytes->resize(cache.num_bytes());
  return backend_.download(cache, bytes->data());
}

Status Decoder::read_dsa_selection(std::vector<int32_t>* selection) {
  if (num_dsa_layers_ == 0) return not_found("runtime: the model has no DSA layer");
  if (selection_rows_ == 0) {
    return not_found("runtime: the last step attended densely (the dense prefill option, or every context within "
                     "index_topk): no selection");
  }
  const Tensor rows = ws_.scratch.dsa.indices.rows(0, selection_rows_);
  selection->resize(static_cast<size_t>(rows.numel()));
  return backend_.download(rows, selection->data());
}

StatusOr<std::unique_ptr<Transformer>> Transformer::load(const ModelConfig& config, const WeightSource& weights,
                                                         Backend& backend, const RuntimeOptions& options) {
  auto transformer = std::make_unique<Decoder>(config, backend, options);
  RETURN_IF_ERROR(transformer->init(weights));
  return std::unique_ptr<Transformer>(std::move(transformer));
}

}  // namespace longbow
