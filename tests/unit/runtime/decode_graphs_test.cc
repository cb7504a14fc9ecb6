// Decode-graph bucketing and padding (model/runtime/decode_graphs.h), and the padded decode path of the
// CPU runtime against the plain one (the CPU has no graphs; RuntimeOptions::pad_decode_steps runs the
// padded launches eagerly, which is what a graph replays).
#include "model/runtime/decode_graphs.h"

#include <gtest/gtest.h>

#include <vector>

#include "model/runtime/step_inputs.h"
#include "tests/unit/runtime/decode_scenario.h"
#include "tests/unit/runtime/sampling_check.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

TEST(DecodeGraphBuckets, PowersOfTwoAndHalfSteps) {
  EXPECT_EQ(decode_graph_buckets(256),
            (std::vector<int>{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256}));
  EXPECT_EQ(decode_graph_buckets(20), (std::vector<int>{1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(decode_graph_buckets(3), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(decode_graph_buckets(1), (std::vector<int>{1}));
  EXPECT_EQ(decode_graph_buckets(100), (std::vector<int>{1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 100}));
}

TEST(DecodeGraphBuckets, EveryPowerOfTwoIsABucket) {
  // The paged-decode split policy rounds the batch up to a power of two; padding must not cross one.
  for (int max_bs : {1, 7, 20, 100, 256, 1000}) {
    std::vector<int> buckets = decode_graph_buckets(max_bs);
    for (int s = 1; s <= max_bs; ++s) {
      int b = decode_graph_bucket(buckets, s);
      ASSERT_GE(b, s);
      int pow_s = 1, pow_b = 1;
      while (pow_s < s) pow_s *= 2;
      while (pow_b < b) pow_b *= 2;
      ASSERT_EQ(pow_s, pow_b) << "batch " << s << " pads to " << b << " (max " << max_bs << ")";
    }
    EXPECT_EQ(decode_graph_bucket(buckets, max_bs + 1), 0);
  }
}

TEST(DecodeGraphBuckets, Lookup) {
  std::vector<int> buckets = decode_graph_buckets(64);
  EXPECT_EQ(decode_graph_bucket(buckets, 1), 1);
  EXPECT_EQ(decode_graph_bucket(buckets, 3), 4);
  EXPECT_EQ(decode_graph_bucket(buckets, 5), 8);
  EXPECT_EQ(decode_graph_bucket(buckets, 13), 16);
  EXPECT_EQ(decode_graph_bucket(buckets, 17), 24);
  EXPECT_EQ(decode_graph_bucket(buckets, 33), 48);
  EXPECT_EQ(decode_graph_bucket(buckets, 64), 64);
  EXPECT_EQ(decode_graph_bucket(buckets, 65), 0);
}

TEST(DecodeStep, OnlyOneTokenStepsWithLogits) {
  std::vector<int32_t> one = {3}, two = {3, 4}, table = {0};
  std::vector<SequenceStep> decode = {{one, 5, {table}, -1, true}, {one, 9, {table}, -1, true}};
  EXPECT_TRUE(is_decode_step(decode));
  std::vector<SequenceStep> prefill = {{one, 5, {table}, -1, true}, {two, 0, {table}, -1, true}};
  EXPECT_FALSE(is_decode_step(prefill));
  std::vector<SequenceStep> no_logits = {{one, 5, {table}, -1, false}};
  EXPECT_FALSE(is_decode_step(no_logits));
  EXPECT_FALSE(is_decode_step({}));
}

StepLimits limits() {
  StepLimits l;
  l.max_tokens = 64;
  l.max_seqs = 8;
  l.vocab_size = 100;
  l.num_pages = {16};
  l.max_context_len = 4 * kPageSize;
  return l;
}

TEST(PadDecodeStep, PadsRowsAndWidensTables) {
  std::vector<int32_t> a = {7}, b = {8}, c = {9};
  std::vector<int32_t> ta = {3, 11}, tb = {5}, tc = {2, 4, 6};
  std::vector<SequenceStep> steps = {{a, 64, {ta}, -1, true}, {b, 0, {tb}, -1, true}, {c, 130, {tc}, -1, true}};
  auto in = build_step_inputs(steps, limits());
  ASSERT_TRUE(in.ok()) << in.status().to_string();
  auto padded = pad_decode_step(*in, 4, DecodeShape{4, 4 * kPageSize});
  ASSERT_TRUE(padded.ok()) << padded.status().to_string();
  EXPECT_EQ(padded->token_ids, (std::vector<int32_t>{7, 8, 9, 0}));
  EXPECT_EQ(padded->positions, (std::vector<int32_t>{64, 0, 130, 0}));
  EXPECT_EQ(padded->slots[0], (std::vector<int32_t>{11 * kPageSize, 5 * kPageSize, 6 * kPageSize + 2, -1}));
  EXPECT_EQ(padded->query_start, (std::vector<int32_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(padded->context_lens, (std::vector<int32_t>{65, 1, 131, 0}));
  EXPECT_EQ(padded->logit_rows, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(padded->block_tables[0], (std::vector<int32_t>{3, 11, -1, -1,  //
                                                           5, -1, -1, -1,   //
                                                           2, 4, 6, -1,     //
                                                           -1, -1, -1, -1}));
  EXPECT_EQ(padded->pages_per_seq, 4);
  EXPECT_EQ(padded->max_query_len, 1);
  EXPECT_EQ(padded->max_context_len, 4 * kPageSize);
}

TEST(PadDecodeStep, RejectsWhatDoesNotFit) {
  std::vector<int32_t> a = {7}, two = {7, 8};
  std::vector<int32_t> ta = {3, 11, 12};
  std::vector<SequenceStep> decode = {{a, 150, {ta}, -1, true}};
  auto in = build_step_inputs(decode, limits());
  ASSERT_TRUE(in.ok());
  EXPECT_FALSE(pad_decode_step(*in, 1, DecodeShape{2, 4 * kPageSize}).ok());  // table too narrow
  EXPECT_FALSE(pad_decode_step(*in, 1, DecodeShape{4, 100}).ok());            // bound below the context
  std::vector<SequenceStep> both = {{a, 150, {ta}, -1, true}, {a, 3, {ta}, -1, true}};
  auto in2 = build_step_inputs(both, limits());
  ASSERT_TRUE(in2.ok());
  EXPECT_FALSE(pad_decode_step(*in2, 1, DecodeShape{4, 4 * kPageSize}).ok());  // bucket < sequences
  std::vector<SequenceStep> prefill = {{two, 0, {ta}, -1, true}};
  auto in3 = build_step_inputs(prefill, limits());
  ASSERT_TRUE(in3.ok());
  EXPECT_FALSE(pad_decode_step(*in3, 2, DecodeShape{4, 4 * kPageSize}).ok());  // not a decode step
}

// The CPU runtime with decode steps padded to buckets (slot -1, context 0 rows, full-width tables, the
// context bound) gives the same logits, bit for bit, as without padding: padding rows touch nothing.
// llama-dsa (index_topk 16, contexts past it) runs its indexer, top-k and sparse attention on the
// padding rows too (the context-0 contract of backend.h).
TEST(PaddedDecode, CpuRuntimeBitwiseEqualToUnpadded) {
  for (testing::TinyFamily family :
       {testing::TinyFamily::kQwen2, testing::TinyFamily::kMistral, testing::TinyFamily::kLlamaDsa}) {
    ModelConfig config = testing::tiny_config(family);
    testing::TempDir dir;
    testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, 31);
    testing::DecodeScenario scenario;
    scenario.prompt_lens = {60, 3, 127, 64, 90, 1, 33, 62};
    scenario.batch_sizes = {1, 3, 5, 8, 2, 7};
    scenario.decode_steps = 14;  // contexts cross page boundaries (60→74, 127→141, 62→76)
    std::vector<std::vector<testing::ScenarioStep>> runs;
    for (bool pad : {false, true}) {
      auto checkpoint = Checkpoint::open(dir.path());
      ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
      auto backend = create_backend("cpu");
      ASSERT_TRUE(backend.ok());
      RuntimeOptions options;
      options.num_kv_pages = testing::decode_scenario_pages(scenario) + 3;
      options.max_batched_tokens = 128;
      options.max_num_seqs = 8;
      options.pad_decode_steps = pad;
      auto model = Transformer::load(config, **checkpoint, **backend, options);
      ASSERT_TRUE(model.ok()) << model.status().to_string();
      auto steps = testing::run_decode_scenario(**model, scenario);
      ASSERT_TRUE(steps.ok()) << steps.status().to_string();
      runs.push_back(std::move(steps).value());
    }
    ASSERT_EQ(runs[0].size(), runs[1].size());
    for (size_t i = 0; i < runs[0].size(); ++i) {
      ASSERT_EQ(runs[0][i].logits.size(),
                static_cast<size_t>(runs[0][i].num_seqs) * static_cast<size_t>(config.vocab_size));
      ASSERT_EQ(runs[0][i].logits, runs[1][i].logits) << "step " << i << " (" << runs[0][i].num_seqs << " sequences)";
    }
  }
}

// forward_sample on the CPU runtime (the CPU backend's sample op) equals forward() sampled on the host,
// on padded decode steps (the rows of a graph's bucket; only the real rows are sampled) and plain ones.
TEST(PaddedDecode, ForwardSampleEqualsForwardAndTheHostSampler) {
  for (testing::TinyFamily family : {testing::TinyFamily::kQwen2, testing::TinyFamily::kLlamaDsa}) {
    ModelConfig config = testing::tiny_config(family);
    testing::TempDir dir;
    testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, 37);
    testing::DecodeScenario scenario;
    scenario.prompt_lens = {60, 3, 127, 64, 90, 1};
    scenario.batch_sizes = {1, 3, 5, 2, 6};
    scenario.decode_steps = 10;
    for (bool pad : {false, true}) {
      auto checkpoint = Checkpoint::open(dir.path());
      ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
      auto backend = create_backend("cpu");
      ASSERT_TRUE(backend.ok());
      RuntimeOptions options;
      options.num_kv_pages = testing::decode_scenario_pages(scenario) + 3;
      options.max_batched_tokens = 128;
      options.max_num_seqs = 8;
      options.pad_decode_steps = pad;
      auto model = Transformer::load(config, **checkpoint, **backend, options);
      ASSERT_TRUE(model.ok()) << model.status().to_string();
      testing::SamplingCheck check(**model);
      auto steps = testing::run_decode_scenario(check, scenario);
      ASSERT_TRUE(steps.ok()) << steps.status().to_string();
      EXPECT_EQ(check.rows_checked_, 6u + 2u * (1u + 3u + 5u + 2u + 6u)) << "6 prefills, 10 decode steps";
      EXPECT_EQ(check.knife_edges_, 0);
    }
  }
}

}  // namespace
}  // namespace longbow
