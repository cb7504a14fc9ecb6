// DsaRowBlock: a DSA step's query rows cut into blocks, so that the index logits of one block
// ([rows, padded context] fp32) fit a scratch buffer allocated once with the workspace.
//
// Pure host code (no Backend), unit-tested on its own. A block holds consecutive rows; the
// sequences owning them are consecutive too. Because a sequence's rows are the last q_len positions
// of its context, a block that ends a sequence's rows early gives that sequence the context
// "position of its last row in the block + 1": the same rows, the same causal keys.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace longbow {

struct DsaRowBlock {
  int row_begin = 0, row_end = 0;  // step rows [row_begin, row_end)
  int seq_begin = 0, seq_end = 0;  // step sequences [seq_begin, seq_end) owning them
  std::vector<int32_t> query_start;   // [n + 1] block-relative, n = seq_end - seq_begin
  std::vector<int32_t> context_lens;  // [n] context up to each sequence's last row in the block
  int max_context_len = 0;            // max of context_lens
};

// Index logits rows are padded to a multiple of 4 floats (16-byte rows for the GPU top-k's loads).
constexpr int64_t dsa_logits_width(int64_t max_context_len) { return (max_context_len + 3) / 4 * 4; }

// Rows per block when `logits_capacity` floats hold the logits of rows of width
// dsa_logits_width(max_context_len); at least 1 (the caller sizes the capacity for one row of the
// longest context).
int dsa_rows_per_block(int64_t logits_capacity, int max_context_len);

// Cuts the step (query_start [S + 1], context_lens [S]) into blocks of at most max_rows rows, in
// row order. Sequences without rows are skipped. max_rows >= 1.
std::vector<DsaRowBlock> plan_dsa_row_blocks(std::span<const int32_t> query_start,
                                             std::span<const int32_t> context_lens, int max_rows);

}  // namespace longbow
