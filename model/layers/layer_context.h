// What every layer kind (model/layers/) shares: the step's index tensors, the scratch the layers
// compute in, the loaded checkpoint tensors by name, and the linear/norm pieces built from the plan.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/arch/model_plan.h"
#include "model/backend/backend.h"
#include "model/layers/dsa_indexer.h"

namespace longbow {

// The checkpoint tensors on the backend, by HF name (model_weights.h loads them).
using TensorMap = std::map<std::string, Tensor>;

// One step's index tensors on the backend. T tokens, S sequences, W block-table columns.
struct StepTensors {
  int64_t num_tokens = 0;
  Tensor positions;     // [T] I32
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32
  // Per cache group (Transformer::cache_groups() order): the new tokens' KV slots [T] and the block
  // tables [S, W] of that group's pool.
  std::vector<Tensor> slots;
  std::vector<Tensor> block_tables;
  // Each sequence's slot in the model's state group [S] I32 (-1: none; a padding row): the lightning
  // layers' state index (SequenceStep::state_slot). Unused by a model without state layers.
  Tensor state_slots;
  int max_query_len = 0;
  int max_context_len = 0;
  std::span<const DsaRowBlockTensors> dsa_blocks;  // empty: one block
};

// Scratch shared by the layers, each a flat buffer holding T rows of the widest layer; view(t, n)
// is its leading [t, n].
struct LayerScratch {
  Tensor q, attn;   // T · max(Hq·D, lightning 3·H·D)
  Tensor k, v;      // T · max(Hkv·D)
  Tensor gate, up;  // T · max(intermediate, lightning H·D)
  // MoE layers: router logits T · E (F32), the chosen experts and their weights T · k (I32, F32).
  Tensor router_logits, route_ids, route_weights;
  DsaScratch dsa;   // DSA layers only
  static Tensor view(const Tensor& flat, int64_t rows, int64_t cols) {
    return flat.rows(0, rows * cols).reshape({rows, cols});
  }
};

// x · Wᵀ (+ b) with the plan's tensors (a fused tensor's rows as a view).
struct Linear {
  Tensor weight, bias;  // bias empty: none
  Status forward(Backend& backend, const Tensor& x, Tensor& out) const { return backend.matmul(x, weight, bias, out); }
};

// NOT_FOUND naming the tensor when the map lacks one the plan names.
StatusOr<Tensor> take_tensor(const TensorMap& tensors, const std::string& name);
StatusOr<Linear> make_linear(const TensorMap& tensors, const LinearPlan& plan);

}  // namespace longbow
