// plan_dsa_row_blocks: blocks cover every row once, in order, with at most max_rows rows; a
// sequence cut by a block boundary keeps its rows' positions (context = last row's position + 1).
#include "model/layers/dsa_row_blocks.h"

#include <gtest/gtest.h>

#include <random>

namespace longbow {
namespace {

// Position of every row from (query_start, context_lens): the rows are the last q_len positions.
std::vector<int> row_positions(const std::vector<int32_t>& query_start, const std::vector<int32_t>& context_lens) {
  std::vector<int> positions;
  for (size_t s = 0; s < context_lens.size(); ++s) {
    const int q_len = query_start[s + 1] - query_start[s];
    for (int i = 0; i < q_len; ++i) positions.push_back(context_lens[s] - q_len + i);
  }
  return positions;
}

TEST(DsaRowBlocks, SplitsSequencesAndKeepsPositions) {
  // Sequences of 150 prefill rows (context 150), 1 decode row (context 100), 40 rows (context 300).
  const std::vector<int32_t> query_start = {0, 150, 151, 191}, context_lens = {150, 100, 300};
  const std::vector<int> want = row_positions(query_start, context_lens);
  for (int max_rows : {1, 7, 37, 64, 150, 151, 191, 500}) {
    std::vector<DsaRowBlock> blocks = plan_dsa_row_blocks(query_start, context_lens, max_rows);
    ASSERT_EQ(blocks.size(), static_cast<size_t>((191 + max_rows - 1) / max_rows)) << max_rows;
    int next_row = 0;
    for (const DsaRowBlock& b : blocks) {
      ASSERT_EQ(b.row_begin, next_row);
      ASSERT_LE(b.row_end - b.row_begin, max_rows);
      ASSERT_EQ(b.query_start.size(), b.context_lens.size() + 1);
      ASSERT_EQ(static_cast<int>(b.context_lens.size()), b.seq_end - b.seq_begin);
      ASSERT_EQ(b.query_start.front(), 0);
      ASSERT_EQ(b.query_start.back(), b.row_end - b.row_begin);
      std::vector<int> got = row_positions(b.query_start, b.context_lens);
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i], want[static_cast<size_t>(b.row_begin) + i]) << "max_rows " << max_rows << " row "
                                                                        << b.row_begin + static_cast<int>(i);
      }
      int longest = 0;
      for (int32_t c : b.context_lens) longest = std::max(longest, static_cast<int>(c));
      EXPECT_EQ(b.max_context_len, longest);
      // The sequence owning the block's first row is the block's first sequence.
      EXPECT_LT(b.row_begin, query_start[static_cast<size_t>(b.seq_begin) + 1]);
      EXPECT_GE(b.row_begin, query_start[static_cast<size_t>(b.seq_begin)]);
      next_row = b.row_end;
    }
    EXPECT_EQ(next_row, 191);
  }
}

TEST(DsaRowBlocks, RowsPerBlockFromCapacity) {
  EXPECT_EQ(dsa_logits_width(1), 4);
  EXPECT_EQ(dsa_logits_width(131072), 131072);
  EXPECT_EQ(dsa_logits_width(131073), 131076);
  EXPECT_EQ(dsa_rows_per_block(int64_t{32} << 20, 131072), 256);  // 128 MiB of fp32 logits
  EXPECT_EQ(dsa_rows_per_block(100, 1000), 1);                      // never below one row
  EXPECT_EQ(dsa_rows_per_block(1000, 9), 83);                       // width 12
}

}  // namespace
}  // namespace longbow
