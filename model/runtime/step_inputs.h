// StepInputs: the host-side index arrays of one forward() step, built from its SequenceSteps.
//
// Pure host code (no Backend) so that the slot and page-table arithmetic is unit-tested on its own.
// The runtime uploads these arrays into its preallocated index tensors every step.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "model/runtime/transformer.h"

namespace longbow {

// What a step may hold; exceeding any limit is an error, never a reallocation.
struct StepLimits {
  int max_tokens = 0;       // RuntimeOptions::max_batched_tokens
  int max_seqs = 0;         // RuntimeOptions::max_num_seqs
  int vocab_size = 0;       // token ids must lie in [0, vocab_size)
  // One entry per cache group (Transformer::cache_groups()): the group's pool size; its page ids
  // must lie in [0, num_pages[g]). Entries behind a window group's window are the null page 0.
  std::vector<int> num_pages;
  int max_context_len = 0;  // num_cached + new tokens per sequence (max_position_embeddings)
  // A model with a state group (lightning layers): every sequence holds a distinct slot in
  // [0, num_state_slots); without one, state slots are ignored.
  bool has_state = false;
  int num_state_slots = 0;
};

struct StepInputs {
  // T = total new tokens, S = sequences, W = pages_per_seq, G = cache groups.
  std::vector<int32_t> token_ids;     // [T]
  std::vector<int32_t> positions;     // [T] num_cached + i
  // [G][T] per group: block_table[pos / kPageSize] * kPageSize + pos % kPageSize
  std::vector<std::vector<int32_t>> slots;
  std::vector<int32_t> query_start;   // [S + 1]
  std::vector<int32_t> context_lens;  // [S] num_cached + tokens.size()
  // [G][S, W] per group, each row the sequence's first W table entries, -1 padded
  std::vector<std::vector<int32_t>> block_tables;
  std::vector<int32_t> logit_rows;    // token rows whose logits are wanted, in step order
  std::vector<int32_t> state_slots;   // [S] each sequence's state slot, -1 without a state group
  int pages_per_seq = 0;              // W: the most pages any sequence needs
  int max_query_len = 0;
  int max_context_len = 0;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(context_lens.size()); }
  int num_groups() const { return static_cast<int>(block_tables.size()); }
};

// INVALID_ARGUMENT naming the step and field for: a step without tokens, negative num_cached, a
// state slot outside [0, num_state_slots) or held by two steps (models with a state group), a
// token id outside the vocabulary, a step without one block table per group, a block table too
// short for its context or holding a page outside its group's pool, two new tokens mapped to the
// same slot of a group, or more tokens / sequences / logits rows than the limits (logits rows share
// max_seqs: one per sequence, or one per token with want_all_logits).
// OUT_OF_RANGE when a sequence's context exceeds max_context_len.
StatusOr<StepInputs> build_step_inputs(std::span<const SequenceStep> steps, const StepLimits& limits);

}  // namespace longbow
