// plan_dsa_row_blocks (contract in dsa_row_blocks.h).
#include "model/layers/dsa_row_blocks.h"

#include <algorithm>

namespace longbow {

int dsa_rows_per_block(int64_t logits_capacity, int max_context_len) {
  const int64_t rows = logits_capacity / std::max<int64_t>(4, dsa_logits_width(max_context_len));
  return static_cast<int>(std::clamp<int64_t>(rows, 1, int64_t{1} << 30));
}

std::vector<DsaRowBlock> plan_dsa_row_blocks(std::span<const int32_t> query_start,
                                             std::span<const int32_t> context_lens, int max_rows) {
  std::vector<DsaRowBlock> blocks;
  const int seqs = static_cast<int>(context_lens.size());
  DsaRowBlock block;
  auto close = [&](int row_end) {
    block.row_end = row_end;
    blocks.push_back(std::move(block));
    block = DsaRowBlock{};
  };
  bool open = false;
  for (int s = 0; s < seqs; ++s) {
    const int begin = query_start[static_cast<size_t>(s)], end = query_start[static_cast<size_t>(s) + 1];
    const int context = context_lens[static_cast<size_t>(s)];
    if (begin == end && open) {  // no rows here: keep the block's sequences consecutive
      block.seq_end = s + 1;
      block.query_start.push_back(block.query_start.back());
      block.context_lens.push_back(context);
      continue;
    }
    int row = begin;
    while (row < end) {
      if (!open) {
        block.row_begin = row;
        block.seq_begin = s;
        block.query_start.push_back(0);
        open = true;
      }
      const int room = max_rows - (row - block.row_begin);
      const int take = std::min(room, end - row);
      row += take;
      const int ctx = context - (end - row);  // position of the last taken row + 1
      block.seq_end = s + 1;
      block.query_start.push_back(row - block.row_begin);
      block.context_lens.push_back(ctx);
      block.max_context_len = std::max(block.max_context_len, ctx);
      if (row - block.row_begin == max_rows) {
        close(row);
        open = false;
      }
    }
  }
  if (open) close(block.row_begin + block.query_start.back());
  return blocks;
}

}  // namespace longbow
