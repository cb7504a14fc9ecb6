// Tensor parallelism on the CPU backend (DESIGN §10): TP = 2 and 4 against TP = 1 on the parity
// fixtures (transformers' own checkpoints: dense, local/global, KV heads fewer than ranks) and on tiny
// checkpoints with biases, an odd vocabulary split unevenly, tied embeddings, a DSA indexer, MiniMax's
// MoE beside replicated lightning layers, and DeepSeek's MLA and MoE (V3 and V3.2).
// Two sequences are prefilled in chunks and decoded greedily together; every logits row of every step
// must agree with TP = 1 within 1e-5 and every greedy token must be the same.
#include "model/runtime/tensor_parallel.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "model/config/model_config.h"
#include "model/weights/safetensors.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow::testing {
namespace {

std::string fixture_dir(const std::string& name) {
  return std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity/" + name;
}

StatusOr<std::unique_ptr<Transformer>> load_ranks(const ModelConfig& config, const Checkpoint& checkpoint, int size,
                                                  bool expert_parallel = false) {
  std::vector<std::unique_ptr<Backend>> backends;
  for (int r = 0; r < size; ++r) {
    ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, create_backend("cpu"));
    backends.push_back(std::move(backend));
  }
  RuntimeOptions options;
  options.num_kv_pages = 8;
  options.max_batched_tokens = 48;
  options.max_num_seqs = 4;
  return load_tensor_parallel(config, checkpoint, std::move(backends), options, expert_parallel);
}

// Every step's logits rows (in step order) and the greedy tokens decoded: sequence A (40 prompt
// tokens, chunks of 32 and 8) and B (25 tokens, one chunk beside A's second), then 6 decode steps of
// both.
struct Run {
  std::vector<std::vector<float>> logits;
  std::vector<int32_t> tokens;
};

StatusOr<Run> run_scenario(Transformer& model, int vocab) {
  std::vector<int32_t> a = random_tokens(40, vocab, 11), b = random_tokens(25, vocab, 12);
  const std::vector<int32_t> table_a = {3, 5}, table_b = {6, 1};
  // The same pages in every paged cache group's pool (Gemma's local and global groups); 46 tokens stay
  // within every window's first page, so no entry is behind a window.
  std::vector<std::span<const int32_t>> tables_a, tables_b;
  for (const CacheGroup& group : model.cache_groups()) {
    if (group.is_state) continue;
    tables_a.emplace_back(table_a);
    tables_b.emplace_back(table_b);
  }
  // A model with state layers (MiniMax's lightning attention) gets a fresh slot per sequence.
  const bool has_state = std::any_of(model.cache_groups().begin(), model.cache_groups().end(),
                                     [](const CacheGroup& g) { return g.is_state; });
  const int32_t slot_a = has_state ? 0 : -1, slot_b = has_state ? 1 : -1;
  Run run;
  auto step = [&](std::vector<SequenceStep> steps) -> Status {
    std::vector<float> logits;
    RETURN_IF_ERROR(model.forward(steps, &logits));
    run.logits.push_back(logits);
    return Status::Ok();
  };
  auto greedy = [&](size_t row) {
    const auto begin = run.logits.back().begin() + static_cast<std::ptrdiff_t>(row * static_cast<size_t>(vocab));
    return static_cast<int32_t>(std::max_element(begin, begin + vocab) - begin);
  };
  RETURN_IF_ERROR(step({SequenceStep{std::span(a).first(32), 0, tables_a, slot_a, false}}));
  RETURN_IF_ERROR(step({SequenceStep{std::span(a).subspan(32), 32, tables_a, slot_a, true},
                        SequenceStep{std::span(b), 0, tables_b, slot_b, true}}));
  for (int i = 0; i < 6; ++i) {
    a.push_back(greedy(0));
    b.push_back(greedy(1));
    run.tokens.push_back(a.back());
    run.tokens.push_back(b.back());
    const auto na = static_cast<int32_t>(a.size()), nb = static_cast<int32_t>(b.size());
    RETURN_IF_ERROR(step({SequenceStep{std::span(a).last(1), na - 1, tables_a, slot_a, true},
                          SequenceStep{std::span(b).last(1), nb - 1, tables_b, slot_b, true}}));
  }
  return run;
}

// Loads `config` from `dir` at TP = 1 and at each size, runs the scenario and compares.
void expect_same_as_one_rank(const ModelConfig& config, const std::string& dir, std::initializer_list<int> sizes,
                             bool expert_parallel = false) {
  auto checkpoint = Checkpoint::open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  auto single = load_ranks(config, **checkpoint, 1);
  ASSERT_TRUE(single.ok()) << single.status().to_string();
  auto expected = run_scenario(**single, config.vocab_size);
  ASSERT_TRUE(expected.ok()) << expected.status().to_string();
  for (int size : sizes) {
    SCOPED_TRACE(fmt::format("tensor_parallel_size {}", size));
    auto sharded = load_ranks(config, **checkpoint, size, expert_parallel);
    ASSERT_TRUE(sharded.ok()) << sharded.status().to_string();
    auto got = run_scenario(**sharded, config.vocab_size);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    ASSERT_EQ(got->logits.size(), expected->logits.size());
    double worst = 0.0;
    for (size_t s = 0; s < got->logits.size(); ++s) {
      ASSERT_EQ(got->logits[s].size(), expected->logits[s].size()) << "step " << s;
      for (size_t i = 0; i < got->logits[s].size(); ++i) {
        worst = std::max(worst, std::abs(double{got->logits[s][i]} - expected->logits[s][i]));
      }
    }
    EXPECT_LE(worst, 1e-5) << "largest logit difference from TP = 1";
    EXPECT_EQ(got->tokens, expected->tokens);
    ::testing::Test::RecordProperty(fmt::format("tp{}_max_abs_logit_diff", size), fmt::format("{:.3g}", worst));
    std::printf("[ tp=%d%s ] %s: max |logit - TP1 logit| = %.3g\n", size, expert_parallel ? " ep" : "",
                config.model_type.c_str(), worst);
  }
}

class ParityFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityFixtureTest, ShardedRanksMatchOneRank) {
  const std::string dir = fixture_dir(GetParam());
  auto config = load_model_config(dir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  // gemma3_text has 2 query heads: TP = 4 cannot split them (ShardingErrorsNameTheDimension).
  if (config->num_attention_heads % 4 == 0) {
    expect_same_as_one_rank(*config, dir, {2, 4});
  } else {
    expect_same_as_one_rank(*config, dir, {2});
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParityFixtureTest,
                         ::testing::Values("llama", "qwen2", "qwen3", "mistral", "gemma2", "gemma3_text"),
                         [](const auto& param_info) { return param_info.param; });

struct TinyCase {
  std::string name;
  TinyFamily family;
};

void PrintTo(const TinyCase& c, std::ostream* os) { *os << c.name; }

class TinyFamilyTest : public ::testing::TestWithParam<TinyCase> {};

// llama: o_proj and MLP biases (kept by rank 0 only); qwen2: q/k/v biases split with their rows;
// qwen3: tied embeddings split once for both uses; llama-dsa: the replicated indexer choosing 16 of
// up to 46 keys. Vocabulary 97 splits 49 + 48 and 25 + 25 + 25 + 22.
TEST_P(TinyFamilyTest, ShardedRanksMatchOneRank) {
  const ModelConfig config = tiny_config(GetParam().family);
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), DType::kF32, 21);
  expect_same_as_one_rank(config, dir.path(), {2, 4});
}

INSTANTIATE_TEST_SUITE_P(Families, TinyFamilyTest,
                         ::testing::Values(TinyCase{"llama", TinyFamily::kLlama}, TinyCase{"qwen2", TinyFamily::kQwen2},
                                           TinyCase{"qwen3", TinyFamily::kQwen3},
                                           TinyCase{"llama_dsa", TinyFamily::kLlamaDsa}),
                         [](const auto& param_info) { return param_info.param.name; });

// MiniMax with 6 experts: its 4 heads split over 4 ranks, its experts do not.
// ModernBERT-decoder's fused projections: Wqkv [q | k | v] and Wi [gate | up] are one tensor each, so
// every rank's slice is three (two) row ranges laid back to back, and its biases split alike. The
// fixture's config with 4 heads of 32 (its own 3 heads divide by neither 2 nor 4), random weights.
TEST(TensorParallelTest, FusedProjectionsShardTheirViews) {
  auto config = load_model_config(fixture_dir("modernbert-decoder"));
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  config->num_attention_heads = 4;
  config->num_key_value_heads = 4;
  TempDir dir;
  write_tiny_checkpoint(*config, dir.path(), DType::kF32, 13);
  expect_same_as_one_rank(*config, dir.path(), {2, 4});
}

TEST(TensorParallelTest, ExpertParallelNeedsExpertsToDivide) {
  ModelConfig config = tiny_minimax_config();
  config.moe->num_experts = 6;
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), DType::kF32, 5);
  auto checkpoint = Checkpoint::open(dir.path());
  ASSERT_TRUE(checkpoint.ok());
  auto model = load_ranks(config, **checkpoint, 4, true);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model.status().message().find("6 experts are not divisible by tensor_parallel_size 4"), std::string::npos)
      << model.status().to_string();
}

TEST(TensorParallelTest, ShardingErrorsNameTheDimension) {
  auto load_error = [](const std::string& name, int size) {
    const std::string dir = fixture_dir(name);
    auto config = load_model_config(dir);
    EXPECT_TRUE(config.ok());
    auto checkpoint = Checkpoint::open(dir);
    EXPECT_TRUE(checkpoint.ok());
    auto model = load_ranks(*config, **checkpoint, size);
    return model.ok() ? Status::Ok() : model.status();
  };
  const Status heads = load_error("gemma3_text", 4);
  EXPECT_EQ(heads.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(heads.message().find("num_attention_heads 2 is not divisible by tensor_parallel_size 4"), std::string::npos)
      << heads.to_string();
  const Status modernbert = load_error("modernbert-decoder", 2);
  EXPECT_EQ(modernbert.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(modernbert.message().find("num_attention_heads 3"), std::string::npos) << modernbert.to_string();
}

// MiniMax: lightning layers replicated, the full-attention layer and every layer's MoE experts
// (intermediate 40: 20 or 10 rows of each expert per rank) sharded, the router replicated.
TEST(TensorParallelTest, MiniMaxMoeRanksMatchOneRank) {
  const ModelConfig config = tiny_minimax_config();
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), DType::kF32, 5);
  expect_same_as_one_rank(config, dir.path(), {2, 4});
  // Expert parallelism: 2 or 1 of the 4 experts whole on each rank.
  expect_same_as_one_rank(config, dir.path(), {2, 4}, true);
}

// DeepSeek-V3: MLA heads, the dense first layer's MLP, the routed experts (intermediate 20) and the
// shared expert sharded; the sigmoid router, its bias and the latent cache replicated. V3.2 adds the
// replicated indexer over the q latent (top-16 of up to 46 tokens).
TEST(TensorParallelTest, DeepSeekRanksMatchOneRank) {
  for (const ModelConfig& config :
       {tiny_deepseek_config(),
        tiny_deepseek_config(
            {{"model_type", "deepseek_v32"}, {"index_n_heads", 4}, {"index_head_dim", 32}, {"index_topk", 16}})}) {
    SCOPED_TRACE(config.model_type);
    TempDir dir;
    write_tiny_checkpoint(config, dir.path(), DType::kF32, 3);
    expect_same_as_one_rank(config, dir.path(), {2, 4});
    expect_same_as_one_rank(config, dir.path(), {2, 4}, true);  // 4 or 2 of the 8 experts per rank
  }
}

// The hub's layout: one tensor per expert and projection, assembled at load; each rank takes its rows
// (gate/up) and columns (down) of every expert's pieces, or under expert parallelism its experts'
// pieces whole. Same logits as TP = 1 on the stacked copy.
TEST(TensorParallelTest, PerExpertCheckpointsShardLikeStackedOnes) {
  const ModelConfig config = tiny_deepseek_config();
  TempDir stacked, per_expert;
  write_tiny_checkpoint(config, stacked.path(), DType::kF32, 9);
  write_per_expert_checkpoint(stacked.path(), per_expert.path(), 8, 20, 48);
  auto one = Checkpoint::open(stacked.path());
  auto pieces = Checkpoint::open(per_expert.path());
  ASSERT_TRUE(one.ok() && pieces.ok());
  auto single = load_ranks(config, **one, 1);
  ASSERT_TRUE(single.ok()) << single.status().to_string();
  auto expected = run_scenario(**single, config.vocab_size);
  ASSERT_TRUE(expected.ok()) << expected.status().to_string();
  for (auto [size, expert_parallel] : {std::pair{2, false}, std::pair{4, false}, std::pair{4, true}}) {
    auto sharded = load_ranks(config, **pieces, size, expert_parallel);
    ASSERT_TRUE(sharded.ok()) << sharded.status().to_string();
    auto got = run_scenario(**sharded, config.vocab_size);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got->tokens, expected->tokens) << "TP " << size << (expert_parallel ? " EP" : "");
    ASSERT_EQ(got->logits.size(), expected->logits.size());
    for (size_t s = 1; s < got->logits.size(); ++s) {  // step 0 asks for no logits
      EXPECT_LE(relative_l2(got->logits[s], expected->logits[s]), 1e-6) << "TP " << size << ", step " << s;
    }
  }
}

}  // namespace
}  // namespace longbow::testing
