// Transformer: the decoder of every architecture (model/arch/) written only against Backend: one
// loop over the ModelPlan's layers (model/layers/), never a branch on model_type.
//
// One forward() runs a step: a batch that mixes prefill chunks and decode tokens of several
// sequences over the paged KV cache this object owns. Each layer declares its cache (a CacheSpec);
// layers with the same spec form a cache group (cache_groups()) with its own pool of pages and its
// own block table per sequence. Page 0 of every group's pool is the null page: a window group's
// entries behind the window point at it, and attention masks it (kNullPage, window_pages.h). Which
// pages a sequence uses is the caller's business (the engine's KV manager); the runtime only reads
// the block tables it is given.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/cache_spec.h"
#include "model/layers/dsa_indexer.h"
#include "model/runtime/weight_source.h"
#include "model/weights/safetensors.h"

namespace longbow {

struct RuntimeOptions {
  // Pages in each cache group's pool (a page holds kPageSize tokens of every layer of its group; the
  // null page included). 0: planned per group from memory after the weights and the workspace
  // (memory_plan.h); > 0 wins over the plan, for every group.
  int num_kv_pages = 0;
  int max_batched_tokens = 2048;  // upper bound on tokens in one forward(); sizes the workspace
  int max_num_seqs = 256;         // upper bound on sequences in one forward()
  // Decode steps (every sequence one new token, logits wanted) run as graphs padded to a bucket size
  // (model/runtime/decode_graphs.h) where the backend supports graphs (CUDA); elsewhere, eagerly.
  bool enable_cuda_graphs = true;
  int cuda_graph_max_bs = 256;  // the largest bucket (also capped by max_num_seqs and max_batched_tokens)
  // Testing: pad decode steps to their bucket like graphs do, but run them eagerly (any backend).
  bool pad_decode_steps = false;
  // Tokens one sequence may reach, prompt and output; 0: the config's max_position_embeddings. A
  // planned pool must hold one such sequence (else RESOURCE_EXHAUSTED, as vLLM).
  int max_model_len = 0;
  // Share of the backend's total memory this process may hold, in (0, 1] (vLLM's
  // --gpu-memory-utilization); memory in use before loading counts against it.
  double gpu_memory_utilization = 0.9;
  // On the cpu backend a planned pool also takes at most this many bytes (vLLM's
  // VLLM_CPU_KVCACHE_SPACE) and no more pages than max_num_seqs sequences of max_model_len need.
  size_t cpu_kv_cache_bytes = size_t{4} << 30;
  // DSA layers' multi-token (prefill) steps: exact DSA (sparse) or dense flash attention. Decode
  // steps are always sparse; index keys are written in both modes.
  DsaPrefillMode dsa_prefill = DsaPrefillMode::kSparse;
  // Bound on a DSA step's index-logits scratch ([rows, context] fp32): rows beyond it are scored in
  // blocks. 128 MiB scores a 2048-token prefill chunk at a 131072-token context in 8 blocks.
  size_t dsa_logits_budget_bytes = size_t{128} << 20;
};

// One sequence's part of a step.
struct SequenceStep {
  std::span<const int32_t> tokens;  // the new tokens: a prefill chunk, or one decode token
  int32_t num_cached = 0;           // tokens of this sequence already in the KV cache
  // One per paged cache group (state groups have none), in cache_groups() order, each covering num_cached + tokens.size()
  // tokens with page ids of that group's pool (entries behind a window group's window: kNullPage).
  std::vector<std::span<const int32_t>> block_tables;
  // The sequence's slot in the model's state group (-1: the model has none). The slot is fresh, and
  // must be zeroed before use, exactly when num_cached == 0: state groups take no prefix hit, and a
  // preempted sequence restarts from token 0 with a new slot (model/kv_cache/state_slots.h).
  int32_t state_slot = -1;
  bool want_logits = true;   // return logits for the last new token
  // Return logits for every new token (prompt logprobs), in token order, whatever want_logits says.
  // The rows of a step together stay within max_num_seqs (the workspace's logits rows).
  bool want_all_logits = false;
};

class Transformer {
 public:
  // Loads the weights from `weights` (a checkpoint, checked against the config: every tensor's name,
  // shape and dtype; or dummy weights), then allocates the workspace for the largest step and the KV
  // pool, in that order, planning the pool from memory unless options.num_kv_pages is set; logs the
  // plan. RESOURCE_EXHAUSTED naming the numbers when the weights or a pool cannot fit. `backend` must
  // outlive this.
  static StatusOr<std::unique_ptr<Transformer>> load(const ModelConfig& config, const WeightSource& weights,
                                                     Backend& backend, const RuntimeOptions& options);
  virtual ~Transformer() = default;

  // Runs one step. Appends every new token's K/V to the cache, then writes logits (F32, row-major
  // [rows][vocab_size], in step order) to *logits: one row per step with want_logits, or one per new
  // token of a step with want_all_logits.
  virtual Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) = 0;

  // Sampling on the device: whether forward_sample() takes `row` (the backend's supports_sampling).
  virtual bool supports_sampling(const SamplingRow& row) const {
    (void)row;
    return false;
  }
  // Runs one step as forward() does, but samples each logits row where the logits are (the
  // backend's `sample` op, after a decode graph's replay) instead of returning it: rows[i] is the
  // i-th step with want_logits, samples gets one RowSample per such step. Only token ids and the
  // asked logprobs reach the host. INVALID_ARGUMENT when rows does not match the steps;
  // UNIMPLEMENTED where supports_sampling() is false.
  virtual Status forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                                std::vector<RowSample>* samples) {
    (void)steps, (void)rows, (void)samples;
    return unimplemented("this runtime does not sample on its backend");
  }

  virtual const ModelConfig& config() const = 0;
  // group_cache_specs() of the layers' cache specs: which layers share a block table.
  virtual const std::vector<CacheGroup>& cache_groups() const = 0;
  // Pages in the pool of paged group `group` (the null page included); a state group's slots (one
  // per sequence that may run at once); 0 for an index outside cache_groups().
  virtual int num_pages(int group) const = 0;
  // The pool of group 0 (the only group of a model whose layers all cache alike).
  int num_kv_pages() const { return num_pages(0); }
  // Decode batch sizes captured as graphs so far (0 when decode steps run eagerly).
  virtual int num_decode_graphs() const { return 0; }

  // The raw bytes of a DSA layer's index-cache pool ([pages][kPageSize·(index_head_dim + 4)]), for
  // tests and debugging. NOT_FOUND for a dense layer.
  virtual Status read_index_cache(int layer, std::vector<uint8_t>* bytes) {
    (void)bytes;
    return not_found("layer " + std::to_string(layer) + " has no DSA index cache");
  }

  // The top-k selection of every token row of the last forward() in the model's last DSA layer:
  // [rows][index_topk] row-major, logical token positions, -1 padded; for tests and debugging.
  // NOT_FOUND for a model without DSA layers and when that step attended densely (the dense
  // prefill option, or every context within index_topk).
  virtual Status read_dsa_selection(std::vector<int32_t>* selection) {
    (void)selection;
    return not_found("the model has no DSA layer");
  }
};

// The tensors a checkpoint of `config` must hold, with their shapes (HF names): plan_tensors of its
// architecture's plan; empty when no architecture serves config.model_type. When config.dsa is set
// every layer is a DSA layer (with indexer tensors).
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);
// The same with indexer tensors on exactly the layers l where dsa_layers[l] (a checkpoint's own
// layout, from find_dsa_layers in model_weights.h).
std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const std::vector<bool>& dsa_layers);

}  // namespace longbow
