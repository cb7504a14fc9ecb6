// StepInputs: the host-side index arrays of one forward() step, built from its SequenceSteps.
//
// Pure host code (no Backend) so that the slot and page-table arithmetic is unit-tested on its own.
// The runtime uploads these arrays into its preallocated index tensors every step.
#pragma once

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
  int num_pages = 0;        // page ids must lie in [0, num_pages)
  int max_context_len = 0;  // num_cached + new tokens per sequence (max_position_embeddings)
  // The model's sliding window (0: none). Entries behind it are kNullPage
  // (model/kv_cache/window_pages.h), an ordinary page id: nothing is checked differently.
  int sliding_window = 0;
};

struct StepInputs {
  // T = total new tokens, S = sequences, W = pages_per_seq.
  std::vector<int32_t> token_ids;     // [T]
  std::vector<int32_t> positions;     // [T] num_cached + i
  std::vector<int32_t> slots;         // [T] block_table[pos / kPageSize] * kPageSize + pos % kPageSize
  std::vector<int32_t> query_start;   // [S + 1]
  std::vector<int32_t> context_lens;  // [S] num_cached + tokens.size()
  std::vector<int32_t> block_tables;  // [S, W], each row the sequence's first W table entries, -1 padded
  std::vector<int32_t> logit_rows;    // token rows whose logits are wanted, in step order
  int pages_per_seq = 0;              // W: the most pages any sequence needs
  int max_query_len = 0;
  int max_context_len = 0;

  int num_tokens() const { return static_cast<int>(token_ids.size()); }
  int num_seqs() const { return static_cast<int>(context_lens.size()); }
};

// INVALID_ARGUMENT naming the step and field for: a step without tokens, negative num_cached, a
// token id outside the vocabulary, a block table too short for its context or holding a page outside
// the pool, a step without exactly one block table (the model's one cache group), two new tokens mapped to the same slot, or more tokens / sequences than the limits.
// OUT_OF_RANGE when a sequence's context exceeds max_context_len.
StatusOr<StepInputs> build_step_inputs(std::span<const SequenceStep> steps, const StepLimits& limits);

}  // namespace longbow
