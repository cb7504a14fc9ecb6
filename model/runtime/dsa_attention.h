// The attention of one DSA layer (DESIGN §4) over Backend: the indexer's projections, the index keys
// of every new token written to the layer's paged index cache (prefill included, before any score),
// then either sparse attention (each query row attends to its own exact top-k: exact DSA
// semantics) or dense paged attention (the `dense` prefill option).
//
// Not yet called by Transformer (model/runtime/transformer.cc): it owns no state, so a DSA layer can
// use it in place of paged_attention once the layer's indexer weights and index-cache pool (one
// pool per DSA layer, [num_pages, kPageSize·(index_head_dim + 4)] kFP8E4M3, sharing the K/V page
// ids, hence kept with its pages by the prefix cache) are loaded and allocated there.
#pragma once

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

enum class DsaPrefillMode {
  kSparse,  // every row attends to its own top-k (exact DSA)
  kDense,   // a step with any multi-token sequence attends densely (the index keys are still written)
};

struct DsaAttentionStep {
  Tensor x;             // [T, hidden] the layer's normed input (what q/k/v read)
  Tensor q;             // [T, Hq, D] attention queries after RoPE
  Tensor k_cache;       // [P, kPageSize, Hkv, D], this step's K/V already appended
  Tensor v_cache;
  Tensor index_cache;   // [P, kPageSize · (index_head_dim + 4)] kFP8E4M3
  Tensor positions;     // [T] I32
  Tensor slots;         // [T] I32 physical slots of the new tokens
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32 (after this step)
  Tensor block_tables;  // [S, max_pages] I32
  Tensor inv_freq;      // [index_rope_dim / 2] F32, the model's RoPE table restricted to the index dims
  float attention_scaling = 1.0f;
  int max_query_len = 0;
  int max_context_len = 0;
  float scale = 0.0f;   // attention softmax scale
  Tensor out;           // [T, Hq, D]
};

// Tensors the layer computes on the way; allocated on first use and grown as needed. `indices` holds
// the last step's selection ([T, index_topk] logical tokens, -1 padded) for inspection.
struct DsaScratch {
  Tensor k_raw, q_index, weights, logits, indices;
};

Status run_dsa_attention(Backend& backend, const DsaIndexerConfig& config, const DsaIndexerWeights& weights,
                         DsaPrefillMode mode, const DsaAttentionStep& step, DsaScratch& scratch);

}  // namespace longbow
