// The runtime's workspace: activation, scratch and index buffers sized once at load for the largest
// step (T = max_batched_tokens tokens, S = max_num_seqs sequences), and the views of one step.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/layers/decoder_layer.h"
#include "model/runtime/step_inputs.h"

namespace longbow {

struct WorkspaceShape {
  int64_t tokens = 0, seqs = 0;           // T, S
  int64_t hidden = 0, vocab = 0;
  int64_t q_dim = 0, kv_dim = 0, intermediate = 0;  // the widest layer's (DecoderLayer::scratch_widths)
  int64_t experts = 0, top_k = 0;                   // MoE routing: the most experts and choices
  int64_t table_width = 0;                // W: block-table columns (pages of max_model_len)
  int groups = 1;                         // paged cache groups: one slot array and one block table each
};

struct Workspace {
  Tensor hidden, delta, normed;  // [T, H] the residual stream (ResidualStream)
  LayerScratch scratch;
  // [2T + T·G + 4S + 1 + S·W·G] I32 in one buffer so one copy uploads a step's indices (each array
  // keeps a fixed address for graphs): token ids, positions, slots per group, query starts, context
  // lengths, logit rows, state slots, block tables per group.
  Tensor indices;
  Tensor token_ids, positions, query_start, context_lens, logit_rows, state_slots;
  std::vector<Tensor> slots, block_tables;  // per group: [T], [S·W]
  Tensor last_normed;      // [S, H] final-normed rows that want logits
  Tensor logits;           // [S, V] F32
  Tensor dsa_block_index;  // I32: the DSA row blocks' query_start and context_lens
  size_t num_bytes = 0;
};

StatusOr<Workspace> allocate_workspace(Backend& backend, const WorkspaceShape& shape);

// One step's views of the workspace, with its indices uploaded.
struct StepViews {
  ResidualStream stream;
  StepTensors step;
  Tensor token_ids, logit_rows, last_normed, logits;
  std::vector<DsaRowBlockTensors> dsa_blocks;  // empty: the whole step is one block
};

// The leading rows of every buffer for `in`, its index arrays uploaded in one copy through `staging`
// (a host image of ws.indices reused every step).
StatusOr<StepViews> upload_step(Backend& backend, Workspace& ws, const StepInputs& in,
                                std::vector<int32_t>& staging);

}  // namespace longbow
