// The Llama-style decoder (llama, mistral, qwen2, qwen3) over the Backend ops:
//
//   h = embed(ids)
//   per layer: x = rms_norm(h) → q, k, v = x·Wqᵀ(+b), x·Wkᵀ(+b), x·Wvᵀ(+b) → [qwen3: per-head rms_norm
//              of q and k] → RoPE(q, k) → append k, v to the paged cache → paged attention (causal,
//              GQA, sliding window) → h += attn·Woᵀ(+b); x = rms_norm(h) → h += down(silu(gate(x))·up(x))
//   logits = lm_head(rms_norm(h)) for the rows that want them.
//
// Each residual add is fused into the next norm (add_rms_norm), so the layer's MLP output is added at
// the start of the next layer (or before the final norm).
//
// A DSA layer (its checkpoint has self_attn.indexer.* tensors) replaces paged attention with
// run_dsa_attention (dsa_attention.h) over its own FP8 index-cache pool, which shares the K/V page ids.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "model/config/rope.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/decode_graphs.h"
#include "model/runtime/dsa_row_blocks.h"
#include "model/runtime/memory_plan.h"
#include "model/runtime/model_weights.h"
#include "model/runtime/step_inputs.h"
#include "model/runtime/transformer.h"

namespace longbow {
namespace {

// Activation and index buffers sized once for the largest step; each step uses views of their
// leading rows. T = max_batched_tokens, S = max_num_seqs.
struct Workspace {
  Tensor hidden;       // [T, H] the residual stream
  Tensor normed;       // [T, H] the current norm's output
  Tensor q, attn;      // [T, Hq·D]
  Tensor k, v;         // [T, Hkv·D]
  Tensor proj;         // [T, H] attention or MLP output before its residual add
  Tensor gate, up;     // [T, I]; gate also holds silu(gate)·up
  Tensor token_ids, positions, slots;  // [T] I32
  Tensor query_start;                  // [S + 1] I32
  Tensor context_lens, logit_rows;     // [S] I32
  Tensor block_tables;                 // [S · W] I32, W = pages for max_position_embeddings
  Tensor indices;  // [3T + 3S + 1 + S·W] I32: the seven index tensors above live in it, in that order,
                   // so one copy uploads a step's indices (each keeps a fixed address for graphs)
  Tensor last_normed;                  // [S, H] final-normed rows that want logits
  Tensor logits;                       // [S, V] F32
  Tensor dsa_block_index;              // I32: the DSA row blocks' query_start and context_lens
  size_t num_bytes = 0;
};

// The workspace's leading rows for one step of T tokens, S sequences and L logit rows.
struct StepViews {
  Tensor hidden, normed, q, attn, k, v, proj, gate, up;
  Tensor token_ids, positions, slots, query_start, context_lens, logit_rows, block_tables;
  Tensor last_normed, logits;
  std::vector<DsaRowBlockTensors> dsa_blocks;  // empty: the whole step is one block
};

class LlamaTransformer final : public Transformer {
 public:
  LlamaTransformer(const ModelConfig& config, Backend& backend, const RuntimeOptions& options)
      : config_(config), backend_(backend), options_(options) {}

  Status init(const WeightSource& source);
  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override;
  const ModelConfig& config() const override { return config_; }
  int num_kv_pages() const override { return options_.num_kv_pages; }
  // [kv: interim until the layer-kind runtime] One group: every layer, the config's window (0: full).
  const std::vector<CacheGroup>& cache_groups() const override { return cache_groups_; }
  int num_pages(int group) const override { return group == 0 ? options_.num_kv_pages : 0; }
  int num_decode_graphs() const override { return graphs_ ? graphs_->num_captured() : 0; }
  Status read_index_cache(int layer, std::vector<uint8_t>* bytes) override;
  Status read_dsa_selection(std::vector<int32_t>* selection) override;

 private:
  Status allocate_workspace();
  Status allocate_kv_pool();
  Status init_dsa();
  Status allocate_index_pool();
  Status plan_dsa_blocks(const StepInputs& in, StepViews& v);
  Status run_attention(int layer, StepViews& s, const PagedAttentionArgs& attention);
  StatusOr<StepViews> prepare_step(const StepInputs& in);
  Status run_layer(int layer, StepViews& s, const StepInputs& in);
  // Every launch of a step whose inputs are on the device, up to the logits (no host synchronisation).
  Status run_model(StepViews& s, const StepInputs& in);
  Status forward_padded_decode(const StepInputs& in, int bucket, std::vector<float>* logits);
  bool captures_decode_graphs() const;
  std::vector<int> decode_batch_sizes() const;
  Status reserve_dsa_graph_workspace(int64_t rows_per_block);
  void init_decode_graphs();
  // Captures every decode batch size's graph before the first request (CUDA graphs on).
  Status capture_decode_graphs();

  StatusOr<Tensor> allocate(DType dtype, std::initializer_list<int64_t> dims, size_t* counter) {
    StatusOr<Tensor> t = backend_.allocate(dtype, dims);
    if (t.ok()) *counter += t->num_bytes();
    return t;
  }

  ModelConfig config_;
  Backend& backend_;
  RuntimeOptions options_;
  StepLimits limits_;
  std::vector<CacheGroup> cache_groups_;  // [kv: interim] set once the pool is allocated
  ModelWeights weights_;
  Tensor inv_freq_;  // [rotary_dim / 2] F32
  float attention_scaling_ = 1.0f;
  std::vector<Tensor> k_cache_, v_cache_;  // per layer [P, kPageSize, Hkv, D]
  Workspace ws_;
  std::vector<int32_t> index_staging_;       // host image of ws_.indices, reused every step
  DecodeShape decode_shape_;                 // the workspace's table width and context bound
  std::unique_ptr<DecodeGraphCache> graphs_;  // null: decode steps run eagerly; after ws_ (uses it)
  // DSA layers only (none when the checkpoint has no indexer tensors).
  int num_dsa_layers_ = 0;
  std::vector<Tensor> index_cache_;  // per layer [P, kPageSize · (index_head_dim + 4)] FP8; empty if dense
  Tensor dsa_inv_freq_;              // [index_rope_dim / 2] F32
  float dsa_attention_scaling_ = 1.0f;
  DsaScratch dsa_scratch_;
  int selection_rows_ = 0;  // rows of dsa_scratch_.indices the last forward() selected; 0: it attended densely
};

Status check_options(const ModelConfig& config, const RuntimeOptions& options) {
  if (options.num_kv_pages < 0) {
    return invalid_argument("runtime: num_kv_pages must be >= 0 (0: planned from memory), got " +
                            std::to_string(options.num_kv_pages));
  }
  if (options.max_model_len < 0 || options.max_model_len > config.max_position_embeddings) {
    return invalid_argument("runtime: max_model_len " + std::to_string(options.max_model_len) +
                            " is outside [0, max_position_embeddings " +
                            std::to_string(config.max_position_embeddings) + "]");
  }
  RETURN_IF_ERROR(check_memory_utilization(options.gpu_memory_utilization));
  if (options.max_batched_tokens < 1) {
    return invalid_argument("runtime: max_batched_tokens must be >= 1, got " +
                            std::to_string(options.max_batched_tokens));
  }
  if (options.max_num_seqs < 1) {
    return invalid_argument("runtime: max_num_seqs must be >= 1, got " + std::to_string(options.max_num_seqs));
  }
  if (config.max_position_embeddings < 1) {
    return invalid_argument("runtime: max_position_embeddings must be >= 1, got " +
                            std::to_string(config.max_position_embeddings));
  }
  if (config.dsa && config.sliding_window) {
    return unimplemented("runtime: DSA indexer (index_topk) together with sliding_window");
  }
  if (config.num_key_value_heads < 1 || config.num_attention_heads % config.num_key_value_heads != 0) {
    return invalid_argument("runtime: num_attention_heads " + std::to_string(config.num_attention_heads) +
                            " is not a multiple of num_key_value_heads " +
                            std::to_string(config.num_key_value_heads));
  }
  return Status::Ok();
}

Status LlamaTransformer::init(const WeightSource& source) {
  RETURN_IF_ERROR(check_options(config_, options_));
  RETURN_IF_ERROR(backend_.check_supported(config_));
  if (options_.max_model_len == 0) options_.max_model_len = config_.max_position_embeddings;
  ASSIGN_OR_RETURN(MemoryInfo before, backend_.memory_info());
  RETURN_IF_ERROR(check_weights_fit(model_weight_bytes(expected_tensors(config_), backend_.compute_dtype()),
                                    before.total_bytes, before.free_bytes, options_.gpu_memory_utilization,
                                    backend_.name()));
  ASSIGN_OR_RETURN(weights_, load_model_weights(config_, source, backend_));

  RopeTable rope = make_rope_table(config_.rope);
  if (rope.inv_freq.empty() || rope.inv_freq.size() * 2 > static_cast<size_t>(config_.head_dim)) {
    return invalid_argument("runtime: rope rotary_dim " + std::to_string(rope.inv_freq.size() * 2) +
                            " must be in [2, head_dim " + std::to_string(config_.head_dim) + "]");
  }
  size_t rope_bytes = 0;
  ASSIGN_OR_RETURN(inv_freq_, allocate(DType::kF32, {static_cast<int64_t>(rope.inv_freq.size())}, &rope_bytes));
  RETURN_IF_ERROR(backend_.upload(rope.inv_freq.data(), inv_freq_));
  attention_scaling_ = rope.attention_scaling;

  limits_.max_tokens = options_.max_batched_tokens;
  limits_.max_seqs = options_.max_num_seqs;
  limits_.vocab_size = config_.vocab_size;
  limits_.sliding_window = config_.sliding_window.value_or(0);
  RETURN_IF_ERROR(allocate_workspace());
  RETURN_IF_ERROR(init_dsa());
  RETURN_IF_ERROR(allocate_kv_pool());
  limits_.num_pages = options_.num_kv_pages;
  {  // [kv: interim until the layer-kind runtime] the one cache group of a Llama-shaped model
    CacheGroup group;
    group.window = config_.sliding_window.value_or(0);
    group.bytes_per_page =
        static_cast<int64_t>(kv_page_bytes(config_, backend_.compute_dtype(), kPageSize));
    for (int l = 0; l < config_.num_hidden_layers; ++l) group.layers.push_back(l);
    cache_groups_ = {group};
  }
  RETURN_IF_ERROR(allocate_index_pool());
  init_decode_graphs();
  return capture_decode_graphs();
}

// The DSA layers' RoPE table (built for index_rope_dim dims), row-block index buffer and scratch,
// and the backend's op scratch for padded decode steps, all counted in the workspace. Nothing when
// no layer has indexer tensors.
Status LlamaTransformer::init_dsa() {
  for (const LayerWeights& layer : weights_.layers) num_dsa_layers_ += layer.indexer.has_value() ? 1 : 0;
  if (num_dsa_layers_ == 0) return Status::Ok();
  const DsaIndexerConfig& dsa = *config_.dsa;
  RopeConfig index_rope = config_.rope;
  index_rope.rotary_dim = dsa.rope_dim;
  RopeTable rope = make_rope_table(index_rope);
  ASSIGN_OR_RETURN(dsa_inv_freq_,
                   allocate(DType::kF32, {static_cast<int64_t>(rope.inv_freq.size())}, &ws_.num_bytes));
  RETURN_IF_ERROR(backend_.upload(rope.inv_freq.data(), dsa_inv_freq_));
  dsa_attention_scaling_ = rope.attention_scaling;

  ASSIGN_OR_RETURN(dsa_scratch_, allocate_dsa_scratch(backend_, dsa, options_.max_batched_tokens,
                                                      limits_.max_context_len,
                                                      options_.dsa_logits_budget_bytes));
  ws_.num_bytes += dsa_scratch_.num_bytes;
  // Blocks of at least min_rows rows; block b holds n_b + 1 starts and n_b lengths, and the n_b sum
  // to at most S + blocks - 1 (a sequence split across blocks counts in each).
  const int64_t min_rows = dsa_rows_per_block(dsa_scratch_.logits.numel(), limits_.max_context_len);
  const int64_t max_blocks = (options_.max_batched_tokens + min_rows - 1) / min_rows;
  ASSIGN_OR_RETURN(ws_.dsa_block_index,
                   allocate(DType::kI32, {2 * int64_t{options_.max_num_seqs} + 3 * max_blocks}, &ws_.num_bytes));
  return reserve_dsa_graph_workspace(min_rows);
}

// A padded decode step of B rows is scored over the context bound in blocks of rows_per_block rows
// (plan_dsa_blocks): the backend's op scratch for those blocks, at every batch size, is allocated
// now and counted in the workspace, so that no capture or replay ever grows it.
Status LlamaTransformer::reserve_dsa_graph_workspace(int64_t rows_per_block) {
  const DsaIndexerConfig& dsa = *config_.dsa;
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

// One index-cache pool per DSA layer, indexed by the K/V page ids.
Status LlamaTransformer::allocate_index_pool() {
  index_cache_.resize(static_cast<size_t>(config_.num_hidden_layers));
  if (num_dsa_layers_ == 0) return Status::Ok();
  const int64_t page_bytes = int64_t{kPageSize} * (config_.dsa->head_dim + 4);
  size_t allocated = 0;
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    if (!weights_.layers[static_cast<size_t>(l)].indexer) continue;
    StatusOr<Tensor> t = allocate(DType::kFP8E4M3, {options_.num_kv_pages, page_bytes}, &allocated);
    if (!t.ok()) return t.status().with_context("allocating the DSA index cache of layer " + std::to_string(l));
    index_cache_[static_cast<size_t>(l)] = std::move(t).value();
  }
  spdlog::info("runtime: DSA on {} of {} layers (index_topk {}, prefill {}): index cache {} pages ({:.1f} MiB)",
               num_dsa_layers_, config_.num_hidden_layers, config_.dsa->topk,
               dsa_prefill_mode_name(options_.dsa_prefill), options_.num_kv_pages, allocated / 1048576.0);
  return Status::Ok();
}

bool LlamaTransformer::captures_decode_graphs() const {
  return options_.enable_cuda_graphs && backend_.supports_graphs();
}

// The batch sizes decode steps are padded to; none when they run unpadded.
std::vector<int> LlamaTransformer::decode_batch_sizes() const {
  if (!captures_decode_graphs() && !options_.pad_decode_steps) return {};
  const int max_bs = std::min({options_.cuda_graph_max_bs, options_.max_num_seqs, options_.max_batched_tokens});
  if (max_bs < 1) return {};
  return decode_graph_buckets(max_bs);
}

void LlamaTransformer::init_decode_graphs() {
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
  for (int b : graphs_->buckets()) sizes += (sizes.empty() ? "" : ",") + std::to_string(b);
  spdlog::info("runtime: decode steps of up to {} sequences {} (batch sizes {}; block tables {} pages wide, "
               "context bound {})",
               max_bs, capture ? "run as CUDA graphs" : "are padded to graph batch sizes and run eagerly",
               sizes,
               decode_shape_.table_width, decode_shape_.max_context_len);
}

Status LlamaTransformer::capture_decode_graphs() {
  if (graphs_ == nullptr || !graphs_->captures()) return Status::Ok();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int>& buckets = graphs_->buckets();
  // Largest first: its eager step sizes the backend's scratch once for every smaller bucket.
  for (auto it = buckets.rbegin(); it != buckets.rend(); ++it) {
    // Padding rows only: no K/V or index key is written and no context is read, so the pool is
    // untouched; the logits are discarded.
    const StepInputs padding = padding_decode_step(*it, decode_shape_);
    StatusOr<StepViews> s = prepare_step(padding);
    Status status = s.ok() ? graphs_->run(*it, [this, &s, &padding] { return run_model(*s, padding); }) : s.status();
    if (!status.ok()) return status.with_context("runtime: capturing the decode graph of batch size " +
                                                 std::to_string(*it) + " at load");
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("runtime: {} of {} decode batch sizes captured as CUDA graphs in {:.2f} s ({:.1f} MiB of graph memory)",
               graphs_->num_captured(), buckets.size(), seconds,
               static_cast<double>(graphs_->graph_bytes()) / 1048576.0);
  return Status::Ok();
}

Status LlamaTransformer::allocate_workspace() {
  const int64_t t = options_.max_batched_tokens;
  const int64_t s = options_.max_num_seqs;
  const int64_t h = config_.hidden_size;
  const int64_t q_dim = int64_t{config_.num_attention_heads} * config_.head_dim;
  const int64_t kv_dim = int64_t{config_.num_key_value_heads} * config_.head_dim;
  // A planned pool is not sized yet; a sequence never spans more pages than max_model_len needs.
  int64_t table_width = pages_for_tokens(options_.max_model_len, kPageSize);
  if (options_.num_kv_pages > 0) table_width = std::min<int64_t>(table_width, options_.num_kv_pages);
  const DType dt = backend_.compute_dtype();
  size_t* n = &ws_.num_bytes;
  ASSIGN_OR_RETURN(ws_.hidden, allocate(dt, {t, h}, n));
  ASSIGN_OR_RETURN(ws_.normed, allocate(dt, {t, h}, n));
  ASSIGN_OR_RETURN(ws_.q, allocate(dt, {t, q_dim}, n));
  ASSIGN_OR_RETURN(ws_.attn, allocate(dt, {t, q_dim}, n));
  ASSIGN_OR_RETURN(ws_.k, allocate(dt, {t, kv_dim}, n));
  ASSIGN_OR_RETURN(ws_.v, allocate(dt, {t, kv_dim}, n));
  ASSIGN_OR_RETURN(ws_.proj, allocate(dt, {t, h}, n));
  ASSIGN_OR_RETURN(ws_.gate, allocate(dt, {t, config_.intermediate_size}, n));
  ASSIGN_OR_RETURN(ws_.up, allocate(dt, {t, config_.intermediate_size}, n));
  ASSIGN_OR_RETURN(ws_.indices, allocate(DType::kI32, {3 * t + 3 * s + 1 + s * table_width}, n));
  int64_t offset = 0;
  for (auto [tensor, count] : {std::pair<Tensor*, int64_t>{&ws_.token_ids, t}, {&ws_.positions, t}, {&ws_.slots, t},
                               {&ws_.query_start, s + 1}, {&ws_.context_lens, s}, {&ws_.logit_rows, s},
                               {&ws_.block_tables, s * table_width}}) {
    *tensor = ws_.indices.rows(offset, count);
    offset += count;
  }
  ASSIGN_OR_RETURN(ws_.last_normed, allocate(dt, {s, h}, n));
  ASSIGN_OR_RETURN(ws_.logits, allocate(DType::kF32, {s, config_.vocab_size}, n));
  limits_.max_context_len = static_cast<int>(std::min<int64_t>(options_.max_model_len, table_width * kPageSize));
  decode_shape_.table_width = static_cast<int>(table_width);
  decode_shape_.max_context_len = limits_.max_context_len;
  return Status::Ok();
}

Status LlamaTransformer::allocate_kv_pool() {
  const DType dt = backend_.compute_dtype();
  ASSIGN_OR_RETURN(MemoryInfo memory, backend_.memory_info());
  KvPoolRequest request;
  request.backend_name = std::string(backend_.name());
  request.total_bytes = memory.total_bytes;
  request.free_bytes = memory.free_bytes;
  request.utilization = options_.gpu_memory_utilization;
  request.weights_bytes = weights_.num_bytes;
  request.workspace_bytes = ws_.num_bytes;
  request.page_bytes = kv_page_bytes(config_, dt, kPageSize);
  request.page_size = kPageSize;
  request.explicit_pages = options_.num_kv_pages;
  request.max_model_len = options_.max_model_len;
  if (backend_.name() == "cpu") {  // host RAM: bounded like vLLM's CPU KV space, and by what can be used
    request.space_cap_bytes = options_.cpu_kv_cache_bytes;
    // [kv: interim] + the null page (page 0, never handed out: model/kv_cache/window_pages.h).
    request.useful_pages = int64_t{options_.max_num_seqs} * pages_for_tokens(options_.max_model_len, kPageSize) + 1;
  }
  ASSIGN_OR_RETURN(KvPoolPlan plan, plan_kv_pool(request));
  if (!plan.warning.empty()) spdlog::warn("{}", plan.warning);
  options_.num_kv_pages = plan.num_pages;

  const int64_t pages = plan.num_pages;
  size_t allocated = 0;
  for (int l = 0; l < config_.num_hidden_layers; ++l) {
    for (std::vector<Tensor>* pool : {&k_cache_, &v_cache_}) {
      StatusOr<Tensor> t =
          allocate(dt, {pages, kPageSize, config_.num_key_value_heads, config_.head_dim}, &allocated);
      if (!t.ok()) return t.status().with_context("allocating the KV pool of layer " + std::to_string(l));
      pool->push_back(std::move(t).value());
    }
  }
  spdlog::info("runtime: {} {}", config_.model_type, plan.summary);
  return Status::Ok();
}

StatusOr<StepViews> LlamaTransformer::prepare_step(const StepInputs& in) {
  const int64_t t = in.num_tokens(), s = in.num_seqs(), l = static_cast<int64_t>(in.logit_rows.size());
  StepViews v;
  v.hidden = ws_.hidden.rows(0, t);
  v.normed = ws_.normed.rows(0, t);
  v.q = ws_.q.rows(0, t);
  v.attn = ws_.attn.rows(0, t);
  v.k = ws_.k.rows(0, t);
  v.v = ws_.v.rows(0, t);
  v.proj = ws_.proj.rows(0, t);
  v.gate = ws_.gate.rows(0, t);
  v.up = ws_.up.rows(0, t);
  v.token_ids = ws_.token_ids.rows(0, t);
  v.positions = ws_.positions.rows(0, t);
  v.slots = ws_.slots.rows(0, t);
  v.query_start = ws_.query_start.rows(0, s + 1);
  v.context_lens = ws_.context_lens.rows(0, s);
  v.logit_rows = ws_.logit_rows.rows(0, l);
  v.block_tables = ws_.block_tables.rows(0, s * in.pages_per_seq).reshape({s, in.pages_per_seq});
  v.last_normed = ws_.last_normed.rows(0, l);
  v.logits = ws_.logits.rows(0, l);
  // One host image of ws_.indices up to the step's last block-table entry, uploaded in one copy;
  // each array at its tensor's offset (the gaps between them are never read).
  auto offset_of = [&](const Tensor& view) {
    return static_cast<size_t>(static_cast<const int32_t*>(view.data) - ws_.indices.as<int32_t>());
  };
  index_staging_.resize(offset_of(v.block_tables) + in.block_tables.size());
  for (auto [host, view] : {std::pair<const std::vector<int32_t>*, const Tensor*>{&in.token_ids, &v.token_ids},
                            {&in.positions, &v.positions}, {&in.slots, &v.slots}, {&in.query_start, &v.query_start},
                            {&in.context_lens, &v.context_lens}, {&in.logit_rows, &v.logit_rows},
                            {&in.block_tables, &v.block_tables}}) {
    std::copy(host->begin(), host->end(), index_staging_.begin() + static_cast<std::ptrdiff_t>(offset_of(*view)));
  }
  Tensor used = ws_.indices.rows(0, static_cast<int64_t>(index_staging_.size()));
  RETURN_IF_ERROR(backend_.upload(index_staging_.data(), used));
  RETURN_IF_ERROR(plan_dsa_blocks(in, v));
  return v;
}

// A step whose rows' index logits do not fit the DSA scratch at once is scored in row blocks; their
// index arrays are uploaded once per step (every DSA layer reuses them).
Status LlamaTransformer::plan_dsa_blocks(const StepInputs& in, StepViews& v) {
  if (num_dsa_layers_ == 0) return Status::Ok();
  if (options_.dsa_prefill == DsaPrefillMode::kDense && in.max_query_len > 1) return Status::Ok();
  const int rows = dsa_rows_per_block(dsa_scratch_.logits.numel(), in.max_context_len);
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
    return internal_error("runtime: " + std::to_string(blocks.size()) + " DSA row blocks overflow their index buffer");
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

Status LlamaTransformer::run_layer(int layer, StepViews& s, const StepInputs& in) {
  const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  const auto eps = static_cast<float>(config_.rms_norm_eps);
  const int64_t t = in.num_tokens();
  const int64_t hq = config_.num_attention_heads, hkv = config_.num_key_value_heads, d = config_.head_dim;
  Backend& b = backend_;

  if (layer == 0) {
    RETURN_IF_ERROR(b.rms_norm(s.hidden, w.input_norm, eps, s.normed));
  } else {
    RETURN_IF_ERROR(b.add_rms_norm(s.hidden, s.proj, w.input_norm, eps, s.normed));  // + previous MLP output
  }
  RETURN_IF_ERROR(b.matmul(s.normed, w.q_proj, w.q_bias, s.q));
  RETURN_IF_ERROR(b.matmul(s.normed, w.k_proj, w.k_bias, s.k));
  RETURN_IF_ERROR(b.matmul(s.normed, w.v_proj, w.v_bias, s.v));
  Tensor q_heads = s.q.reshape({t, hq, d});
  Tensor k_heads = s.k.reshape({t, hkv, d});
  Tensor v_heads = s.v.reshape({t, hkv, d});
  if (config_.qk_norm) {
    Tensor q_rows = s.q.reshape({t * hq, d});
    Tensor k_rows = s.k.reshape({t * hkv, d});
    RETURN_IF_ERROR(b.rms_norm(q_rows, w.q_norm, eps, q_rows));
    RETURN_IF_ERROR(b.rms_norm(k_rows, w.k_norm, eps, k_rows));
  }
  RETURN_IF_ERROR(b.rope(q_heads, k_heads, s.positions, inv_freq_, attention_scaling_));
  auto l = static_cast<size_t>(layer);
  RETURN_IF_ERROR(b.append_kv(k_heads, v_heads, s.slots, k_cache_[l], v_cache_[l]));

  PagedAttentionArgs attention;
  attention.q = q_heads;
  attention.k_cache = k_cache_[l];
  attention.v_cache = v_cache_[l];
  attention.query_start = s.query_start;
  attention.context_lens = s.context_lens;
  attention.block_tables = s.block_tables;
  attention.out = s.attn.reshape({t, hq, d});
  attention.max_query_len = in.max_query_len;
  attention.max_context_len = in.max_context_len;
  attention.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  attention.sliding_window = config_.sliding_window.value_or(0);
  RETURN_IF_ERROR(run_attention(layer, s, attention));
  RETURN_IF_ERROR(b.matmul(s.attn, w.o_proj, w.o_bias, s.proj));

  RETURN_IF_ERROR(b.add_rms_norm(s.hidden, s.proj, w.post_norm, eps, s.normed));
  RETURN_IF_ERROR(b.matmul(s.normed, w.gate_proj, w.gate_bias, s.gate));
  RETURN_IF_ERROR(b.matmul(s.normed, w.up_proj, w.up_bias, s.up));
  RETURN_IF_ERROR(b.silu_mul(s.gate, s.up, s.gate));
  RETURN_IF_ERROR(b.matmul(s.gate, w.down_proj, w.down_bias, s.proj));
  return Status::Ok();
}

// Paged attention on a dense layer; on a DSA layer the indexer, then sparse (or dense) attention.
Status LlamaTransformer::run_attention(int layer, StepViews& s, const PagedAttentionArgs& attention) {
  const LayerWeights& w = weights_.layers[static_cast<size_t>(layer)];
  if (!w.indexer) return backend_.paged_attention(attention);
  DsaAttentionStep step;
  step.attention = attention;
  step.x = s.normed;
  step.index_cache = index_cache_[static_cast<size_t>(layer)];
  step.positions = s.positions;
  step.slots = s.slots;
  step.inv_freq = dsa_inv_freq_;
  step.attention_scaling = dsa_attention_scaling_;
  step.blocks = s.dsa_blocks;
  return run_dsa_attention(backend_, *config_.dsa, *w.indexer, options_.dsa_prefill, step, dsa_scratch_);
}

Status LlamaTransformer::read_index_cache(int layer, std::vector<uint8_t>* bytes) {
  if (layer < 0 || layer >= config_.num_hidden_layers || index_cache_[static_cast<size_t>(layer)].data == nullptr) {
    return not_found("runtime: layer " + std::to_string(layer) + " is not a DSA layer");
  }
  const Tensor& cache = index_cache_[static_cast<size_t>(layer)];
  bytes->resize(cache.num_bytes());
  return backend_.download(cache, bytes->data());
}

Status LlamaTransformer::read_dsa_selection(std::vector<int32_t>* selection) {
  if (num_dsa_layers_ == 0) return not_found("runtime: the model has no DSA layer");
  if (selection_rows_ == 0) return not_found("runtime: the last step attended densely (the dense prefill option): no selection");
  const Tensor rows = dsa_scratch_.indices.rows(0, selection_rows_);
  selection->resize(static_cast<size_t>(rows.numel()));
  return backend_.download(rows, selection->data());
}

Status LlamaTransformer::run_model(StepViews& s, const StepInputs& in) {
  RETURN_IF_ERROR(backend_.embed(weights_.embed_tokens, s.token_ids, s.hidden));
  for (int layer = 0; layer < config_.num_hidden_layers; ++layer) {
    Status status = run_layer(layer, s, in);
    if (!status.ok()) return status.with_context("layer " + std::to_string(layer));
  }
  if (in.logit_rows.empty()) return Status::Ok();
  const auto eps = static_cast<float>(config_.rms_norm_eps);
  RETURN_IF_ERROR(backend_.add_rms_norm(s.hidden, s.proj, weights_.final_norm, eps, s.normed));
  RETURN_IF_ERROR(backend_.gather_rows(s.normed, s.logit_rows, s.last_normed));
  return backend_.matmul(s.last_normed, weights_.lm_head, Tensor{}, s.logits);
}

Status LlamaTransformer::forward(std::span<const SequenceStep> steps, std::vector<float>* logits) {
  logits->clear();
  if (steps.empty()) return Status::Ok();
  ASSIGN_OR_RETURN(StepInputs in, build_step_inputs(steps, limits_));
  const bool dense = options_.dsa_prefill == DsaPrefillMode::kDense && in.max_query_len > 1;
  selection_rows_ = dense ? 0 : in.num_tokens();
  const int bucket = graphs_ != nullptr && is_decode_step(steps) ? graphs_->bucket_for(in.num_seqs()) : 0;
  if (bucket > 0) return forward_padded_decode(in, bucket, logits);

  ASSIGN_OR_RETURN(StepViews s, prepare_step(in));
  RETURN_IF_ERROR(run_model(s, in));
  if (in.logit_rows.empty()) return backend_.synchronize();
  logits->resize(static_cast<size_t>(s.logits.numel()));
  return backend_.download(s.logits, logits->data());
}

// A decode step padded to `bucket` rows with the fixed shape decode_shape_, so that its launches are
// those of the bucket's graph; only the real rows' logits are returned.
Status LlamaTransformer::forward_padded_decode(const StepInputs& in, int bucket, std::vector<float>* logits) {
  ASSIGN_OR_RETURN(StepInputs padded, pad_decode_step(in, bucket, decode_shape_));
  ASSIGN_OR_RETURN(StepViews s, prepare_step(padded));
  RETURN_IF_ERROR(graphs_->run(bucket, [this, &s, &padded] { return run_model(s, padded); }));
  const Tensor real = s.logits.rows(0, in.num_seqs());
  logits->resize(static_cast<size_t>(real.numel()));
  return backend_.download(real, logits->data());
}

}  // namespace

StatusOr<std::unique_ptr<Transformer>> Transformer::load(const ModelConfig& config, const WeightSource& weights,
                                                         Backend& backend, const RuntimeOptions& options) {
  auto transformer = std::make_unique<LlamaTransformer>(config, backend, options);
  RETURN_IF_ERROR(transformer->init(weights));
  return std::unique_ptr<Transformer>(std::move(transformer));
}

}  // namespace longbow
