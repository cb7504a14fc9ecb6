// The built demo model (${CMAKE_BINARY_DIR}/demo-model): its config parses to the documented shape,
// its checkpoint holds exactly the Llama tensors that shape needs, its weights have the intended
// scales, and make_demo_model reproduces it byte for byte.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common/json_file.h"
#include "model/config/model_config.h"
#include "model/config/rope.h"
#include "model/weights/safetensors.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;

const std::string kDemoDir = LONGBOW_DEMO_MODEL_DIR;

// HF Llama tensor names and shapes for `config` (independent of the runtime's own list), with the
// DSA indexer tensors on layers [dense_layers, layers) when the config has index_* keys.
std::vector<TensorSpec> llama_tensors(const ModelConfig& c, int dense_layers = 1) {
  const int64_t h = c.hidden_size, q = int64_t{c.num_attention_heads} * c.head_dim,
                kv = int64_t{c.num_key_value_heads} * c.head_dim, ff = c.intermediate_size, v = c.vocab_size;
  std::vector<TensorSpec> specs = {{"model.embed_tokens.weight", {v, h}}, {"model.norm.weight", {h}},
                                   {"lm_head.weight", {v, h}}};
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    specs.push_back({p + "input_layernorm.weight", {h}});
    specs.push_back({p + "self_attn.q_proj.weight", {q, h}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    specs.push_back({p + "self_attn.o_proj.weight", {h, q}});
    specs.push_back({p + "post_attention_layernorm.weight", {h}});
    specs.push_back({p + "mlp.gate_proj.weight", {ff, h}});
    specs.push_back({p + "mlp.up_proj.weight", {ff, h}});
    specs.push_back({p + "mlp.down_proj.weight", {h, ff}});
    if (c.dsa && i >= dense_layers) {
      const int64_t ih = c.dsa->n_heads, id = c.dsa->head_dim;
      specs.push_back({p + "self_attn.indexer.wq.weight", {ih * id, h}});
      specs.push_back({p + "self_attn.indexer.wk.weight", {id, h}});
      specs.push_back({p + "self_attn.indexer.weights_proj.weight", {ih, h}});
      specs.push_back({p + "self_attn.indexer.k_norm.weight", {id}});
      specs.push_back({p + "self_attn.indexer.k_norm.bias", {id}});
    }
  }
  return specs;
}

struct Moments {
  double mean = 0.0;
  double std = 0.0;
};

Moments moments(const std::vector<float>& values) {
  double sum = 0.0, sum_sq = 0.0;
  for (float v : values) {
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(values.size());
  return {sum / n, std::sqrt(std::max(0.0, sum_sq / n - (sum / n) * (sum / n)))};
}

TEST(DemoModel, ConfigHasTheDocumentedShape) {
  StatusOr<ModelConfig> config = load_model_config(kDemoDir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->model_type, "llama");
  EXPECT_EQ(config->vocab_size, 2000);
  EXPECT_EQ(config->hidden_size, 256);
  EXPECT_EQ(config->intermediate_size, 768);
  EXPECT_EQ(config->num_hidden_layers, 4);
  EXPECT_EQ(config->num_attention_heads, 4);
  EXPECT_EQ(config->num_key_value_heads, 2);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->max_position_embeddings, 131072);
  EXPECT_DOUBLE_EQ(config->rms_norm_eps, 1e-5);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_FALSE(config->qk_norm || config->qkv_bias || config->o_bias || config->mlp_bias);
  EXPECT_FALSE(config->sliding_window.has_value());
  EXPECT_EQ(config->bos_token_id, std::optional<int>(1));
  EXPECT_EQ(config->eos_token_ids, std::vector<int>{2});
  EXPECT_EQ(config->rope.type, RopeType::kLlama3);
  EXPECT_DOUBLE_EQ(config->rope.theta, 500000.0);
  EXPECT_DOUBLE_EQ(config->rope.factor, 8.0);
  EXPECT_DOUBLE_EQ(config->rope.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(config->rope.high_freq_factor, 4.0);
  EXPECT_EQ(config->rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(config->rope.rotary_dim, 64);
  EXPECT_EQ(make_rope_table(config->rope).inv_freq.size(), 32u);
  // DSA indexer (layers 1-3; layer 0 stays dense): a small top-k so prompts past 64 tokens select.
  ASSERT_TRUE(config->dsa.has_value());
  EXPECT_EQ(config->dsa->n_heads, 16);
  EXPECT_EQ(config->dsa->head_dim, 64);
  EXPECT_EQ(config->dsa->topk, 64);
  EXPECT_EQ(config->dsa->rope_dim, 32);
}

TEST(DemoModel, CheckpointHoldsExactlyTheLlamaAndIndexerTensorsInBf16) {
  StatusOr<ModelConfig> config = load_model_config(kDemoDir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::open(kDemoDir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  const std::vector<TensorSpec> specs = llama_tensors(*config);
  Status status = (*checkpoint)->check(specs);
  ASSERT_TRUE(status.ok()) << status.to_string();
  EXPECT_EQ((*checkpoint)->tensor_names().size(), specs.size());
  for (const TensorSpec& spec : specs) EXPECT_EQ((*checkpoint)->tensor(spec.name)->dtype, DType::kBF16) << spec.name;
}

// The values of a [rows, 256] tensor outside columns 0 and 1, the hidden dimensions the demo indexer
// sets (tools/demo_model/demo_indexer.h): its random part.
std::vector<float> without_indexer_columns(const std::vector<float>& values) {
  std::vector<float> rest;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i % 256 >= 2) rest.push_back(values[i]);
  }
  return rest;
}

TEST(DemoModel, WeightsHaveTheIntendedScales) {
  StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::open(kDemoDir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  auto stats = [&](const std::string& name) {
    return moments(without_indexer_columns(to_float32(*(*checkpoint)->tensor(name))));
  };
  struct Expected {
    const char* name;
    double mean;
    double std;
  };
  const Expected expected[] = {
      {"model.embed_tokens.weight", 0.0, 1.0},
      {"model.layers.0.input_layernorm.weight", 1.0, 0.1},
      {"model.layers.3.post_attention_layernorm.weight", 1.0, 0.1},
      {"model.norm.weight", 1.0, 0.1},
      {"model.layers.1.self_attn.q_proj.weight", 0.0, 1.0 / 16},   // 1/sqrt(hidden)
      {"model.layers.2.self_attn.o_proj.weight", 0.0, 1.0 / 16},   // 1/sqrt(heads · head_dim)
      {"model.layers.2.mlp.down_proj.weight", 0.0, 1.0 / std::sqrt(768.0)},
      // Random part 3/sqrt(256) plus the bigram part 1.6 · unit vector: sqrt((9 + 1.6²) / 256).
      {"lm_head.weight", 0.0, std::sqrt((9.0 + 1.6 * 1.6) / 256)},
      // The indexer's random parts (its structured parts live in columns 0 and 1).
      {"model.layers.1.self_attn.indexer.wq.weight", 0.0, 0.3 / 16},
      {"model.layers.3.self_attn.indexer.wk.weight", 0.0, 1.0 / 16},
      {"model.layers.1.self_attn.indexer.weights_proj.weight", 0.0, 0.3 / 16},
  };
  for (const Expected& e : expected) {
    Moments m = stats(e.name);
    EXPECT_NEAR(m.mean, e.mean, 0.1 * e.std + 0.01) << e.name;
    EXPECT_NEAR(m.std, e.std, 0.1 * e.std) << e.name;
  }
  // The indexer LayerNorm has only 64 values per tensor: 4 standard errors of the mean and std.
  const Expected small[] = {{"model.layers.2.self_attn.indexer.k_norm.weight", 1.0, 0.1},
                            {"model.layers.2.self_attn.indexer.k_norm.bias", 0.0, 0.1}};
  for (const Expected& e : small) {
    Moments m = stats(e.name);
    EXPECT_NEAR(m.mean, e.mean, 4 * e.std / 8) << e.name;
    EXPECT_NEAR(m.std, e.std, 4 * e.std / std::sqrt(2.0 * 64)) << e.name;
  }
  // The indexer's two embedding columns: +6 for every token in column 0; in column 1 +6 for the
  // markers (about one ordinary token in 32, never a control token) and -6 for the rest.
  const std::vector<float> embedding = to_float32(*(*checkpoint)->tensor("model.embed_tokens.weight"));
  int markers = 0;
  for (size_t t = 0; t < embedding.size() / 256; ++t) {
    EXPECT_EQ(embedding[t * 256], 6.0f) << "token " << t;
    const float marker = embedding[t * 256 + 1];
    EXPECT_TRUE(marker == 6.0f || marker == -6.0f) << "token " << t << ": " << marker;
    if (marker > 0) {
      ++markers;
      EXPECT_GE(t, 3u) << "a control token is a marker";
    }
  }
  EXPECT_GT(markers, 2000 / 64);
  EXPECT_LT(markers, 2000 / 16);
}

TEST(DemoModel, SidecarFiles) {
  EXPECT_GT(fs::file_size(kDemoDir + "/tokenizer.model"), 1000u);
  StatusOr<nlohmann::json> tokenizer_config = read_json_file(kDemoDir + "/tokenizer_config.json");
  ASSERT_TRUE(tokenizer_config.ok()) << tokenizer_config.status().to_string();
  EXPECT_EQ((*tokenizer_config)["bos_token"], "<s>");
  EXPECT_EQ((*tokenizer_config)["eos_token"], "</s>");
  EXPECT_EQ((*tokenizer_config)["add_bos_token"], true);
  EXPECT_TRUE((*tokenizer_config)["chat_template"].is_string());
  StatusOr<nlohmann::json> generation_config = read_json_file(kDemoDir + "/generation_config.json");
  ASSERT_TRUE(generation_config.ok()) << generation_config.status().to_string();
  EXPECT_EQ((*generation_config)["eos_token_id"], 2);
}

class MakeDemoModel : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "longbow_demo_model_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }
  int run(const std::string& args) {
    return std::system(("'" + std::string(LONGBOW_MAKE_DEMO_MODEL) + "' " + args + " 2>/dev/null").c_str());
  }
  std::string dir_;
};

TEST_F(MakeDemoModel, IsDeterministic) {
  ASSERT_EQ(run("--out '" + dir_ + "' --vocab-from-tokenizer '" + kDemoDir + "/tokenizer.model'"), 0);
  for (const char* file : {"model.safetensors", "config.json", "tokenizer_config.json", "generation_config.json"}) {
    StatusOr<std::string> built = read_file(kDemoDir + "/" + file);
    StatusOr<std::string> again = read_file(dir_ + "/" + file);
    ASSERT_TRUE(built.ok() && again.ok()) << file;
    EXPECT_TRUE(*built == *again) << file << " differs between two runs";
  }
}

TEST_F(MakeDemoModel, WritesOtherShapesFromFlags) {
  ASSERT_EQ(run("--out '" + dir_ + "' --vocab 300 --layers 2 --hidden 128 --intermediate 320 --heads 4 "
                "--kv-heads 1 --head-dim 48 --dtype f32 --dense-layers 2"),
            0);
  StatusOr<ModelConfig> config = load_model_config(dir_);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->vocab_size, 300);
  EXPECT_EQ(config->num_hidden_layers, 2);
  EXPECT_EQ(config->num_key_value_heads, 1);
  EXPECT_EQ(config->head_dim, 48);
  StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  EXPECT_FALSE(config->dsa.has_value());  // --dense-layers 2 of 2: no indexer
  EXPECT_TRUE((*checkpoint)->check(llama_tensors(*config)).ok());
  EXPECT_EQ((*checkpoint)->tensor_names().size(), llama_tensors(*config).size());
  EXPECT_EQ((*checkpoint)->tensor("lm_head.weight")->dtype, DType::kF32);
  EXPECT_FALSE(fs::exists(dir_ + "/tokenizer_config.json"));  // no tokenizer given

  EXPECT_NE(run("--out '" + dir_ + "' --vocab 300 --heads 4 --kv-heads 3"), 0);
  EXPECT_NE(run("--out '" + dir_ + "' --vocab 300 --index-head-dim 48"), 0);
  EXPECT_NE(run("--out '" + dir_ + "' --vocab 300 --bogus 1"), 0);
  EXPECT_NE(run("--out '" + dir_ + "'"), 0);
}

}  // namespace
}  // namespace longbow
