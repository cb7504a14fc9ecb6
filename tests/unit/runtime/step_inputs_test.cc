#include "model/runtime/step_inputs.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/backend/backend.h"
#include "model/kv_cache/window_pages.h"

namespace longbow {
namespace {

StepLimits limits() {
  StepLimits l;
  l.max_tokens = 256;
  l.max_seqs = 4;
  l.vocab_size = 100;
  l.num_pages = {10};
  l.max_context_len = 512;
  return l;
}

TEST(StepInputs, MixedPrefillAndDecode) {
  std::vector<int32_t> chunk = {5, 6, 7};                 // prefill chunk at positions 62..64
  std::vector<int32_t> chunk_table = {7, 2};
  std::vector<int32_t> decode = {9};                      // decode token at position 128
  std::vector<int32_t> decode_table = {0, 1, 4, 8};       // one spare page
  std::vector<SequenceStep> steps = {
      {chunk, 62, {chunk_table}, -1, false},
      {decode, 128, {decode_table}, -1, true},
  };
  auto in = build_step_inputs(steps, limits());
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  EXPECT_EQ(in->token_ids, (std::vector<int32_t>{5, 6, 7, 9}));
  EXPECT_EQ(in->positions, (std::vector<int32_t>{62, 63, 64, 128}));
  EXPECT_EQ(in->slots[0], (std::vector<int32_t>{7 * kPageSize + 62, 7 * kPageSize + 63, 2 * kPageSize + 0,
                                                4 * kPageSize + 0}));
  EXPECT_EQ(in->query_start, (std::vector<int32_t>{0, 3, 4}));
  EXPECT_EQ(in->context_lens, (std::vector<int32_t>{65, 129}));
  EXPECT_EQ(in->pages_per_seq, 3);
  EXPECT_EQ(in->block_tables[0], (std::vector<int32_t>{7, 2, -1, 0, 1, 4}));  // only needed pages copied
  EXPECT_EQ(in->logit_rows, (std::vector<int32_t>{3}));
  EXPECT_EQ(in->max_query_len, 3);
  EXPECT_EQ(in->max_context_len, 129);
}

// Prompt logprobs: a chunk with want_all_logits returns a row per token; rows share max_seqs.
TEST(StepInputs, AllLogitsRowsAndTheirLimit) {
  std::vector<int32_t> chunk = {5, 6, 7};
  std::vector<int32_t> chunk_table = {7, 2};
  std::vector<int32_t> decode = {9};
  std::vector<int32_t> decode_table = {0, 1, 4, 8};
  std::vector<SequenceStep> steps = {
      {decode, 128, {decode_table}, -1, true},
      {chunk, 62, {chunk_table}, -1, false, /*want_all_logits=*/true},
  };
  auto in = build_step_inputs(steps, limits());
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  EXPECT_EQ(in->logit_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  // Five rows for a workspace of max_seqs = 4.
  std::vector<int32_t> longer = {5, 6, 7, 8};
  steps[1].tokens = longer;
  auto over = build_step_inputs(steps, limits());
  ASSERT_FALSE(over.ok());
  EXPECT_NE(over.status().message().find("5 logits rows exceed max_num_seqs 4"), std::string::npos)
      << over.status().message();
}

// Two cache groups (a full one and a window one): every group has its own table, slots and pool
// size; entries behind the window are the null page, a page like any other here (attention masks
// it); -1 is never a valid entry.
TEST(StepInputs, OneTablePerCacheGroup) {
  std::vector<int32_t> decode = {9};
  std::vector<int32_t> full = {3, 5, 6, 1, 2};
  std::vector<int32_t> window = {kNullPage, kNullPage, kNullPage, 4, 7};
  StepLimits two = limits();
  two.num_pages = {10, 8};
  auto in = build_step_inputs(std::vector<SequenceStep>{{decode, 300, {full, window}, -1, true}}, two);
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  ASSERT_EQ(in->num_groups(), 2);
  EXPECT_EQ(in->block_tables[0], full);
  EXPECT_EQ(in->block_tables[1], window);
  EXPECT_EQ(in->slots[0], (std::vector<int32_t>{2 * kPageSize + 300 % kPageSize}));
  EXPECT_EQ(in->slots[1], (std::vector<int32_t>{7 * kPageSize + 300 % kPageSize}));

  std::vector<int32_t> outside = {0, 0, 0, 4, 9};  // page 9 is outside the window group's pool of 8
  in = build_step_inputs(std::vector<SequenceStep>{{decode, 300, {full, outside}, -1, true}}, two);
  EXPECT_NE(in.status().message().find("block_table[4] = 9 is outside the KV pool [0, 8) of cache group 1"),
            std::string::npos) << in.status().to_string();
  std::vector<int32_t> released = {-1, -1, 0, 4, 7};
  in = build_step_inputs(std::vector<SequenceStep>{{decode, 300, {full, released}, -1, true}}, two);
  EXPECT_NE(in.status().message().find("block_table[0] = -1"), std::string::npos) << in.status().to_string();
  in = build_step_inputs(std::vector<SequenceStep>{{decode, 300, {full}, -1, true}}, two);
  EXPECT_NE(in.status().message().find("1 block tables for 2 cache groups"), std::string::npos)
      << in.status().to_string();
}

TEST(StepInputs, RejectsBadSteps) {
  std::vector<int32_t> tokens = {1, 2};
  std::vector<int32_t> table = {0};
  std::vector<int32_t> empty;
  auto expect = [](const std::vector<SequenceStep>& steps, StatusCode code, const char* fragment) {
    auto in = build_step_inputs(steps, limits());
    ASSERT_FALSE(in.ok());
    EXPECT_EQ(in.status().code(), code) << in.status().to_string();
    EXPECT_NE(in.status().message().find(fragment), std::string::npos) << in.status().to_string();
  };
  expect({{empty, 0, {table}, -1, true}}, StatusCode::kInvalidArgument, "no tokens");
  expect({{tokens, 63, {table}, -1, true}}, StatusCode::kInvalidArgument, "block table of 1 pages");
  std::vector<int32_t> bad_page = {10};
  expect({{tokens, 0, {bad_page}, -1, true}}, StatusCode::kInvalidArgument, "block_table[0] = 10");
  std::vector<int32_t> bad_token = {1, 100};
  expect({{bad_token, 0, {table}, -1, true}}, StatusCode::kInvalidArgument, "id 100");
  expect({{tokens, 0, {table}, -1, true}, {tokens, 1, {table}, -1, true}}, StatusCode::kInvalidArgument, "slot 1");
  expect({{tokens, -1, {table}, -1, true}}, StatusCode::kInvalidArgument, "num_cached");
  std::vector<int32_t> long_table(9, 0);
  expect({{tokens, 511, {long_table}, -1, true}}, StatusCode::kOutOfRange, "513");
  std::vector<SequenceStep> many(5, SequenceStep{tokens, 0, {table}, -1, true});
  expect(many, StatusCode::kInvalidArgument, "max_num_seqs");
  std::vector<int32_t> big(257, 1);
  std::vector<int32_t> big_table = {0, 1, 2, 3, 4};
  expect({{big, 0, {big_table}, -1, true}}, StatusCode::kInvalidArgument, "max_batched_tokens");
}

}  // namespace
}  // namespace longbow
