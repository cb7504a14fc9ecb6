// `--load-format dummy` on the CPU backend (every expected tensor filled with its distribution,
// deterministic by seed, finite logits through many layers) and the memory plan of Transformer::load
// against a CPU backend with a small injected memory limit.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/dummy_weights.h"
#include "model/runtime/model_weights.h"
#include "model/runtime/transformer.h"
#include "tests/unit/runtime/tiny_model.h"

namespace longbow {
namespace {

using testing::tiny_config;
using testing::TinyFamily;

std::vector<float> host_values(Backend& backend, const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  EXPECT_TRUE(backend.download(t, out.data()).ok());
  return out;
}

TEST(DummyWeights, EveryExpectedTensorIsFilledWithItsDistribution) {
  for (TinyFamily family : {TinyFamily::kLlama, TinyFamily::kQwen2, TinyFamily::kQwen3}) {
    ModelConfig config = tiny_config(family);
    std::unique_ptr<Backend> backend = create_cpu_backend();
    const std::vector<TensorSpec> specs = expected_tensors(config);
    auto tensors = load_weight_tensors(specs, WeightSource::dummy(3), *backend);
    ASSERT_TRUE(tensors.ok()) << tensors.status().to_string();
    ASSERT_EQ(tensors->size(), specs.size());
    for (const TensorSpec& spec : specs) {
      SCOPED_TRACE(spec.name);
      auto it = tensors->find(spec.name);
      ASSERT_NE(it, tensors->end());
      ASSERT_EQ(static_cast<size_t>(it->second.rank), spec.shape.size());
      for (size_t d = 0; d < spec.shape.size(); ++d) EXPECT_EQ(it->second.dim(static_cast<int>(d)), spec.shape[d]);
      const std::vector<float> v = host_values(*backend, it->second);
      const DummyInit init = dummy_init(spec);
      double sum = 0.0, squares = 0.0;
      for (float x : v) {
        ASSERT_GE(x, init.mean - std::sqrt(3.0f) * init.std - 1e-6f);
        ASSERT_LE(x, init.mean + std::sqrt(3.0f) * init.std + 1e-6f);
        sum += x;
      }
      const double n = static_cast<double>(v.size());
      const double mean = sum / n;
      for (float x : v) squares += (x - mean) * (x - mean);
      const double std = std::sqrt(squares / n);
      EXPECT_NEAR(mean, init.mean, 5.0 * init.std / std::sqrt(n) + 1e-7);
      EXPECT_GT(std, 0.5 * init.std);  // not constant, not zero: filled
      EXPECT_LT(std, 1.5 * init.std);
    }
  }
}

TEST(DummyWeights, MatricesScaleWithFanInAndNormsSitNearOne) {
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.0.mlp.down_proj.weight", {64, 400}}).std, 0.05f);
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.0.mlp.down_proj.weight", {64, 400}}).mean, 0.0f);
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.3.input_layernorm.weight", {64}}).mean, 1.0f);
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.3.self_attn.indexer.k_norm.weight", {128}}).mean, 1.0f);
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.3.self_attn.indexer.k_norm.bias", {128}}).mean, 0.0f);
  EXPECT_FLOAT_EQ(dummy_init({"model.layers.3.self_attn.q_proj.bias", {96}}).mean, 0.0f);
  EXPECT_NE(dummy_tensor_seed(1, "a"), dummy_tensor_seed(2, "a"));
  EXPECT_NE(dummy_tensor_seed(1, "a"), dummy_tensor_seed(1, "b"));
}

std::vector<float> prefill_logits(const ModelConfig& config, uint64_t seed, int tokens) {
  std::unique_ptr<Backend> backend = create_cpu_backend();
  RuntimeOptions options;
  options.num_kv_pages = 4;
  options.max_batched_tokens = 64;
  options.max_num_seqs = 2;
  auto model = Transformer::load(config, WeightSource::dummy(seed), *backend, options);
  EXPECT_TRUE(model.ok()) << model.status().to_string();
  if (!model.ok()) return {};
  std::vector<int32_t> ids(static_cast<size_t>(tokens));
  for (int i = 0; i < tokens; ++i) ids[static_cast<size_t>(i)] = (i * 37 + 11) % config.vocab_size;
  std::vector<int32_t> table = {2, 0, 3};
  SequenceStep step{ids, 0, {table}, -1, true};
  std::vector<float> logits;
  Status status = (*model)->forward(std::span(&step, 1), &logits);
  EXPECT_TRUE(status.ok()) << status.to_string();
  return logits;
}

TEST(DummyWeights, LogitsAreFiniteThroughManyLayersAndDeterministicBySeed) {
  ModelConfig config = tiny_config(TinyFamily::kLlama);
  config.num_hidden_layers = 32;
  const std::vector<float> a = prefill_logits(config, 5, 37);
  ASSERT_EQ(a.size(), static_cast<size_t>(config.vocab_size));
  double squares = 0.0;
  for (float x : a) {
    ASSERT_TRUE(std::isfinite(x));
    squares += static_cast<double>(x) * x;
  }
  const double rms = std::sqrt(squares / static_cast<double>(a.size()));
  EXPECT_GT(rms, 0.05);  // order one: neither vanished nor exploded
  EXPECT_LT(rms, 20.0);
  EXPECT_EQ(prefill_logits(config, 5, 37), a);
  EXPECT_NE(prefill_logits(config, 6, 37), a);
}

// ---- memory planning through Transformer::load on a CPU backend with a small memory ----
// The workspace's block tables are max_num_seqs × (pages of max_model_len) I32, so base_bytes_ moves
// by a few bytes with max_model_len; every limit below keeps half a page of slack for that.

class MemoryPlanLoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = tiny_config(TinyFamily::kLlama);
    options_.max_batched_tokens = 33;
    options_.max_num_seqs = 3;
    options_.gpu_memory_utilization = 1.0;
    page_bytes_ = kv_page_bytes(config_, DType::kF32, kPageSize);
    // What everything but the KV pool takes: load with one explicit page, subtract that page.
    RuntimeOptions one_page = options_;
    one_page.num_kv_pages = 1;
    std::unique_ptr<Backend> backend = create_cpu_backend(CpuBackendOptions{size_t{1} << 30});
    auto model = Transformer::load(config_, WeightSource::dummy(1), *backend, one_page);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    auto memory = backend->memory_info();
    ASSERT_TRUE(memory.ok());
    base_bytes_ = memory->total_bytes - memory->free_bytes - page_bytes_;
  }

  StatusOr<std::unique_ptr<Transformer>> load(size_t limit) {
    backend_ = create_cpu_backend(CpuBackendOptions{limit});
    return Transformer::load(config_, WeightSource::dummy(1), *backend_, options_);
  }

  ModelConfig config_;
  RuntimeOptions options_;
  size_t page_bytes_ = 0;
  size_t base_bytes_ = 0;  // weights + workspace + RoPE table
  std::unique_ptr<Backend> backend_;
};

TEST_F(MemoryPlanLoadTest, PlansThePoolFromWhatIsLeft) {
  options_.max_model_len = 5 * kPageSize;
  auto model = load(base_bytes_ + 5 * page_bytes_ + page_bytes_ / 2);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ((*model)->num_kv_pages(), 5);
  // At utilization 0.75 of limit = 4·(base + 7 pages) the pool may take 3·(base + 7 pages) − base =
  // 2·base + 21 pages, more than the CPU's cap of max_num_seqs (3) sequences of 5 pages and the null page.
  options_.gpu_memory_utilization = 0.75;
  auto capped = load(4 * (base_bytes_ + 7 * page_bytes_));
  ASSERT_TRUE(capped.ok()) << capped.status().to_string();
  EXPECT_EQ((*capped)->num_kv_pages(), 16);
  // At 0.5 the same memory leaves 2·(base + 7 pages) − base = base + 14 pages: still capped.
  options_.gpu_memory_utilization = 0.5;
  options_.max_model_len = 16 * kPageSize;  // cap 48 pages: the memory decides
  auto halved = load(4 * (base_bytes_ + 7 * page_bytes_));
  ASSERT_TRUE(halved.ok()) << halved.status().to_string();
  ASSERT_LT((*halved)->num_kv_pages(), 48);
  // base_bytes_ was measured with block tables 1 page wide; these are 16 wide.
  const size_t wider_tables = 3 * (16 - 1) * sizeof(int32_t);
  const size_t usable = 2 * (base_bytes_ + 7 * page_bytes_) - base_bytes_ - wider_tables;
  EXPECT_EQ(static_cast<size_t>((*halved)->num_kv_pages()), usable / page_bytes_);
}

TEST_F(MemoryPlanLoadTest, WeightsLargerThanTheDeviceAreResourceExhausted) {
  const uint64_t weights = model_weight_bytes(expected_tensors(config_), DType::kF32);
  auto model = load(static_cast<size_t>(weights) - 1);
  ASSERT_EQ(model.status().code(), StatusCode::kResourceExhausted) << model.status().to_string();
  EXPECT_NE(model.status().message().find("the weights need"), std::string::npos) << model.status().to_string();
}

TEST_F(MemoryPlanLoadTest, NoRoomForAPageIsResourceExhausted) {
  auto model = load(base_bytes_ + page_bytes_ - 1);
  ASSERT_EQ(model.status().code(), StatusCode::kResourceExhausted) << model.status().to_string();
  EXPECT_NE(model.status().message().find("no KV page fits"), std::string::npos) << model.status().to_string();
}

TEST_F(MemoryPlanLoadTest, APoolShorterThanOneSequenceNamesTheLengthThatFits) {
  options_.max_model_len = 5 * kPageSize + 1;
  auto model = load(base_bytes_ + 5 * page_bytes_ + page_bytes_ / 2);
  ASSERT_EQ(model.status().code(), StatusCode::kResourceExhausted) << model.status().to_string();
  EXPECT_NE(model.status().message().find("--max-model-len 320 or less"), std::string::npos)
      << model.status().to_string();
}

TEST_F(MemoryPlanLoadTest, ExplicitPagesWinOverThePlan) {
  options_.num_kv_pages = 2;
  auto model = load(base_bytes_ + 9 * page_bytes_);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  EXPECT_EQ((*model)->num_kv_pages(), 2);
  options_.num_kv_pages = 10;
  auto too_many = load(base_bytes_ + 9 * page_bytes_);
  EXPECT_EQ(too_many.status().code(), StatusCode::kResourceExhausted) << too_many.status().to_string();
}

}  // namespace
}  // namespace longbow
