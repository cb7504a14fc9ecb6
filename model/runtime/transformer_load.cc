// Decoder::init: weights → layers (each asks the backend what it needs and declares its cache) →
// workspace → DSA scratch → KV pools per cache group (memory_plan.h) → decode graphs.
#include <algorithm>
#include <chrono>

#include "common/logging.h"
#include "model/arch/architecture.h"
#include "model/config/rope.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/memory_plan.h"
#include "model/runtime/model_weights.h"
#include "model/runtime/transformer_impl.h"

namespace longbow {
namespace {

Status check_options(const ModelConfig& config, const RuntimeOptions& options) {
  if (options.num_kv_pages < 0) {
    return invalid_argument(
        fmt::format("runtime: num_kv_pages must be >= 0 (0: planned from memory), got {}", options.num_kv_pages));
  }
  if (options.max_model_len < 0 || options.max_model_len > config.max_position_embeddings) {
    return invalid_argument(fmt::format("runtime: max_model_len {} is outside [0, max_position_embeddings {}]",
                                        options.max_model_len, config.max_position_embeddings));
  }
  RETURN_IF_ERROR(check_memory_utilization(options.gpu_memory_utilization));
  if (options.max_batched_tokens < 1) {
    return invalid_argument(
        fmt::format("runtime: max_batched_tokens must be >= 1, got {}", options.max_batched_tokens));
  }
  if (options.max_num_seqs < 1) {
    return invalid_argument(fmt::format("runtime: max_num_seqs must be >= 1, got {}", options.max_num_seqs));
  }
  if (config.max_position_embeddings < 1) {
    return invalid_argument(fmt::format("runtime: max_position_embeddings must be >= 1, got {}",
                                        config.max_position_embeddings));
  }
  if (config.dsa && config.sliding_window) {
    return unimplemented("runtime: DSA indexer (index_topk) together with sliding_window");
  }
  if (config.num_key_value_heads < 1 || config.num_attention_heads % config.num_key_value_heads != 0) {
    return invalid_argument(fmt::format("runtime: num_attention_heads {} is not a multiple of num_key_value_heads {}",
                                        config.num_attention_heads, config.num_key_value_heads));
  }
  return Status::Ok();
}

StatusOr<RopeTensors> upload_rope(Backend& backend, const RopeConfig& config, size_t* bytes) {
  const RopeTable table = make_rope_table(config);
  RopeTensors rope;
  ASSIGN_OR_RETURN(rope.inv_freq, backend.allocate(DType::kF32, {static_cast<int64_t>(table.inv_freq.size())}));
  RETURN_IF_ERROR(backend.upload(table.inv_freq.data(), rope.inv_freq));
  rope.attention_scaling = table.attention_scaling;
  *bytes += rope.inv_freq.num_bytes();
  return rope;
}

}  // namespace

Status Decoder::init(const WeightSource& source) {
  RETURN_IF_ERROR(check_options(config_, options_));
  RETURN_IF_ERROR(backend_.check_supported(config_));
  if (options_.max_model_len == 0) options_.max_model_len = config_.max_position_embeddings;
  RETURN_IF_ERROR(load_weights(source));
  RETURN_IF_ERROR(build_layers());
  RETURN_IF_ERROR(init_workspace());
  RETURN_IF_ERROR(init_dsa());
  RETURN_IF_ERROR(allocate_kv_pools());
  init_decode_graphs();
  return capture_decode_graphs();
}

Status Decoder::load_weights(const WeightSource& source) {
  ASSIGN_OR_RETURN(std::vector<bool> dsa_layers, dsa_layers_of(config_, source));
  ASSIGN_OR_RETURN(plan_, make_model_plan(config_, dsa_layers));
  if (rank_.rank.size > 1) {
    ASSIGN_OR_RETURN(plan_, shard_model_plan(plan_, rank_.rank));
  }
  const std::vector<TensorSpec> specs = plan_tensors(plan_);
  ASSIGN_OR_RETURN(MemoryInfo before, backend_.memory_info());
  RETURN_IF_ERROR(check_weights_fit(model_weight_bytes(specs, backend_.compute_dtype()), before.total_bytes,
                                    before.free_bytes, options_.gpu_memory_utilization, backend_.name()));
  ASSIGN_OR_RETURN(tensors_,
                   load_weight_tensors(specs, source, backend_, weight_transforms(plan_)));
  for (const auto& entry : tensors_) weights_bytes_ += entry.second.num_bytes();
  return Status::Ok();
}

// The plan's layers, each built from its entry (asking the backend for what it needs), and the
// cache groups of their specs.
Status Decoder::build_layers() {
  size_t rope_bytes = 0;
  for (const RopeConfig& rope : plan_.ropes) {
    ASSIGN_OR_RETURN(RopeTensors tensors, upload_rope(backend_, rope, &rope_bytes));
    ropes_.push_back(tensors);
  }
  DsaLayerOptions dsa;
  if (plan_.dsa) {
    RopeConfig index_rope = plan_.ropes.front();
    index_rope.rotary_dim = plan_.dsa->rope_dim;
    ASSIGN_OR_RETURN(dsa_rope_, upload_rope(backend_, index_rope, &rope_bytes));
    dsa = DsaLayerOptions{&*plan_.dsa, dsa_rope_, options_.dsa_prefill};
  }
  ASSIGN_OR_RETURN(embed_, take_tensor(tensors_, plan_.embed));
  embed_scale_ = plan_.embed_scale;
  if (embed_scale_ != 1.0f) RETURN_IF_ERROR(backend_.supports(OpQuery{"scale"}));
  ASSIGN_OR_RETURN(embed_norm_, Norm::build(plan_.embed_norm, tensors_, backend_));
  ASSIGN_OR_RETURN(final_norm_, Norm::build(plan_.head.final_norm, tensors_, backend_));
  if (rank_.comm != nullptr) RETURN_IF_ERROR(backend_.supports(OpQuery{"embed_shard"}));
  ASSIGN_OR_RETURN(head_, LmHead::build(plan_.head, tensors_, options_.max_num_seqs, backend_, rank_.comm));
  std::vector<CacheSpec> specs;
  for (size_t l = 0; l < plan_.layers.size(); ++l) {
    const LayerPlan& p = plan_.layers[l];
    const int rope = p.mla ? p.mla->rope : p.attention.rope;
    if (rope < 0 || static_cast<size_t>(rope) >= ropes_.size()) {
      return invalid_argument(fmt::format("runtime: layer {} names RoPE table {} of {}", l, rope, ropes_.size()));
    }
    StatusOr<DecoderLayer> layer =
        DecoderLayer::build(p, tensors_, ropes_[static_cast<size_t>(rope)], dsa, backend_, rank_.comm);
    if (!layer.ok()) return layer.status().with_context(fmt::format("runtime: layer {}", l));
    num_dsa_layers_ += layer->is_dsa() ? 1 : 0;
    specs.push_back(layer->cache_spec(backend_.compute_dtype()));
    layers_.push_back(std::move(layer).value());
  }
  groups_ = group_cache_specs(specs, kPageSize);
  layer_group_.assign(layers_.size(), 0);
  paged_index_.assign(groups_.size(), -1);
  int num_paged = 0, num_state = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    for (int l : groups_[g].layers) layer_group_[static_cast<size_t>(l)] = static_cast<int>(g);
    if (groups_[g].is_state) {
      ++num_state;
    } else {
      paged_index_[g] = num_paged++;
    }
  }
  // The engine's KV manager hands one slot per sequence, of its first state group (state_slot()).
  if (num_state > 1) return internal_error(fmt::format("runtime: {} state cache groups (at most 1)", num_state));
  weights_bytes_ += rope_bytes + head_.scratch_bytes();
  return Status::Ok();
}

Status Decoder::init_workspace() {
  // A planned pool is not sized yet; a sequence never spans more pages than max_model_len needs.
  int64_t table_width = pages_for_tokens(options_.max_model_len, kPageSize);
  if (options_.num_kv_pages > 0) table_width = std::min<int64_t>(table_width, options_.num_kv_pages);
  WorkspaceShape shape;
  shape.tokens = options_.max_batched_tokens;
  shape.seqs = options_.max_num_seqs;
  shape.hidden = config_.hidden_size;
  shape.vocab = config_.vocab_size;
  shape.table_width = table_width;
  shape.groups = num_paged_groups();
  for (const DecoderLayer& layer : layers_) {
    const ScratchWidths w = layer.scratch_widths();
    shape.q_dim = std::max(shape.q_dim, w.q);
    shape.kv_dim = std::max(shape.kv_dim, w.kv);
    shape.intermediate = std::max(shape.intermediate, w.intermediate);
    shape.experts = std::max(shape.experts, w.experts);
    shape.top_k = std::max(shape.top_k, w.top_k);
  }
  ASSIGN_OR_RETURN(ws_, allocate_workspace(backend_, shape));
  // The backend's MoE scratch for the largest step, allocated before the KV pools are planned.
  size_t moe_scratch = 0;
  for (const DecoderLayer& layer : layers_) {
    const MoeFfn* moe = layer.moe();
    if (moe == nullptr) continue;
    ASSIGN_OR_RETURN(size_t bytes, backend_.reserve_moe_workspace(options_.max_batched_tokens, moe->top_k(),
                                                                  moe->num_experts(), moe->hidden(),
                                                                  moe->intermediate()));
    moe_scratch = std::max(moe_scratch, bytes);
  }
  ws_.num_bytes += moe_scratch;
  limits_.max_tokens = options_.max_batched_tokens;
  limits_.max_seqs = options_.max_num_seqs;
  limits_.vocab_size = config_.vocab_size;
  limits_.max_context_len = static_cast<int>(std::min<int64_t>(options_.max_model_len, table_width * kPageSize));
  decode_shape_.table_width = static_cast<int>(table_width);
  decode_shape_.max_context_len = limits_.max_context_len;
  decode_shape_.num_groups = shape.groups;
  limits_.has_state = std::any_of(groups_.begin(), groups_.end(), [](const CacheGroup& g) { return g.is_state; });
  return Status::Ok();
}

// The DSA layers' row-block index buffer and scratch, and the backend's op scratch for padded decode
// steps, all counted in the workspace. Nothing when no layer has indexer tensors.
Status Decoder::init_dsa() {
  if (num_dsa_layers_ == 0) return Status::Ok();
  const DsaIndexerConfig& dsa = *plan_.dsa;
  ASSIGN_OR_RETURN(ws_.scratch.dsa, allocate_dsa_scratch(backend_, dsa, options_.max_batched_tokens,
                                                         limits_.max_context_len, options_.dsa_logits_budget_bytes));
  ws_.num_bytes += ws_.scratch.dsa.num_bytes;
  // Blocks of at least min_rows rows; block b holds n_b + 1 starts and n_b lengths, and the n_b sum
  // to at most S + blocks - 1 (a sequence split across blocks counts in each).
  const int64_t min_rows = dsa_rows_per_block(ws_.scratch.dsa.logits.numel(), limits_.max_context_len);
  const int64_t max_blocks = (options_.max_batched_tokens + min_rows - 1) / min_rows;
  ASSIGN_OR_RETURN(ws_.dsa_block_index,
                   backend_.allocate(DType::kI32, {2 * int64_t{options_.max_num_seqs} + 3 * max_blocks}));
  ws_.num_bytes += ws_.dsa_block_index.num_bytes();
  return reserve_dsa_graph_workspace(min_rows);
}

// A padded decode step of B rows is scored over the context bound in blocks of rows_per_block rows
// (plan_dsa_blocks): the backend's op scratch for those blocks, at every batch size, is allocated
// now and counted in the workspace, so that no capture or replay ever grows it.
Status Decoder::reserve_dsa_graph_workspace(int64_t rows_per_block) {
  const DsaIndexerConfig& dsa = *plan_.dsa;
  std::vector<DsaWorkspaceShape> shapes;
  for (int bucket : decode_batch_sizes()) {
    for (int64_t rows : {std::min<int64_t>(bucket, rows_per_block), bucket % rows_per_block}) {
      if (rows == 0) continue;
      DsaWorkspaceShape shape;
      shape.rows = static_cast<int>(rows);
      shape.logits_width = dsa_logits_width(decode_shape_.max_context_len);
      shape.index_heads = dsa.n_heads;
      shape.index_head_dim = dsa.head_dim;
      shape.topk = dsa.topk;
      shape.q_heads = config_.num_attention_heads;
      shape.kv_heads = config_.num_key_value_heads;
      shape.head_dim = config_.head_dim;
      shapes.push_back(shape);
    }
  }
  if (shapes.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(size_t bytes, backend_.reserve_dsa_workspace(shapes));
  ws_.num_bytes += bytes;
  return Status::Ok();
}

// One pool per layer, sized by its cache group: a state group holds max_num_seqs slots (taken off the
// budget first); the paged groups share the rest in proportion to their demand (plan_group_pages:
// full groups max_model_len per sequence, window groups min(W + max_batched_tokens, max_model_len)),
// or every paged group gets options.num_kv_pages.
Status Decoder::allocate_kv_pools() {
  ASSIGN_OR_RETURN(MemoryInfo memory, backend_.memory_info());
  GroupDemand demand;
  demand.max_model_len = options_.max_model_len;
  demand.max_batched_tokens = options_.max_batched_tokens;
  demand.max_num_seqs = options_.max_num_seqs;
  demand.page_size = kPageSize;
  // The pool arithmetic of memory_plan.h counts in "sequence pages": the bytes one max_model_len
  // sequence takes over all groups, per page of its tokens.
  const int64_t seq_pages = pages_for_tokens(options_.max_model_len, kPageSize);
  int64_t seq_bytes = 0, all_groups_page_bytes = 0;
  size_t state_bytes = 0;
  std::vector<CacheGroup> paged;
  for (const CacheGroup& g : groups_) {
    if (g.is_state) {
      state_bytes += static_cast<size_t>(g.bytes_per_slot) * static_cast<size_t>(options_.max_num_seqs);
      continue;
    }
    paged.push_back(g);
    seq_bytes += pages_for_tokens(group_demand_tokens(g, demand), kPageSize) * g.bytes_per_page;
    all_groups_page_bytes += g.bytes_per_page;
  }
  KvPoolRequest request;
  request.backend_name = std::string(backend_.name());
  request.total_bytes = memory.total_bytes;
  request.free_bytes = memory.free_bytes;
  request.utilization = options_.gpu_memory_utilization;
  request.weights_bytes = weights_bytes_;
  request.workspace_bytes = ws_.num_bytes + state_bytes;  // the state slots are fixed, like the workspace
  request.page_bytes = options_.num_kv_pages > 0 ? static_cast<size_t>(all_groups_page_bytes)
                                                 : static_cast<size_t>((seq_bytes + seq_pages - 1) / seq_pages);
  request.page_size = kPageSize;
  request.explicit_pages = options_.num_kv_pages;
  request.max_model_len = options_.max_model_len;
  if (backend_.name() == "cpu") {  // host RAM: bounded like vLLM's CPU KV space, and by what can be used
    request.space_cap_bytes = options_.cpu_kv_cache_bytes;
    // + every paged group's null page, in units of page_bytes (plan_group_pages takes them off first)
    const auto unit = static_cast<int64_t>(request.page_bytes);
    request.useful_pages = int64_t{options_.max_num_seqs} * seq_pages + (all_groups_page_bytes + unit - 1) / unit;
  }
  ASSIGN_OR_RETURN(KvPoolPlan plan, plan_kv_pool(request));
  if (!plan.warning.empty()) spdlog::warn("{}", plan.warning);
  std::vector<int> paged_pages;
  if (options_.num_kv_pages > 0 || paged.size() == 1) {
    // One group takes the whole pool (its null page among the pages).
    paged_pages.assign(paged.size(), plan.num_pages);
  } else {
    // The pool's bytes split by demand (plan_group_pages counts each group's null page in it).
    paged_pages = plan_group_pages(paged, plan.pool_bytes, demand);
    RETURN_IF_ERROR(check_group_plan(paged, paged_pages, demand));
  }
  group_pages_.assign(groups_.size(), options_.max_num_seqs);  // state groups: one slot per sequence
  for (size_t g = 0; g < groups_.size(); ++g) {
    if (paged_index_[g] >= 0) group_pages_[g] = paged_pages[static_cast<size_t>(paged_index_[g])];
  }
  size_t allocated = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const auto group = static_cast<size_t>(layer_group_[l]);
    StatusOr<size_t> bytes = layers_[l].allocate_cache(backend_, group_pages_[group], paged_index_[group]);
    if (!bytes.ok()) return bytes.status().with_context(fmt::format("allocating the KV pool of layer {}", l));
    allocated += *bytes;
  }
  limits_.num_pages = paged_pages;
  limits_.num_state_slots = limits_.has_state ? options_.max_num_seqs : 0;
  const std::string rank = rank_.rank.size > 1 ? fmt::format("rank {} of {}: ", rank_.rank.rank, rank_.rank.size) : "";
  spdlog::info("runtime: {}{} {}; {} ({:.1f} MiB allocated)", rank, config_.model_type, plan.summary,
               describe_group_plan(groups_, group_pages_, demand), static_cast<double>(allocated) / 1048576.0);
  if (num_dsa_layers_ > 0) {
    spdlog::info("runtime: DSA on {} of {} layers (index_topk {}, prefill {})", num_dsa_layers_, layers_.size(),
                 plan_.dsa->topk, dsa_prefill_mode_name(options_.dsa_prefill));
  }
  return Status::Ok();
}

bool Decoder::captures_decode_graphs() const { return options_.enable_cuda_graphs && backend_.supports_graphs(); }

// The batch sizes decode steps are padded to; none when they run unpadded.
std::vector<int> Decoder::decode_batch_sizes() const {
  if (!captures_decode_graphs() && !options_.pad_decode_steps) return {};
  const int max_bs = std::min({options_.cuda_graph_max_bs, options_.max_num_seqs, options_.max_batched_tokens});
  if (max_bs < 1) return {};
  return decode_graph_buckets(max_bs);
}

void Decoder::init_decode_graphs() {
  const bool capture = captures_decode_graphs();
  if (!capture && !options_.pad_decode_steps) {
    spdlog::info("runtime: decode steps run eagerly ({})",
                 options_.enable_cuda_graphs ? "the " + std::string(backend_.name()) + " backend has no graphs"
                                             : std::string("graphs disabled"));
    return;
  }
  std::vector<int> buckets = decode_batch_sizes();
  if (buckets.empty()) return;
  const int max_bs = buckets.back();
  graphs_ = std::make_unique<DecodeGraphCache>(backend_, std::move(buckets), capture);
  std::string sizes;
  for (int b : graphs_->buckets()) sizes += fmt::format("{}{}", sizes.empty() ? "" : ",", b);
  spdlog::info("runtime: decode steps of up to {} sequences {} (batch sizes {}; block tables {} pages wide, "
               "context bound {})",
               max_bs, capture ? "run as CUDA graphs" : "are padded to graph batch sizes and run eagerly", sizes,
               decode_shape_.table_width, decode_shape_.max_context_len);
}

Status Decoder::capture_decode_graphs() {
  if (graphs_ == nullptr || !graphs_->captures()) return Status::Ok();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int>& buckets = graphs_->buckets();
  // Largest first: its eager step sizes the backend's scratch once for every smaller bucket.
  for (auto it = buckets.rbegin(); it != buckets.rend(); ++it) {
    // Padding rows only: no K/V or index key is written and no context is read, so the pool is
    // untouched; the logits are discarded.
    const StepInputs padding = padding_decode_step(*it, decode_shape_);
    StatusOr<StepViews> s = prepare_step(padding);
    Status status = s.ok() ? graphs_->run(*it, [this, &s] { return run_model(*s); }) : s.status();
    if (!status.ok()) {
      return status.with_context(fmt::format("runtime: capturing the decode graph of batch size {} at load", *it));
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("runtime: {} of {} decode batch sizes captured as CUDA graphs in {:.2f} s ({:.1f} MiB of graph memory)",
               graphs_->num_captured(), buckets.size(), seconds,
               static_cast<double>(graphs_->graph_bytes()) / 1048576.0);
  return Status::Ok();
}

}  // namespace longbow
