// The DSA indexer (DESIGN §3-4), a component of its own: the indexer's projections, the index keys of
// every new token written to the layer's paged index cache (prefill included, before any score), then
// each query row's exact top-k written as the selection (DsaScratch::indices) that the layer's
// attention consumes (select_dsa_tokens; GqaAttention runs sparse attention over it, or dense paged
// attention with the `dense` prefill option).
//
// Each DSA layer owns an index-cache pool [num_pages, kPageSize·(index_head_dim + 4)] kFP8E4M3 sharing
// the K/V page ids (so the prefix cache keeps index keys with their pages); its bytes count in the
// layer's PagedSpec. Nothing here allocates: the scratch comes from allocate_dsa_scratch() at load,
// and the step's rows are scored in blocks (dsa_row_blocks.h) whose index logits fit that scratch.
#pragma once

#include <map>
#include <span>
#include <string>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"

namespace longbow {

// A layer's model.layers.N.self_attn.indexer.* tensors, in the backend's compute dtype.
struct DsaIndexerWeights {
  Tensor wq;            // [n_heads · head_dim, hidden]
  Tensor wk;            // [head_dim, hidden]
  Tensor weights_proj;  // [n_heads, hidden]
  Tensor k_norm_weight;  // [head_dim]
  Tensor k_norm_bias;    // [head_dim]
};

// The indexer tensors "<prefix>{wq_name}.weight", wk, weights_proj, k_norm weight and bias (wq_name:
// "wq" over x on a GQA layer, "wq_b" over the q latent on V3.2's MLA); NOT_FOUND naming a missing one.
StatusOr<DsaIndexerWeights> take_dsa_indexer(const std::map<std::string, Tensor>& tensors, const std::string& prefix,
                                             const std::string& wq_name);

enum class DsaPrefillMode {
  kSparse,  // every row attends to its own top-k (exact DSA)
  kDense,   // a step with any multi-token sequence attends densely (the index keys are still written)
};

// "sparse" or "dense" (the --dsa-prefill flag); INVALID_ARGUMENT naming the value otherwise.
StatusOr<DsaPrefillMode> parse_dsa_prefill_mode(const std::string& name);
const char* dsa_prefill_mode_name(DsaPrefillMode mode);

// One block of the step's rows (plan in dsa_row_blocks.h) with its index arrays on the backend.
struct DsaRowBlockTensors {
  int row_begin = 0, row_end = 0;  // step rows
  int seq_begin = 0, seq_end = 0;  // step sequences owning them (rows of block_tables)
  Tensor query_start;              // [n + 1] I32, block-relative
  Tensor context_lens;             // [n] I32, up to each sequence's last row in the block
  int max_context_len = 0;
};

struct DsaAttentionStep {
  // The layer's attention as a dense layer would run it: q [T, Hq, D] after RoPE, the K/V pools
  // [P, kPageSize, Hkv, D] with this step's K/V appended, query_start [S + 1], context_lens [S]
  // (after this step), block_tables [S, max_pages], max_query_len, max_context_len, scale, out
  // [T, Hq, D]. Dense prefill runs exactly this; sparse attention reads the same tensors.
  PagedAttentionArgs attention;
  Tensor x;            // [T, hidden] the layer's normed input (what q/k/v read)
  // What the indexer's wq reads: empty, x; on MLA (V3.2's wq_b) the q LoRA latent [T, q_lora_rank].
  Tensor q_input;
  Tensor index_cache;  // [P, kPageSize · (index_head_dim + 4)] kFP8E4M3
  Tensor positions;    // [T] I32
  Tensor slots;        // [T] I32 physical slots of the new tokens
  Tensor inv_freq;     // [index_rope_dim / 2] F32, a RoPE table built for index_rope_dim dims
  float attention_scaling = 1.0f;
  // The rows in the order they are scored; each block's logits must fit scratch.logits. Empty: one
  // block of every row with the step's own query_start, context_lens and max_context_len.
  std::span<const DsaRowBlockTensors> blocks;
};

// Tensors the layer computes on the way, allocated once for steps of up to max_tokens rows.
struct DsaScratch {
  Tensor k_raw;    // [T, Di] wk projection
  Tensor q_index;  // [T, Hi·Di] wq projection
  Tensor weights;  // [T, Hi] weights_proj output
  Tensor logits;   // [capacity] F32; a block views its leading [rows, dsa_logits_width(context)]
  Tensor indices;  // [T, index_topk] I32: the last step's selection per row (logical tokens, -1 padded)
  size_t num_bytes = 0;
};

// Scratch for steps of up to max_tokens rows and contexts up to max_context_len. The logits buffer
// holds min(max_tokens rows, logits_budget_bytes) of rows of the longest context, but at least one
// such row, so its size is bounded by the budget whatever the prefill chunk.
StatusOr<DsaScratch> allocate_dsa_scratch(Backend& backend, const DsaIndexerConfig& config, int max_tokens,
                                          int max_context_len, size_t logits_budget_bytes);

// The index keys of the step's tokens, then, when `select`, every row's top-k into scratch.indices
// (rows in step order, logical token indices, -1 padded). Reads step.attention's index arrays.
Status select_dsa_tokens(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         const DsaAttentionStep& step, bool select, DsaScratch& scratch);

// The step's row blocks: step.blocks, or one block of every row described in `whole` (filled here).
std::span<const DsaRowBlockTensors> dsa_row_blocks(const DsaAttentionStep& step, DsaRowBlockTensors& whole);

// Sparse attention of every row over its selection in scratch.indices, block by block.
Status attend_dsa_selection(Backend& backend, const DsaAttentionStep& step, const DsaScratch& scratch);

// Whether a DSA layer attends densely in a step with these bounds (run_dsa_attention's choice, for
// code that must know it without running the layer): a multi-token step in kDense mode, or a step
// whose every context fits in index_topk.
bool dsa_attends_densely(int topk, DsaPrefillMode mode, int max_query_len, int max_context_len);

// A DSA layer's whole attention: select_dsa_tokens, then attend_dsa_selection, or dense paged
// attention for a multi-token step in kDense mode (the index keys are written either way). A step
// whose every context fits in index_topk (attention.max_context_len <= topk) selects every causal
// token of every row, which is dense attention: it skips the query projections, scores and top-k
// and runs paged attention, the same result without approximation. (A decode graph captured at a
// longer bound keeps the sparse path; both are exact there.)
Status run_dsa_attention(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         DsaPrefillMode mode, const DsaAttentionStep& step, DsaScratch& scratch);



}  // namespace longbow
