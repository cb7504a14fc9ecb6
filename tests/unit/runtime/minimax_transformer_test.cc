// The lightning hybrid (model_type minimax) through the runtime on the CPU backend, on a tiny random
// checkpoint: chunked prefill and decode steps carry each sequence's state slot and give the logits
// of one whole-prompt step; a batch mixing prefill chunks and decode tokens of several sequences
// equals each sequence alone; a fresh slot's old contents are never read; Mixtral-style per-expert
// checkpoints load as the stacked layout. (Parity with transformers: tests/model/parity_test.cc.)
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>
#include <random>
#include <string>

#include "model/config/model_config.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors_writer.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

using testing::random_tokens;
using testing::TempDir;

using testing::relative_l2;
using Model = testing::CpuModel;

Model load(const ModelConfig& config, const std::string& dir) { return testing::load_cpu_model(config, dir); }

class MinimaxTransformerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = testing::tiny_minimax_config();
    testing::write_tiny_checkpoint(config_, dir_.path(), DType::kF32, 11);
  }
  // Logits of every position of `tokens` from one whole-prompt step in `slot`.
  std::vector<std::vector<float>> whole(Transformer& t, const std::vector<int32_t>& tokens, int slot,
                                        std::span<const int32_t> table) {
    SequenceStep step{tokens, 0, {table}, slot, true, true};
    std::vector<float> logits;
    Status st = t.forward(std::span(&step, 1), &logits);
    EXPECT_TRUE(st.ok()) << st.to_string();
    std::vector<std::vector<float>> rows;
    const auto vocab = static_cast<size_t>(config_.vocab_size);
    for (size_t r = 0; r * vocab < logits.size(); ++r) rows.emplace_back(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
    return rows;
  }

  ModelConfig config_;
  TempDir dir_;
};

TEST_F(MinimaxTransformerTest, GroupsTheLinearLayersIntoOneStateGroup) {
  Model m = load(config_, dir_.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<CacheGroup>& groups = m.transformer->cache_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_TRUE(groups[0].is_state);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(groups[0].bytes_per_slot, 3 * 4 * 16 * 16 * 4);
  EXPECT_FALSE(groups[1].is_state);
  EXPECT_EQ(groups[1].layers, (std::vector<int>{2}));
  EXPECT_EQ(m.transformer->num_pages(0), 80);  // one slot per sequence
  EXPECT_EQ(m.transformer->num_pages(1), 12);
}

// 70 tokens (the 16-token blocks crossed four times) as chunks of 23 and 27 and then decode steps,
// in slot 5, against one whole-prompt step in slot 2; then a second sequence reuses slot 5 fresh.
TEST_F(MinimaxTransformerTest, ChunksAndDecodeStepsCarryTheStateSlot) {
  Model m = load(config_, dir_.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(70, config_.vocab_size, 3);
  const std::vector<int32_t> table_a = {3, 7}, table_b = {1, 9};
  const std::vector<std::vector<float>> want = whole(*m.transformer, tokens, 2, table_a);
  ASSERT_EQ(want.size(), 70u);
  int done = 0;
  for (int n : {23, 27}) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done, {table_b}, 5,
                      true};
    std::vector<float> logits;
    ASSERT_TRUE(m.transformer->forward(std::span(&step, 1), &logits).ok());
    EXPECT_LT(relative_l2(logits, want[static_cast<size_t>(done + n - 1)]), 1e-5) << "chunk ending at " << done + n;
    done += n;
  }
  for (; done < 70; ++done) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(done), 1), done, {table_b}, 5, true};
    std::vector<float> logits;
    ASSERT_TRUE(m.transformer->forward(std::span(&step, 1), &logits).ok());
    EXPECT_LT(relative_l2(logits, want[static_cast<size_t>(done)]), 1e-5) << "decode at " << done;
  }
  // Slot 5 now holds the state after 70 tokens: a fresh sequence in it must not see it.
  const std::vector<int32_t> other = random_tokens(20, config_.vocab_size, 4);
  const std::vector<std::vector<float>> fresh_in_used = whole(*m.transformer, other, 5, table_b);
  Model clean = load(config_, dir_.path());
  const std::vector<std::vector<float>> fresh_in_clean = whole(*clean.transformer, other, 0, table_a);
  ASSERT_EQ(fresh_in_used.size(), fresh_in_clean.size());
  for (size_t i = 0; i < fresh_in_used.size(); ++i) EXPECT_EQ(fresh_in_used[i], fresh_in_clean[i]) << "row " << i;
}

// Three sequences prefilled in chunks next to each other's decode tokens, each in its own slot,
// against each alone.
TEST_F(MinimaxTransformerTest, MixedBatchEqualsEachSequenceAlone) {
  Model alone = load(config_, dir_.path()), batch = load(config_, dir_.path());
  ASSERT_NE(alone.transformer, nullptr);
  ASSERT_NE(batch.transformer, nullptr);
  struct Seq {
    std::vector<int32_t> tokens;
    int prompt;
    std::vector<int32_t> table;
    int slot;
  };
  std::vector<Seq> seqs = {{random_tokens(64, config_.vocab_size, 5), 60, {1, 2}, 7},
                           {random_tokens(9, config_.vocab_size, 6), 5, {3}, 0},
                           {random_tokens(90, config_.vocab_size, 7), 86, {4, 5}, 3}};
  std::vector<std::vector<std::vector<float>>> want(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    int done = 0;
    while (done < static_cast<int>(seqs[s].tokens.size())) {
      const int n = done == 0 ? seqs[s].prompt : 1;
      SequenceStep step{std::span(seqs[s].tokens).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done,
                        {seqs[s].table}, seqs[s].slot + 10, true};
      std::vector<float> logits;
      ASSERT_TRUE(alone.transformer->forward(std::span(&step, 1), &logits).ok());
      want[s].push_back(logits);
      done += n;
    }
  }
  std::vector<int> done(seqs.size(), 0);
  std::vector<size_t> checked(seqs.size(), 0);
  const auto vocab = static_cast<size_t>(config_.vocab_size);
  for (int round = 0; round < 100; ++round) {
    std::vector<SequenceStep> steps;
    std::vector<size_t> owners;
    int budget = 40;
    for (size_t s = 0; s < seqs.size() && budget > 0; ++s) {
      const int remaining = static_cast<int>(seqs[s].tokens.size()) - done[s];
      if (remaining == 0) continue;
      const int n = done[s] < seqs[s].prompt ? std::min(budget, seqs[s].prompt - done[s]) : 1;
      const bool wants = done[s] + n >= seqs[s].prompt;
      steps.push_back({std::span(seqs[s].tokens).subspan(static_cast<size_t>(done[s]), static_cast<size_t>(n)), done[s],
                       {seqs[s].table}, seqs[s].slot, wants});
      owners.push_back(s);
      done[s] += n;
      budget -= n;
    }
    if (steps.empty()) break;
    std::vector<float> logits;
    Status st = batch.transformer->forward(steps, &logits);
    ASSERT_TRUE(st.ok()) << st.to_string();
    size_t row = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (!steps[i].want_logits) continue;
      const size_t s = owners[i];
      const std::vector<float> got(logits.begin() + row * vocab, logits.begin() + (row + 1) * vocab);
      EXPECT_LT(relative_l2(got, want[s][checked[s]]), 1e-5) << "sequence " << s << " row " << checked[s];
      ++checked[s];
      ++row;
    }
  }
  for (size_t s = 0; s < seqs.size(); ++s) EXPECT_EQ(checked[s], want[s].size()) << "sequence " << s;
}

// Every position of a 70-token sequence (one whole-prompt step) against the fp64 reference written
// from transformers' definitions (tests/unit/runtime/tiny_model.h).
TEST_F(MinimaxTransformerTest, MatchesTheDenseReference) {
  Model m = load(config_, dir_.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(70, config_.vocab_size, 12), table = {4, 6};
  const std::vector<std::vector<float>> got = whole(*m.transformer, tokens, 3, table);
  const std::vector<std::vector<double>> want = testing::minimax_reference_logits(config_, *m.checkpoint, tokens);
  ASSERT_EQ(got.size(), want.size());
  for (size_t t = 0; t < got.size(); ++t) {
    const std::vector<float> expected(want[t].begin(), want[t].end());
    EXPECT_LT(relative_l2(got[t], expected), 1e-5) << "position " << t;
  }
}

TEST_F(MinimaxTransformerTest, RejectsMissingAndSharedStateSlots) {
  Model m = load(config_, dir_.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(4, config_.vocab_size, 8);
  const std::vector<int32_t> t1 = {1}, t2 = {2};
  std::vector<float> logits;
  SequenceStep no_slot{tokens, 0, {t1}, -1, true};
  EXPECT_EQ(m.transformer->forward(std::span(&no_slot, 1), &logits).code(), StatusCode::kInvalidArgument);
  SequenceStep beyond{tokens, 0, {t1}, 80, true};
  EXPECT_EQ(m.transformer->forward(std::span(&beyond, 1), &logits).code(), StatusCode::kInvalidArgument);
  std::vector<SequenceStep> shared = {{tokens, 0, {t1}, 4, true}, {tokens, 0, {t2}, 4, true}};
  EXPECT_EQ(m.transformer->forward(shared, &logits).code(), StatusCode::kInvalidArgument);
}

// The same weights stored the Mixtral way (block_sparse_moe.gate, experts.N.w1/w3/w2, as the
// MiniMax-Text-01-hf checkpoints are) give the same logits as the stacked transformers 5 layout.
TEST_F(MinimaxTransformerTest, PerExpertCheckpointsLoadAsTheStackedLayout) {
  auto stacked = Checkpoint::open(dir_.path());
  ASSERT_TRUE(stacked.ok());
  const int experts = 4, inter = 40, hidden = 48;
  SafetensorsWriter writer;
  for (const std::string& name : (*stacked)->tensor_names()) {
    auto view = (*stacked)->tensor(name);
    ASSERT_TRUE(view.ok());
    ASSERT_EQ(view->dtype, DType::kF32);
    const auto* values = reinterpret_cast<const float*>(view->data);
    const size_t dot = name.find(".mlp.");
    if (dot == std::string::npos) {
      ASSERT_TRUE(writer.add_float(name, DType::kF32, view->shape, std::span(values, view->num_elements())).ok());
      continue;
    }
    const std::string layer = name.substr(0, dot);  // model.layers.N
    if (name.ends_with("mlp.gate.weight")) {
      ASSERT_TRUE(writer.add_float(layer + ".block_sparse_moe.gate.weight", DType::kF32, view->shape,
                                   std::span(values, view->num_elements())).ok());
    } else if (name.ends_with("gate_up_proj")) {
      for (int e = 0; e < experts; ++e) {
        const float* gate = values + int64_t{e} * 2 * inter * hidden;
        for (auto [w, part] : {std::pair{"w1", gate}, std::pair{"w3", gate + inter * hidden}}) {
          ASSERT_TRUE(writer.add_float(fmt::format("{}.block_sparse_moe.experts.{}.{}.weight", layer, e, w),
                                       DType::kF32, {inter, hidden}, std::span(part, inter * hidden)).ok());
        }
      }
    } else if (name.ends_with("down_proj")) {
      for (int e = 0; e < experts; ++e) {
        ASSERT_TRUE(writer.add_float(fmt::format("{}.block_sparse_moe.experts.{}.w2.weight", layer, e), DType::kF32,
                                     {hidden, inter}, std::span(values + int64_t{e} * hidden * inter, hidden * inter)).ok());
      }
    } else {
      FAIL() << "unexpected MoE tensor " << name;
    }
  }
  TempDir legacy_dir;
  ASSERT_TRUE(writer.write(legacy_dir.path() + "/model.safetensors").ok());
  Model a = load(config_, dir_.path()), b = load(config_, legacy_dir.path());
  ASSERT_NE(a.transformer, nullptr);
  ASSERT_NE(b.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(30, config_.vocab_size, 9), table = {2};
  EXPECT_EQ(whole(*a.transformer, tokens, 0, table), whole(*b.transformer, tokens, 0, table));
}

}  // namespace
}  // namespace longbow
