// Decode CUDA graphs on the GPU: the capture API of CudaBackend, and the runtime's graph decode path
// against the same steps run eagerly, on a tiny random model and on the demo model.
//
//   longbow_decode_graph_tests [--demo-model DIR] [gtest flags]   (default DIR: <exe dir>/data/demo-model)
//
// The demo model is a DSA model (index_topk 64, one dense layer): its decode steps are captured
// too, and a second scenario keeps every context past index_topk.
//
// Runtime cases run one multi-step scenario (tests/unit/runtime/decode_scenario.h: prefills, then
// decode steps of 1, 3, 5, 8, 13, ... sequences whose membership, order, block tables and contexts
// change every step, contexts crossing page boundaries) three times:
//   graphs  — CUDA graphs on (each bucket captured on first use, replayed after);
//   padded  — graphs off, decode steps padded to the same buckets and run eagerly (the launches a
//             graph records): logits must be bitwise equal to `graphs`;
//   eager   — graphs off, no padding (--enforce-eager): the GEMMs see S rows instead of the bucket's,
//             so cuBLAS may pick another kernel for that M and round differently; budget: relative L2
//             <= 1e-2 per step (DESIGN §6 bf16) and every step's argmax equal unless a near-tie.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/logging.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/decode_graphs.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"
#include "tests/unit/runtime/decode_scenario.h"
#include "tests/unit/runtime/sampling_check.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

std::string g_demo_model;  // set by main
constexpr int kMaxSeqs = 16;

std::unique_ptr<Backend> cuda_backend() {
  auto backend = create_backend("cuda");
  EXPECT_TRUE(backend.ok()) << backend.status().to_string();
  return backend.ok() ? std::move(backend).value() : nullptr;
}

std::vector<uint16_t> random_bf16(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<uint16_t> out(n);
  for (uint16_t& v : out) {
    float f = dist(rng);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    v = static_cast<uint16_t>(bits >> 16);
  }
  return out;
}

// A captured rms_norm replays with the input values present at replay time, and gives the eager result.
TEST(CudaGraphCapture, ReplayReadsCurrentInputs) {
  auto backend = cuda_backend();
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->supports_graphs());
  const int rows = 5, cols = 200;
  auto x = backend->allocate(DType::kBF16, {rows, cols});
  auto w = backend->allocate(DType::kBF16, {cols});
  auto out = backend->allocate(DType::kBF16, {rows, cols});
  auto eager_out = backend->allocate(DType::kBF16, {rows, cols});
  ASSERT_TRUE(x.ok() && w.ok() && out.ok() && eager_out.ok());
  const std::vector<uint16_t> weights = random_bf16(cols, 1);
  ASSERT_TRUE(backend->upload(weights.data(), *w).ok());
  auto graph = backend->capture_graph([&] { return backend->rms_norm(*x, *w, 1e-5f, *out); });
  ASSERT_TRUE(graph.ok()) << graph.status().to_string();
  for (uint32_t round = 0; round < 3; ++round) {
    const std::vector<uint16_t> input = random_bf16(rows * cols, 10 + round);
    const std::vector<uint16_t> poison(rows * cols, 0x7fc0);  // NaN
    ASSERT_TRUE(backend->upload(input.data(), *x).ok());
    ASSERT_TRUE(backend->upload(poison.data(), *out).ok());
    ASSERT_TRUE((*graph)->replay().ok());
    ASSERT_TRUE(backend->rms_norm(*x, *w, 1e-5f, *eager_out).ok());
    std::vector<uint16_t> got(rows * cols), want(rows * cols);
    ASSERT_TRUE(backend->download(*out, got.data()).ok());
    ASSERT_TRUE(backend->download(*eager_out, want.data()).ok());
    ASSERT_EQ(got, want) << "round " << round;
  }
}

// A capture that synchronises, or whose callable fails, reports an error, and the backend keeps working.
TEST(CudaGraphCapture, FailedCaptureLeavesTheBackendUsable) {
  auto backend = cuda_backend();
  ASSERT_NE(backend, nullptr);
  auto x = backend->allocate(DType::kBF16, {4, 64});
  auto w = backend->allocate(DType::kBF16, {64});
  ASSERT_TRUE(x.ok() && w.ok());
  auto synced = backend->capture_graph([&]() -> Status {
    RETURN_IF_ERROR(backend->rms_norm(*x, *w, 1e-5f, *x));
    return backend->synchronize();
  });
  EXPECT_FALSE(synced.ok());
  auto failing = backend->capture_graph([&]() -> Status { return invalid_argument("refused on purpose"); });
  ASSERT_FALSE(failing.ok());
  EXPECT_NE(failing.status().to_string().find("refused on purpose"), std::string::npos);
  auto bad_shape = backend->capture_graph([&] { return backend->rms_norm(*x, *x, 1e-5f, *x); });
  EXPECT_FALSE(bad_shape.ok());
  const std::vector<uint16_t> input = random_bf16(4 * 64, 3), weights = random_bf16(64, 4);
  ASSERT_TRUE(backend->upload(input.data(), *x).ok());
  ASSERT_TRUE(backend->upload(weights.data(), *w).ok());
  ASSERT_TRUE(backend->rms_norm(*x, *w, 1e-5f, *x).ok());
  std::vector<uint16_t> got(4 * 64);
  ASSERT_TRUE(backend->download(*x, got.data()).ok());
  auto ok_graph = backend->capture_graph([&] { return backend->rms_norm(*x, *w, 1e-5f, *x); });
  EXPECT_TRUE(ok_graph.ok()) << ok_graph.status().to_string();
}

enum class Mode { kGraphs, kPadded, kEager };
const char* mode_name(Mode m) { return m == Mode::kGraphs ? "graphs" : m == Mode::kPadded ? "padded" : "eager"; }

struct ModeRun {
  std::vector<testing::ScenarioStep> steps;
  int graphs = 0;          // captured after the scenario
  int graphs_at_load = 0;  // captured when load() returned
};

ModeRun run_mode(const ModelConfig& config, const std::string& dir, const testing::DecodeScenario& scenario,
                 Mode mode) {
  ModeRun out;
  auto checkpoint = Checkpoint::open(dir);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  auto backend = cuda_backend();
  if (!checkpoint.ok() || backend == nullptr) return out;
  RuntimeOptions options;
  options.num_kv_pages = testing::decode_scenario_pages(scenario) + 5;
  options.max_batched_tokens = 512;
  options.max_num_seqs = kMaxSeqs;
  options.enable_cuda_graphs = mode == Mode::kGraphs;
  options.pad_decode_steps = mode == Mode::kPadded;
  auto model = Transformer::load(config, **checkpoint, *backend, options);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return out;
  out.graphs_at_load = (*model)->num_decode_graphs();
  auto steps = testing::run_decode_scenario(**model, scenario);
  EXPECT_TRUE(steps.ok()) << mode_name(mode) << ": " << steps.status().to_string();
  if (steps.ok()) out.steps = std::move(steps).value();
  out.graphs = (*model)->num_decode_graphs();
  return out;
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (static_cast<double>(got[i]) - want[i]) * (static_cast<double>(got[i]) - want[i]);
    norm += static_cast<double>(want[i]) * want[i];
  }
  return std::isfinite(diff) && norm > 0 ? std::sqrt(diff / norm) : INFINITY;
}

void check_scenario(const ModelConfig& config, const std::string& dir, const testing::DecodeScenario& scenario) {
  ModeRun graphs = run_mode(config, dir, scenario, Mode::kGraphs);
  ModeRun padded = run_mode(config, dir, scenario, Mode::kPadded);
  ModeRun eager = run_mode(config, dir, scenario, Mode::kEager);
  ASSERT_FALSE(graphs.steps.empty());
  ASSERT_EQ(graphs.steps.size(), padded.steps.size());
  ASSERT_EQ(graphs.steps.size(), eager.steps.size());
  // Every bucket is captured at load (DSA models included), before the first step, and no step
  // captures another.
  const int expected_graphs = static_cast<int>(decode_graph_buckets(kMaxSeqs).size());
  EXPECT_EQ(graphs.graphs_at_load, expected_graphs) << "graphs captured at load (a failed capture runs eagerly)";
  EXPECT_EQ(graphs.graphs, expected_graphs);
  EXPECT_EQ(padded.graphs, 0);
  const auto vocab = static_cast<size_t>(config.vocab_size);
  int decode_steps = 0, bitwise_vs_eager = 0;
  double worst_vs_eager = 0.0;
  for (size_t i = 0; i < graphs.steps.size(); ++i) {
    const testing::ScenarioStep& g = graphs.steps[i];
    ASSERT_EQ(g.logits.size(), static_cast<size_t>(g.num_seqs) * vocab) << "step " << i;
    for (float v : g.logits) ASSERT_TRUE(std::isfinite(v)) << "step " << i;
    ASSERT_EQ(g.logits, padded.steps[i].logits) << "graphs vs padded eager, step " << i << " (" << g.num_seqs
                                                << " sequences)";
    const std::vector<float>& e = eager.steps[i].logits;
    const double err = relative_l2(g.logits, e);
    EXPECT_LE(err, 1e-2) << "graphs vs eager, step " << i;
    for (size_t r = 0; r < static_cast<size_t>(g.num_seqs); ++r) {
      auto row_g = g.logits.begin() + static_cast<std::ptrdiff_t>(r * vocab);
      auto row_e = e.begin() + static_cast<std::ptrdiff_t>(r * vocab);
      const auto arg_g = std::max_element(row_g, row_g + static_cast<std::ptrdiff_t>(vocab)) - row_g;
      const auto arg_e = std::max_element(row_e, row_e + static_cast<std::ptrdiff_t>(vocab)) - row_e;
      if (arg_g != arg_e) {  // allowed only as a near-tie in the eager logits
        EXPECT_LT(row_e[arg_e] - row_e[arg_g], 0.05f) << "step " << i << " row " << r;
      }
    }
    if (g.decode) {
      ++decode_steps;
      worst_vs_eager = std::max(worst_vs_eager, err);
      bitwise_vs_eager += g.logits == e ? 1 : 0;
    }
  }
  std::printf("[ graphs ] %s: %d decode steps, graphs captured %d; bitwise equal to padded eager: all; vs unpadded "
              "eager: %d/%d bitwise, worst relative L2 %.3g\n",
              config.model_type.c_str(), decode_steps, graphs.graphs, bitwise_vs_eager, decode_steps, worst_vs_eager);
}

testing::DecodeScenario scenario_for(int max_prompt) {
  testing::DecodeScenario s;
  s.prompt_lens = {60, 3, 127, 64, 90, 1, 33, 62, 200, 129, 5, 70, 191};
  for (int& len : s.prompt_lens) len = std::min(len, max_prompt);
  s.batch_sizes = {1, 3, 5, 8, 13, 1, 13, 3, 8, 5};
  s.decode_steps = 30;  // several replays per bucket; contexts cross 64, 128, 192, 256
  s.seed = 5;
  return s;
}

class TinyModelGraphs : public ::testing::TestWithParam<testing::TinyFamily> {};

TEST_P(TinyModelGraphs, GraphsEqualPaddedEagerAndMatchEager) {
  ModelConfig config = testing::tiny_config(GetParam());
  config.head_dim = 64;  // the CUDA kernels' head dims are 64 and 128
  config.rope.rotary_dim = 64;
  testing::TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kBF16, 17);
  check_scenario(config, dir.path(), scenario_for(1000));
}

INSTANTIATE_TEST_SUITE_P(Families, TinyModelGraphs,
                         ::testing::Values(testing::TinyFamily::kQwen2, testing::TinyFamily::kMistral,
                                           testing::TinyFamily::kQwen3));

TEST(DemoModelGraphs, GraphsEqualPaddedEagerAndMatchEager) {
  ASSERT_TRUE(std::filesystem::exists(g_demo_model + "/config.json")) << "no demo model at " << g_demo_model;
  auto config = load_model_config(g_demo_model);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  check_scenario(*config, g_demo_model, scenario_for(1000));
}

// The DSA demo model with every context past its index_topk (64), so that every decode step's
// top-k really selects (and padding rows of context 0 run beside real ones): batch sizes 1, 3, 5
// and 8 (buckets 1, 4, 8), 30 decode steps, contexts crossing page boundaries.
TEST(DemoModelGraphs, DsaDecodeWithRealSelection) {
  ASSERT_TRUE(std::filesystem::exists(g_demo_model + "/config.json")) << "no demo model at " << g_demo_model;
  auto config = load_model_config(g_demo_model);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  ASSERT_TRUE(config->dsa.has_value()) << "the demo model has no DSA indexer";
  testing::DecodeScenario s;
  s.prompt_lens = {100, 65, 130, 200, 77, 150, 90, 181};
  for (int len : s.prompt_lens) ASSERT_GT(len, config->dsa->topk);
  s.batch_sizes = {1, 3, 5, 8};
  s.decode_steps = 30;
  s.seed = 9;
  check_scenario(*config, g_demo_model, s);
}

// Sampling on the device through the runtime (Transformer::forward_sample: the sample op after a
// decode graph's replay, or after an eager step), checked step by step by testing::SamplingCheck.
void check_device_sampling(const ModelConfig& config, const std::string& dir, Mode mode) {
  auto checkpoint = Checkpoint::open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  auto backend = cuda_backend();
  ASSERT_NE(backend, nullptr);
  const testing::DecodeScenario scenario = scenario_for(300);
  RuntimeOptions options;
  options.num_kv_pages = testing::decode_scenario_pages(scenario) + 5;
  options.max_batched_tokens = 512;
  options.max_num_seqs = kMaxSeqs;
  options.enable_cuda_graphs = mode == Mode::kGraphs;
  auto model = Transformer::load(config, **checkpoint, *backend, options);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  SamplingRow probe;
  ASSERT_TRUE((*model)->supports_sampling(probe));
  testing::SamplingCheck check(**model);
  auto steps = testing::run_decode_scenario(check, scenario);
  ASSERT_TRUE(steps.ok()) << steps.status().to_string();
  EXPECT_GT(check.rows_checked_, 100u);
  EXPECT_LE(check.knife_edges_, 2);
  if (mode == Mode::kGraphs) {
    EXPECT_GT((*model)->num_decode_graphs(), 0);
  }
  std::printf("[ sample ] %s %s: %llu rows sampled on the device and on the host, %d knife edges skipped\n",
              config.model_type.c_str(), mode_name(mode), static_cast<unsigned long long>(check.rows_checked_),
              check.knife_edges_);
}

TEST(DeviceSampling, RuntimeSamplesLikeTheHostWithGraphsAndEagerly) {
  ModelConfig config = testing::tiny_config(testing::TinyFamily::kQwen3);
  config.head_dim = 64;
  config.rope.rotary_dim = 64;
  testing::TempDir dir;
  testing::write_tiny_checkpoint(config, dir.path(), DType::kBF16, 23);
  check_device_sampling(config, dir.path(), Mode::kGraphs);
  check_device_sampling(config, dir.path(), Mode::kEager);
}

TEST(DeviceSampling, DemoModelSamplesLikeTheHostWithGraphs) {
  ASSERT_TRUE(std::filesystem::exists(g_demo_model + "/config.json")) << "no demo model at " << g_demo_model;
  auto config = load_model_config(g_demo_model);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  check_device_sampling(*config, g_demo_model, Mode::kGraphs);
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  longbow::init_logging("warn");
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  longbow::g_demo_model = (exe.parent_path() / "data" / "demo-model").string();
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--demo-model") longbow::g_demo_model = argv[i + 1];
  }
  return RUN_ALL_TESTS();
}
