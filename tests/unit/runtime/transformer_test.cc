// The runtime on tiny random checkpoints: against a dense fp64 reference of the same model, and a
// batch mixing prefill chunks and decode tokens of several sequences against each sequence alone.
#include "model/runtime/transformer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>

#include "tests/unit/runtime/tiny_model.h"
#include "tools/demo_model/demo_indexer.h"

namespace longbow {
namespace {

using testing::reference_logits;
using testing::random_tokens;
using testing::TempDir;
using testing::tiny_config;
using testing::TinyFamily;
using testing::with_dsa;
using testing::write_tiny_checkpoint;
using testing::write_tiny_tensors;

double relative_l2(const float* a, const std::vector<double>& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::isnan(diff) ? INFINITY : std::sqrt(diff / norm);
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
                      begin, {table}, -1, true};
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
                        {seqs[s].table}, -1, true};
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
                       done[s], {seqs[s].table}, -1, want});
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
                                           FamilyCase{"MistralF32", TinyFamily::kMistral, DType::kF32},
                                           FamilyCase{"LlamaDsaBf16", TinyFamily::kLlamaDsa, DType::kBF16}),
                         [](const ::testing::TestParamInfo<FamilyCase>& param_info) { return param_info.param.name; });

// The demo model the build writes (target demo_model): a 4-layer llama with llama3 RoPE, DSA
// (index_topk 64) on layers 1-3, so the 150-token reference check exercises real selection.
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

// The DSA demo model's tests: 6 KV pages (384 tokens), one sequence of up to 320 tokens a step.
RuntimeOptions demo_dsa_options() {
  RuntimeOptions options;
  options.num_kv_pages = 6;
  options.max_batched_tokens = 320;
  options.max_num_seqs = 1;
  return options;
}

// The demo model's indexer (tools/demo_model/demo_indexer.h) scores every marker token far above 0
// and every other token exactly 0, so each row's top-k is every marker of its context, then the
// non-markers of lowest position. This is what lets the bf16 CUDA backend select, and decode, like
// the CPU (runtime_parity on the GPU); here the CPU's own selections are checked against that rule
// on every row of a sparse prefill of 300 tokens and of 12 decode steps after it.
TEST(DemoModel, IndexerSelectsEveryMarkerThenTheEarliestTokens) {
  auto config = load_model_config(demo_model_dir());
  ASSERT_TRUE(config.ok()) << config.status().to_string() << " (build the demo_model target)";
  ASSERT_TRUE(config->dsa.has_value());
  const int topk = config->dsa->topk;
  auto model = load_model(*config, demo_model_dir(), demo_dsa_options());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  auto embedding = model->checkpoint->tensor("model.embed_tokens.weight");
  ASSERT_TRUE(embedding.ok());
  const std::vector<float> table_values = to_float32(*embedding);
  const auto hidden = static_cast<size_t>(config->hidden_size);
  auto is_marker = [&](int32_t token) {
    return table_values[static_cast<size_t>(token) * hidden + demo::kIndexMarkerDim] > 0.0f;
  };

  std::vector<int32_t> tokens = random_tokens(300, config->vocab_size, 21);
  std::vector<int32_t> table(6);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(table.size() - 1 - i);
  int markers_seen = 0, rows_checked = 0;
  for (int step = 0; step < 13; ++step) {
    const int begin = step == 0 ? 0 : static_cast<int>(tokens.size()) - 1;
    SequenceStep s{std::span(tokens).subspan(static_cast<size_t>(begin)), begin, {table}, -1, true};
    std::vector<float> logits;
    ASSERT_TRUE(model->transformer->forward(std::span(&s, 1), &logits).ok());
    std::vector<int32_t> selection;
    ASSERT_TRUE(model->transformer->read_dsa_selection(&selection).ok());
    const int rows = static_cast<int>(tokens.size()) - begin;
    ASSERT_EQ(selection.size(), static_cast<size_t>(rows) * static_cast<size_t>(topk));
    for (int r = 0; r < rows; ++r) {
      const int context = begin + r + 1;
      std::vector<int32_t> want, fill;
      for (int32_t p = 0; p < context; ++p) (is_marker(tokens[static_cast<size_t>(p)]) ? want : fill).push_back(p);
      ASSERT_LT(want.size(), static_cast<size_t>(topk)) << "more markers than index_topk: the rule does not hold";
      markers_seen = std::max(markers_seen, static_cast<int>(want.size()));
      for (size_t i = 0; i < fill.size() && want.size() < static_cast<size_t>(topk); ++i) want.push_back(fill[i]);
      std::vector<int32_t> got(selection.begin() + static_cast<ptrdiff_t>(r) * topk,
                               selection.begin() + static_cast<ptrdiff_t>(r + 1) * topk);
      std::erase(got, -1);
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      ASSERT_EQ(got, want) << "row at context " << context;
      ++rows_checked;
    }
    tokens.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  EXPECT_EQ(rows_checked, 312);
  EXPECT_GT(markers_seen, 2) << "the prompt should hold several markers";
}

// A step whose every context fits in index_topk selects every token: the layers attend densely
// and there is no selection to read (NOT_FOUND); one token more and the step selects again.
TEST(DemoModel, StepsWithinIndexTopkAttendDenselyWithoutASelection) {
  auto config = load_model_config(demo_model_dir());
  ASSERT_TRUE(config.ok()) << config.status().to_string() << " (build the demo_model target)";
  ASSERT_TRUE(config->dsa.has_value());
  const int topk = config->dsa->topk;
  ASSERT_LT(topk + 1, demo_dsa_options().max_batched_tokens);
  auto model = load_model(*config, demo_model_dir(), demo_dsa_options());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  std::vector<int32_t> tokens = random_tokens(topk + 1, config->vocab_size, 5);
  std::vector<int32_t> table(6);
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
  std::vector<float> logits;
  std::vector<int32_t> selection;
  SequenceStep within{std::span(tokens).first(static_cast<size_t>(topk)), 0, {table}, -1, true};
  ASSERT_TRUE(model->transformer->forward(std::span(&within, 1), &logits).ok());
  EXPECT_EQ(model->transformer->read_dsa_selection(&selection).code(), StatusCode::kNotFound);
  SequenceStep past{std::span(tokens).last(1), topk, {table}, -1, true};
  ASSERT_TRUE(model->transformer->forward(std::span(&past, 1), &logits).ok());
  ASSERT_TRUE(model->transformer->read_dsa_selection(&selection).ok());
  EXPECT_EQ(selection.size(), static_cast<size_t>(topk));
  EXPECT_EQ(std::count(selection.begin(), selection.end(), -1), 0) << "context topk + 1 fills every slot";
}

// ---- DSA layers (DESIGN §3-§4) ----

// The logits of `steps` (chunks of one sequence: [begin, end) token ranges) on `model`; one row per
// chunk (the chunk's last token).
std::vector<std::vector<float>> run_chunks(Transformer& model, const std::vector<int32_t>& tokens,
                                           const std::vector<std::pair<int, int>>& chunks) {
  std::vector<int32_t> table(static_cast<size_t>(model.num_kv_pages()));
  for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(table.size() - 1 - i);  // scattered
  std::vector<std::vector<float>> rows;
  for (const auto& [begin, end] : chunks) {
    SequenceStep step{std::span(tokens).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)), begin,
                      {table}, -1, true};
    std::vector<float> logits;
    Status st = model.forward(std::span(&step, 1), &logits);
    EXPECT_TRUE(st.ok()) << st.to_string();
    rows.push_back(std::move(logits));
  }
  return rows;
}

double max_relative_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    norm = std::max(norm, static_cast<double>(std::fabs(b[i])));
  }
  return a.size() == b.size() && !a.empty() ? diff / norm : INFINITY;
}

// Prefill 64 + 50 tokens, then decode to 150: the chunk boundaries of check_against_reference.
const std::vector<std::pair<int, int>> kChunksThenDecode = [] {
  std::vector<std::pair<int, int>> chunks = {{0, 64}, {64, 114}};
  for (int t = 114; t < 150; ++t) chunks.emplace_back(t, t + 1);
  return chunks;
}();

RuntimeOptions dsa_options(DsaPrefillMode mode = DsaPrefillMode::kSparse) {
  RuntimeOptions options;
  options.num_kv_pages = 4;
  options.max_batched_tokens = 160;
  options.max_num_seqs = 2;
  options.dsa_prefill = mode;
  return options;
}

TEST(DsaTransformer, TopkCoveringTheContextEqualsTheModelWithoutIndexer) {
  // Same seed: the non-indexer weights are identical (write_tiny_tensors draws indexer tensors last).
  ModelConfig dense_config = tiny_config(TinyFamily::kLlama);
  ModelConfig dsa_config = with_dsa(dense_config, 256);  // >= every context below: selects every token
  TempDir dense_dir, dsa_dir;
  write_tiny_checkpoint(dense_config, dense_dir.path(), DType::kBF16, 11);
  write_tiny_checkpoint(dsa_config, dsa_dir.path(), DType::kBF16, 11);
  auto dense = load_model(dense_config, dense_dir.path(), dsa_options());
  auto dsa = load_model(dsa_config, dsa_dir.path(), dsa_options());
  ASSERT_TRUE(dense.ok()) << dense.status().to_string();
  ASSERT_TRUE(dsa.ok()) << dsa.status().to_string();
  const std::vector<int32_t> tokens = random_tokens(150, dense_config.vocab_size, 5);
  auto want = run_chunks(*dense->transformer, tokens, kChunksThenDecode);
  auto got = run_chunks(*dsa->transformer, tokens, kChunksThenDecode);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_LT(max_relative_diff(got[i], want[i]), 1e-5) << "chunk " << i;
}

TEST(DsaTransformer, SmallTopkSelectsLikeTheReferenceOnADenseAndADsaLayer) {
  // Layer 0 dense, layer 1 DSA with index_topk 16 over contexts up to 150.
  ModelConfig config = with_dsa(tiny_config(TinyFamily::kLlama), 16);
  TempDir dir, dense_dir;
  write_tiny_tensors(expected_tensors(config, {false, true}), dir.path(), DType::kF32, 12);
  ModelConfig dense_config = tiny_config(TinyFamily::kLlama);
  write_tiny_checkpoint(dense_config, dense_dir.path(), DType::kF32, 12);
  auto model = load_model(config, dir.path(), dsa_options());
  auto dense = load_model(dense_config, dense_dir.path(), dsa_options());
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  ASSERT_TRUE(dense.ok()) << dense.status().to_string();
  std::vector<uint8_t> bytes;
  EXPECT_EQ(model->transformer->read_index_cache(0, &bytes).code(), StatusCode::kNotFound);  // dense layer
  EXPECT_TRUE(model->transformer->read_index_cache(1, &bytes).ok());

  const std::vector<int32_t> tokens = random_tokens(150, config.vocab_size, 6);
  auto got = run_chunks(*model->transformer, tokens, kChunksThenDecode);
  auto dense_logits = run_chunks(*dense->transformer, tokens, kChunksThenDecode);
  std::vector<std::vector<double>> want = reference_logits(config, *model->checkpoint, tokens);
  for (size_t i = 0; i < got.size(); ++i) {
    const int pos = kChunksThenDecode[i].second - 1;
    // fp32 runtime vs the double reference with the same FP8 selection: the dense tests' budget.
    EXPECT_LT(relative_l2(got[i].data(), want[static_cast<size_t>(pos)]), 1e-5) << "position " << pos;
    // Every position here is past index_topk: the selection is really used.
    EXPECT_GT(max_relative_diff(got[i], dense_logits[i]), 1e-2) << "position " << pos;
  }
}

TEST(DsaTransformer, ChunkedPrefillAndRowBlocksEqualOneShotPrefill) {
  ModelConfig config = tiny_config(TinyFamily::kLlamaDsa);
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), DType::kBF16, 13);
  RuntimeOptions blocked = dsa_options();
  blocked.dsa_logits_budget_bytes = 4096;  // 6 rows of 152 logits: the 150-row prefill runs in 25 blocks
  auto one_shot = load_model(config, dir.path(), dsa_options());
  auto chunked = load_model(config, dir.path(), dsa_options());
  auto in_blocks = load_model(config, dir.path(), blocked);
  ASSERT_TRUE(one_shot.ok() && chunked.ok() && in_blocks.ok());
  const std::vector<int32_t> tokens = random_tokens(160, config.vocab_size, 7);
  std::vector<std::pair<int, int>> whole = {{0, 150}}, chunks = {{0, 40}, {40, 80}, {80, 107}, {107, 150}};
  for (int t = 150; t < 160; ++t) {
    whole.emplace_back(t, t + 1);
    chunks.emplace_back(t, t + 1);
  }
  auto want = run_chunks(*one_shot->transformer, tokens, whole);
  auto got = run_chunks(*chunked->transformer, tokens, chunks);
  auto got_blocks = run_chunks(*in_blocks->transformer, tokens, whole);
  ASSERT_EQ(got.size(), want.size() + 3);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_LT(max_relative_diff(got[i + 3], want[i]), 1e-5) << "step " << i;
    EXPECT_EQ(got_blocks[i], want[i]) << "step " << i;  // rows are scored independently: bit for bit
  }
}

TEST(DsaTransformer, DensePrefillWritesTheSameIndexKeysAndAttendsDensely) {
  ModelConfig config = tiny_config(TinyFamily::kLlamaDsa);
  ModelConfig dense_config = tiny_config(TinyFamily::kLlama);
  TempDir dir, dense_dir;
  write_tiny_checkpoint(config, dir.path(), DType::kBF16, 14);
  write_tiny_checkpoint(dense_config, dense_dir.path(), DType::kBF16, 14);
  auto sparse = load_model(config, dir.path(), dsa_options(DsaPrefillMode::kSparse));
  auto dense_mode = load_model(config, dir.path(), dsa_options(DsaPrefillMode::kDense));
  auto no_indexer = load_model(dense_config, dense_dir.path(), dsa_options());
  ASSERT_TRUE(sparse.ok() && dense_mode.ok() && no_indexer.ok());
  const std::vector<int32_t> tokens = random_tokens(151, config.vocab_size, 8);
  const std::vector<std::pair<int, int>> prefill_then_decode = {{0, 150}, {150, 151}};
  auto sparse_logits = run_chunks(*sparse->transformer, tokens, prefill_then_decode);
  auto dense_logits = run_chunks(*dense_mode->transformer, tokens, prefill_then_decode);
  auto no_indexer_logits = run_chunks(*no_indexer->transformer, tokens, {{0, 150}});
  // The prefill attends densely: exactly the model without indexer (the same paged attention).
  EXPECT_EQ(dense_logits[0], no_indexer_logits[0]);
  EXPECT_GT(max_relative_diff(dense_logits[0], sparse_logits[0]), 1e-2);

  // Index keys of all 151 tokens in both modes. Layer 0 reads the embeddings in both, so its keys
  // are identical bit for bit; layer 1 reads what layer 0's (dense vs sparse) attention made.
  std::vector<uint8_t> sparse_keys, dense_keys;
  const size_t page_bytes = 64 * (32 + 4);
  const int pages = dense_mode->transformer->num_kv_pages();
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    ASSERT_TRUE(sparse->transformer->read_index_cache(layer, &sparse_keys).ok());
    ASSERT_TRUE(dense_mode->transformer->read_index_cache(layer, &dense_keys).ok());
    ASSERT_EQ(dense_keys.size(), static_cast<size_t>(pages) * page_bytes);
    if (layer == 0) {
      EXPECT_EQ(dense_keys, sparse_keys);
    }
    for (int t = 0; t < 151; ++t) {  // a written key has a power-of-two scale > 0 (the pool starts zeroed)
      const size_t page = static_cast<size_t>(pages - 1 - t / 64);  // run_chunks' table
      float scale = 0.0f;
      std::memcpy(&scale, dense_keys.data() + page * page_bytes + 64 * 32 + 4 * static_cast<size_t>(t % 64), 4);
      EXPECT_GT(scale, 0.0f) << "layer " << layer << " token " << t;
    }
  }
}

TEST(DsaTransformer, RejectsIncompleteIndexersAndMissingConfigKeys) {
  ModelConfig config = tiny_config(TinyFamily::kLlamaDsa);
  RuntimeOptions options = dsa_options();
  {  // layer 1 lacks its k_norm bias
    std::vector<TensorSpec> specs = expected_tensors(config);
    std::erase_if(specs, [](const TensorSpec& s) { return s.name == "model.layers.1.self_attn.indexer.k_norm.bias"; });
    TempDir dir;
    write_tiny_tensors(specs, dir.path(), DType::kBF16, 1);
    auto m = load_model(config, dir.path(), options);
    EXPECT_EQ(m.status().code(), StatusCode::kNotFound) << m.status().to_string();
    EXPECT_NE(m.status().message().find("model.layers.1.self_attn.indexer.k_norm.bias"), std::string::npos)
        << m.status().to_string();
  }
  TempDir dir;
  write_tiny_checkpoint(config, dir.path(), DType::kBF16, 1);
  ModelConfig no_keys = config;
  no_keys.dsa.reset();
  auto m = load_model(no_keys, dir.path(), options);
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument) << m.status().to_string();
  EXPECT_NE(m.status().message().find("index_n_heads"), std::string::npos) << m.status().to_string();

  TempDir dense_dir;
  write_tiny_checkpoint(tiny_config(TinyFamily::kLlama), dense_dir.path(), DType::kBF16, 1);
  auto none = load_model(config, dense_dir.path(), options);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound) << none.status().to_string();

  ModelConfig misshapen = config;
  misshapen.dsa->n_heads = 8;  // the checkpoint's wq has 4 heads
  auto wrong = load_model(misshapen, dir.path(), options);
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument) << wrong.status().to_string();
  EXPECT_NE(wrong.status().message().find("indexer.wq.weight"), std::string::npos) << wrong.status().to_string();
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
  SequenceStep too_many{tokens, 0, {table}, -1, true};
  EXPECT_EQ(model->transformer->forward(std::span(&too_many, 1), &logits).code(), StatusCode::kInvalidArgument);
  SequenceStep too_long{std::span(tokens).first(2), 99, {table}, -1, true};
  EXPECT_EQ(model->transformer->forward(std::span(&too_long, 1), &logits).code(), StatusCode::kOutOfRange);
  SequenceStep fine{std::span(tokens).first(2), 0, {table}, -1, true};
  EXPECT_TRUE(model->transformer->forward(std::span(&fine, 1), &logits).ok());
  EXPECT_EQ(logits.size(), static_cast<size_t>(config.vocab_size));
}

}  // namespace
}  // namespace longbow
