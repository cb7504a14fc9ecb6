// The runtime on tiny random checkpoints: against a dense fp64 reference of the same model, and a
// batch mixing prefill chunks and decode tokens of several sequences against each sequence alone.
#include "model/runtime/transformer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <ostream>
#include <random>
#include <string>

#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

using testing::reference_logits;
using testing::TempDir;
using testing::tiny_config;
using testing::TinyFamily;
using testing::write_tiny_checkpoint;

double relative_l2(const float* a, const std::vector<double>& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::isnan(diff) ? INFINITY : std::sqrt(diff / norm);
}

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = dist(rng);
  return out;
}

struct Model {
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> transformer;
};

StatusOr<Model> load_model(const ModelConfig& config, const std::string& dir, const RuntimeOptions& options) {
  Model m;
  ASSIGN_OR_RETURN(m.checkpoint, Checkpoint::open(dir));
  ASSIGN_OR_RETURN(m.backend, create_backend("cpu"));
  ASSIGN_OR_RETURN(m.transformer, Transformer::load(config, *m.checkpoint, *m.backend, options));
  return m;
}

struct FamilyCase {
  std::string name;
  TinyFamily family;
  DType dtype;
};

void PrintTo(const FamilyCase& c, std::ostream* os) { *os << c.name; }

class TransformerFamilyTest : public ::testing::TestWithParam<FamilyCase> {};

// One sequence of 150 tokens prefilled in chunks of 64 and 50, then decoded token by token over
// scattered pages; every logits row against the dense fp64 reference.
void check_against_reference(const ModelConfig& config, const std::string& dir) {
  RuntimeOptions options;
  options.num_kv_pages = 8;
  options.max_batched_tokens = 64;
  options.max_num_seqs = 4;
  auto model = load_model(config, dir, options);
  ASSERT_TRUE(model.ok()) << model.status().to_string();

  const std::vector<int32_t> tokens = random_tokens(150, config.vocab_size, 7);
  const std::vector<int32_t> table = {5, 2, 7};  // scattered pages
  std::vector<std::pair<int, std::vector<float>>> got;  // (position, logits)
  auto run = [&](int begin, int end) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)),
                      begin, table, true};
    std::vector<float> logits;
    Status st = model->transformer->forward(std::span(&step, 1), &logits);
    ASSERT_TRUE(st.ok()) << st.to_string();
    ASSERT_EQ(logits.size(), static_cast<size_t>(config.vocab_size));
    got.emplace_back(end - 1, logits);
  };
  run(0, 64);
  run(64, 114);
  for (int t = 114; t < 150; ++t) run(t, t + 1);

  std::vector<std::vector<double>> want = reference_logits(config, *model->checkpoint, tokens);
  for (const auto& [pos, logits] : got) {
    EXPECT_LT(relative_l2(logits.data(), want[static_cast<size_t>(pos)]), 1e-5) << "position " << pos;
  }
}

// Three sequences run alone (whole prompt, then decode tokens) and together in steps that mix
// prefill chunks with other sequences' decode tokens: the same logits.
void check_mixed_batch(const ModelConfig& config, const std::string& dir) {
  RuntimeOptions options;
  options.num_kv_pages = 8;
  options.max_batched_tokens = 256;
  options.max_num_seqs = 4;
  auto alone_model = load_model(config, dir, options);
  auto batch_model = load_model(config, dir, options);
  ASSERT_TRUE(alone_model.ok()) << alone_model.status().to_string();
  ASSERT_TRUE(batch_model.ok()) << batch_model.status().to_string();

  struct Seq {
    int prompt_len;
    std::vector<int32_t> tokens;  // prompt, then the decode tokens fed one per step
    std::vector<int32_t> table;
  };
  std::vector<Seq> seqs = {{100, random_tokens(104, config.vocab_size, 1), {4, 1}},
                           {7, random_tokens(11, config.vocab_size, 2), {6}},
                           {140, random_tokens(144, config.vocab_size, 3), {0, 5, 2}}};

  // Alone: the whole prompt in one step, then one decode token per step.
  std::vector<std::vector<std::vector<float>>> alone(seqs.size());
  for (size_t s = 0; s < seqs.size(); ++s) {
    int done = 0;
    while (done < static_cast<int>(seqs[s].tokens.size())) {
      int n = done == 0 ? seqs[s].prompt_len : 1;
      SequenceStep step{std::span(seqs[s].tokens).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done,
                        seqs[s].table, true};
      std::vector<float> logits;
      ASSERT_TRUE(alone_model->transformer->forward(std::span(&step, 1), &logits).ok());
      alone[s].push_back(logits);
      done += n;
    }
  }

  // Batched: a 48-token budget per step split over the sequences in order, so prompts are
  // prefilled in chunks next to other sequences' decode tokens.
  std::vector<int> done(seqs.size(), 0);
  std::vector<size_t> checked(seqs.size(), 0);
  int steps_run = 0;
  while (true) {
    std::vector<SequenceStep> steps;
    std::vector<size_t> owners;
    int budget = 48;
    for (size_t s = 0; s < seqs.size() && budget > 0; ++s) {
      int remaining = static_cast<int>(seqs[s].tokens.size()) - done[s];
      if (remaining == 0) continue;
      int n = done[s] < seqs[s].prompt_len ? std::min(budget, seqs[s].prompt_len - done[s]) : 1;
      bool want = done[s] + n >= seqs[s].prompt_len;  // a partial prompt chunk needs no logits
      steps.push_back({std::span(seqs[s].tokens).subspan(static_cast<size_t>(done[s]), static_cast<size_t>(n)),
                       done[s], seqs[s].table, want});
      owners.push_back(s);
      done[s] += n;
      budget -= n;
    }
    if (steps.empty()) break;
    std::vector<float> logits;
    Status st = batch_model->transformer->forward(steps, &logits);
    ASSERT_TRUE(st.ok()) << st.to_string();
    ++steps_run;
    size_t row = 0;
    const size_t vocab = static_cast<size_t>(config.vocab_size);
    for (size_t i = 0; i < steps.size(); ++i) {
      if (!steps[i].want_logits) continue;
      size_t s = owners[i];
      ASSERT_LT(checked[s], alone[s].size());
      const std::vector<float>& expected = alone[s][checked[s]++];
      for (size_t v = 0; v < vocab; ++v) {
        ASSERT_NEAR(logits[row * vocab + v], expected[v], 1e-5 * (1.0 + std::abs(expected[v])))
            << "sequence " << s << " logits row " << checked[s] - 1 << " step " << steps_run;
      }
      ++row;
    }
    ASSERT_EQ(row * vocab, logits.size());
  }
  for (size_t s = 0; s < seqs.size(); ++s) EXPECT_EQ(checked[s], alone[s].size()) << "sequence " << s;
  EXPECT_GT(steps_run, 5);
}

TEST_P(TransformerFamilyTest, ChunkedPrefillAndDecodeMatchDenseReference) {
  ModelConfig config = tiny_config(GetParam().family);
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), GetParam().dtype, 42);
  check_against_reference(config, dir.path());
}

TEST_P(TransformerFamilyTest, MixedBatchEqualsEachSequenceAlone) {
  ModelConfig config = tiny_config(GetParam().family);
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), GetParam().dtype, 43);
  check_mixed_batch(config, dir.path());
}

INSTANTIATE_TEST_SUITE_P(Families, TransformerFamilyTest,
                         ::testing::Values(FamilyCase{"LlamaBf16", TinyFamily::kLlama, DType::kBF16},
                                           FamilyCase{"Qwen2F32", TinyFamily::kQwen2, DType::kF32},
                                           FamilyCase{"Qwen3Bf16", TinyFamily::kQwen3, DType::kBF16},
                                           FamilyCase{"MistralF32", TinyFamily::kMistral, DType::kF32}),
                         [](const ::testing::TestParamInfo<FamilyCase>& param_info) { return param_info.param.name; });

// The demo model the build writes (target demo_model): a 4-layer llama with llama3 RoPE.
std::string demo_model_dir() { return std::string(LONGBOW_BINARY_DIR) + "/demo-model"; }

TEST(DemoModel, MatchesDenseReference) {
  auto config = load_model_config(demo_model_dir());
  ASSERT_TRUE(config.ok()) << config.status().to_string() << " (build the demo_model target)";
  check_against_reference(*config, demo_model_dir());
}

TEST(DemoModel, MixedBatchEqualsEachSequenceAlone) {
  auto config = load_model_config(demo_model_dir());
  ASSERT_TRUE(config.ok()) << config.status().to_string() << " (build the demo_model target)";
  check_mixed_batch(*config, demo_model_dir());
}

TEST(TransformerLoad, RejectsMissingAndMisshapenTensors) {
  TempDir dir;
  ModelConfig llama = tiny_config(TinyFamily::kLlama);
  write_tiny_checkpoint(llama, dir.path(), DType::kBF16, 1);
  RuntimeOptions options;
  options.num_kv_pages = 2;

  ModelConfig qwen3 = tiny_config(TinyFamily::kQwen3);  // wants q_norm, which a llama checkpoint lacks
  qwen3.tie_word_embeddings = false;
  qwen3.o_bias = qwen3.mlp_bias = true;
  auto missing = load_model(qwen3, dir.path(), options);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound) << missing.status().to_string();
  EXPECT_NE(missing.status().message().find("q_norm"), std::string::npos) << missing.status().to_string();

  ModelConfig wider = llama;
  wider.intermediate_size = 128;
  auto misshapen = load_model(wider, dir.path(), options);
  EXPECT_EQ(misshapen.status().code(), StatusCode::kInvalidArgument) << misshapen.status().to_string();
  EXPECT_NE(misshapen.status().message().find("mlp.gate_proj.weight"), std::string::npos)
      << misshapen.status().to_string();

  options.num_kv_pages = -1;  // 0 plans the pool from memory (dummy_load_test.cc)
  auto no_pages = load_model(llama, dir.path(), options);
  EXPECT_EQ(no_pages.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_pages.status().message().find("num_kv_pages"), std::string::npos);
}

TEST(TransformerForward, RejectsOversizedSteps) {
  TempDir dir;
  ModelConfig config = tiny_config(TinyFamily::kLlama);
  config.max_position_embeddings = 100;
  write_tiny_checkpoint(config, dir.path(), DType::kBF16, 1);
  RuntimeOptions options;
  options.num_kv_pages = 4;
  options.max_batched_tokens = 32;
  auto model = load_model(config, dir.path(), options);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  std::vector<int32_t> tokens(33, 3);
  std::vector<int32_t> table = {0, 1};
  std::vector<float> logits;
  SequenceStep too_many{tokens, 0, table, true};
  EXPECT_EQ(model->transformer->forward(std::span(&too_many, 1), &logits).code(), StatusCode::kInvalidArgument);
  SequenceStep too_long{std::span(tokens).first(2), 99, table, true};
  EXPECT_EQ(model->transformer->forward(std::span(&too_long, 1), &logits).code(), StatusCode::kOutOfRange);
  SequenceStep fine{std::span(tokens).first(2), 0, table, true};
  EXPECT_TRUE(model->transformer->forward(std::span(&fine, 1), &logits).ok());
  EXPECT_EQ(logits.size(), static_cast<size_t>(config.vocab_size));
}

}  // namespace
}  // namespace longbow
