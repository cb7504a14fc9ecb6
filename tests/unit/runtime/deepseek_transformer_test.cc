// DeepSeek-V3 (MLA + DeepSeek MoE) through the runtime on the CPU backend, on tiny random checkpoints:
// every position against the fp64 reference written from transformers' definitions (keys and values
// expanded per head, where the runtime attends in the latent space), with and without a q LoRA and
// with half-split or interleaved RoPE; chunked prefill and decode steps equal one whole-prompt step;
// per-expert checkpoints (as transformers saves them) load as the stacked layout; an FP8 checkpoint
// (e4m3 weights with block scales, DeepSeek-V3's format) loads dequantized. (Parity with
// transformers itself: tests/model/parity_test.cc.)
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "model/backend/cpu/cpu_dsa.h"
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

// Logits of every position of `tokens` from one whole-prompt step.
std::vector<std::vector<float>> whole(Transformer& t, const ModelConfig& config, const std::vector<int32_t>& tokens,
                                      std::span<const int32_t> table) {
  SequenceStep step{tokens, 0, {table}, -1, true, true};
  std::vector<float> logits;
  Status st = t.forward(std::span(&step, 1), &logits);
  EXPECT_TRUE(st.ok()) << st.to_string();
  std::vector<std::vector<float>> rows;
  const auto vocab = static_cast<size_t>(config.vocab_size);
  for (size_t r = 0; r * vocab < logits.size(); ++r) rows.emplace_back(logits.begin() + r * vocab, logits.begin() + (r + 1) * vocab);
  return rows;
}

void expect_matches_reference(const ModelConfig& config, uint32_t seed) {
  TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, seed);
  Model m = load(config, dir.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(70, config.vocab_size, seed + 1), table = {4, 6};
  const std::vector<std::vector<float>> got = whole(*m.transformer, config, tokens, table);
  const std::vector<std::vector<double>> want = testing::deepseek_reference_logits(config, *m.checkpoint, tokens);
  ASSERT_EQ(got.size(), want.size());
  for (size_t t = 0; t < got.size(); ++t) {
    const std::vector<float> expected(want[t].begin(), want[t].end());
    EXPECT_LT(relative_l2(got[t], expected), 1e-5) << "position " << t;
  }
}

TEST(DeepseekTransformerTest, MatchesTheDenseReference) { expect_matches_reference(testing::tiny_deepseek_config(), 21); }

TEST(DeepseekTransformerTest, MatchesTheReferenceWithoutQLoraAndWithHalfSplitRope) {
  expect_matches_reference(testing::tiny_deepseek_config({{"q_lora_rank", nullptr}, {"rope_interleave", false}}), 23);
}

// DeepSeek-V3.2: the indexer on every layer (4 heads of 32 over the q latent), top-16 of a 70-token
// prompt, so rows past 16 attend to a real selection.
ModelConfig tiny_v32() {
  return testing::tiny_deepseek_config(
      {{"model_type", "deepseek_v32"}, {"index_n_heads", 4}, {"index_head_dim", 32}, {"index_topk", 16}});
}

TEST(DeepseekTransformerTest, V32MatchesTheReferenceOverItsSelection) { expect_matches_reference(tiny_v32(), 25); }

TEST(DeepseekTransformerTest, OneLatentCacheGroup) {
  const ModelConfig config = testing::tiny_deepseek_config();
  TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, 5);
  Model m = load(config, dir.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<CacheGroup>& groups = m.transformer->cache_groups();
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_FALSE(groups[0].is_state);
  EXPECT_EQ(groups[0].layers, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(groups[0].bytes_per_page, 64 * 3 * (32 + 8) * 4);  // [c ; k_r] per token and layer, fp32
}

// 70 tokens as chunks of 23 and 27 and then decode steps on other pages, against one whole step.
void expect_chunks_equal_whole(const ModelConfig& config) {
  TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, 7);
  Model m = load(config, dir.path());
  ASSERT_NE(m.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(70, config.vocab_size, 3);
  const std::vector<int32_t> table_a = {3, 7}, table_b = {1, 9};
  const std::vector<std::vector<float>> want = whole(*m.transformer, config, tokens, table_a);
  ASSERT_EQ(want.size(), 70u);
  int done = 0;
  for (int n : {23, 27}) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(done), static_cast<size_t>(n)), done, {table_b}, -1,
                      true};
    std::vector<float> logits;
    ASSERT_TRUE(m.transformer->forward(std::span(&step, 1), &logits).ok());
    EXPECT_LT(relative_l2(logits, want[static_cast<size_t>(done + n - 1)]), 1e-5) << "chunk ending at " << done + n;
    done += n;
  }
  for (; done < 70; ++done) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(done), 1), done, {table_b}, -1, true};
    std::vector<float> logits;
    ASSERT_TRUE(m.transformer->forward(std::span(&step, 1), &logits).ok());
    EXPECT_LT(relative_l2(logits, want[static_cast<size_t>(done)]), 1e-5) << "decode at " << done;
  }
}

TEST(DeepseekTransformerTest, ChunksAndDecodeStepsEqualOneWholeStep) {
  expect_chunks_equal_whole(testing::tiny_deepseek_config());
}

TEST(DeepseekTransformerTest, V32ChunksAndDecodeStepsEqualOneWholeStep) { expect_chunks_equal_whole(tiny_v32()); }

// The routed experts stored one tensor per expert and projection (mlp.experts.N.{gate,up,down}_proj,
// what transformers 5 writes and the hub holds) give the same logits as the stacked layout.
TEST(DeepseekTransformerTest, PerExpertCheckpointsLoadAsTheStackedLayout) {
  const ModelConfig config = testing::tiny_deepseek_config();
  TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kF32, 9);
  TempDir per_expert;
  testing::write_per_expert_checkpoint(dir.path(), per_expert.path(), 8, 20, 48);
  Model a = load(config, dir.path()), b = load(config, per_expert.path());
  ASSERT_NE(a.transformer, nullptr);
  ASSERT_NE(b.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(30, config.vocab_size, 9), table = {2};
  EXPECT_EQ(whole(*a.transformer, config, tokens, table), whole(*b.transformer, config, tokens, table));
}

// The FP8 twin of a checkpoint: every projection (rank 2 outside the norms, the embedding, lm_head and
// the router) and the stacked experts as e4m3 with fp32 scales per 16x16 block, quantized as
// transformers' Fp8Quantize does (scale = 448 / amax per block, stored inverted). Also writes the
// dequantized values in fp32 to `dequantized_dir`, the checkpoint the FP8 one must equal exactly.
void write_fp8_twin(const Checkpoint& source, const std::string& fp8_dir, const std::string& dequantized_dir) {
  constexpr int kBlock = 16;
  SafetensorsWriter fp8, dequantized;
  for (const std::string& name : source.tensor_names()) {
    auto view = source.tensor(name);
    ASSERT_TRUE(view.ok());
    std::vector<float> values = to_float32(*view);
    const bool quantize = (view->shape.size() == 3 || (view->shape.size() == 2 && name.find("norm") == std::string::npos &&
                                                         name != "model.embed_tokens.weight" && name != "lm_head.weight" &&
                                                         !name.ends_with("mlp.gate.weight")));
    if (!quantize) {
      ASSERT_TRUE(fp8.add_float(name, DType::kF32, view->shape, values).ok());
      ASSERT_TRUE(dequantized.add_float(name, DType::kF32, view->shape, values).ok());
      continue;
    }
    const int64_t rows = view->shape[view->shape.size() - 2], cols = view->shape.back();
    const int64_t batch = static_cast<int64_t>(values.size()) / (rows * cols);
    const int64_t scale_rows = (rows + kBlock - 1) / kBlock, scale_cols = (cols + kBlock - 1) / kBlock;
    std::vector<std::byte> bytes(values.size());
    std::vector<float> inverse(static_cast<size_t>(batch * scale_rows * scale_cols));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t br = 0; br < scale_rows; ++br) {
        for (int64_t bc = 0; bc < scale_cols; ++bc) {
          auto each = [&](auto&& f) {
            for (int64_t r = br * kBlock; r < std::min(rows, (br + 1) * kBlock); ++r) {
              for (int64_t c = bc * kBlock; c < std::min(cols, (bc + 1) * kBlock); ++c) f(static_cast<size_t>((b * rows + r) * cols + c));
            }
          };
          float amax = 0.0f;
          each([&](size_t i) { amax = std::max(amax, std::fabs(values[i])); });
          const float scale = amax > 0.0f ? 448.0f / amax : 1.0f;
          inverse[static_cast<size_t>((b * scale_rows + br) * scale_cols + bc)] = 1.0f / scale;
          each([&](size_t i) {
            bytes[i] = std::byte{cpu::fp8_e4m3_from_float(values[i] * scale)};
            values[i] = cpu::fp8_e4m3_to_float(static_cast<uint8_t>(bytes[i])) * (1.0f / scale);
          });
        }
      }
    }
    std::vector<int64_t> scale_shape(view->shape.begin(), view->shape.end() - 2);
    scale_shape.push_back(scale_rows);
    scale_shape.push_back(scale_cols);
    ASSERT_TRUE(fp8.add(name, DType::kFP8E4M3, view->shape, bytes).ok());
    ASSERT_TRUE(fp8.add_float(name + "_scale_inv", DType::kF32, scale_shape, inverse).ok());
    ASSERT_TRUE(dequantized.add_float(name, DType::kF32, view->shape, values).ok());
  }
  ASSERT_TRUE(fp8.write(fp8_dir + "/model.safetensors").ok());
  ASSERT_TRUE(dequantized.write(dequantized_dir + "/model.safetensors").ok());
}

// An FP8-stored checkpoint (block 16x16: the 20-, 40- and 24-wide weights end in partial blocks) equals
// its dequantized fp32 twin exactly, and stays within the FP8 budget of the original weights: e4m3 keeps
// 3 mantissa bits (about 2-3 % RMS rounding per weight), which over this model's ~10 chained products
// and its routing (a changed expert choice moves a token's output a lot) moves the logits by a median
// of about 8 % (budget 12 %) and keeps the greedy token at most positions (budget 32 of 40).
TEST(DeepseekTransformerTest, Fp8CheckpointLoadsDequantized) {
  const ModelConfig plain = testing::tiny_deepseek_config();
  const ModelConfig config = testing::tiny_deepseek_config(
      {{"quantization_config", {{"quant_method", "fp8"}, {"activation_scheme", "dynamic"}, {"fmt", "e4m3"},
                                {"weight_block_size", {16, 16}}}}});
  ASSERT_TRUE(config.fp8.has_value());
  TempDir dir, fp8_dir, dequantized_dir;
  testing::write_tiny_checkpoint(plain, dir.path(), DType::kF32, 31);
  {
    auto source = Checkpoint::open(dir.path());
    ASSERT_TRUE(source.ok());
    write_fp8_twin(**source, fp8_dir.path(), dequantized_dir.path());
  }
  Model original = load(plain, dir.path()), fp8 = load(config, fp8_dir.path()), twin = load(plain, dequantized_dir.path());
  ASSERT_NE(original.transformer, nullptr);
  ASSERT_NE(fp8.transformer, nullptr);
  ASSERT_NE(twin.transformer, nullptr);
  const std::vector<int32_t> tokens = random_tokens(40, config.vocab_size, 33), table = {1};
  const auto want = whole(*original.transformer, plain, tokens, table);
  const auto got = whole(*fp8.transformer, config, tokens, table);
  const auto exact = whole(*twin.transformer, plain, tokens, table);
  ASSERT_EQ(got.size(), want.size());
  int same_argmax = 0;
  std::vector<double> errors;
  for (size_t t = 0; t < got.size(); ++t) {
    EXPECT_LT(relative_l2(got[t], exact[t]), 1e-6) << "position " << t;
    errors.push_back(relative_l2(got[t], want[t]));
    same_argmax += std::max_element(got[t].begin(), got[t].end()) - got[t].begin() ==
                   std::max_element(want[t].begin(), want[t].end()) - want[t].begin();
  }
  std::sort(errors.begin(), errors.end());
  EXPECT_LT(errors[errors.size() / 2], 0.12) << "median relative L2 against the original weights";
  EXPECT_GT(errors[errors.size() / 2], 1e-3) << "the FP8 rounding must show (else the test compares nothing)";
  EXPECT_GE(same_argmax, 32) << "of 40 positions";
  std::printf("fp8 vs original: median relative L2 %.4f, max %.4f, greedy token kept at %d of 40\n",
              errors[errors.size() / 2], errors.back(), same_argmax);

  // Without quantization_config the e4m3 tensors cannot be read.
  Model unscaled;
  auto checkpoint = Checkpoint::open(fp8_dir.path());
  ASSERT_TRUE(checkpoint.ok());
  std::unique_ptr<Backend> cpu = std::move(create_backend("cpu")).value();
  RuntimeOptions options;
  options.num_kv_pages = 4;
  auto refused = Transformer::load(plain, **checkpoint, *cpu, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("quantization_config"), std::string::npos) << refused.status().to_string();
}

}  // namespace
}  // namespace longbow
