// The DSA indexer keys of config.json (model/config: DsaIndexerConfig).
#include <gtest/gtest.h>

#include "model/config/model_config.h"

namespace longbow {
namespace {

using nlohmann::json;

json llama_with(const json& extra) {
  json c = {{"model_type", "llama"},       {"vocab_size", 1000},     {"hidden_size", 256},
            {"intermediate_size", 512},    {"num_hidden_layers", 2}, {"num_attention_heads", 8},
            {"num_key_value_heads", 2},    {"max_position_embeddings", 4096}};
  for (auto& [key, value] : extra.items()) c[key] = value;
  return c;
}

TEST(DsaConfig, AbsentKeysMeanNoIndexer) {
  StatusOr<ModelConfig> c = parse_model_config(llama_with(json::object()));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_FALSE(c->dsa.has_value());
}

TEST(DsaConfig, ParsesKeysWithTheRopeDefault) {
  StatusOr<ModelConfig> c =
      parse_model_config(llama_with({{"index_n_heads", 64}, {"index_head_dim", 128}, {"index_topk", 2048}}));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  ASSERT_TRUE(c->dsa.has_value());
  EXPECT_EQ(c->dsa->n_heads, 64);
  EXPECT_EQ(c->dsa->head_dim, 128);
  EXPECT_EQ(c->dsa->topk, 2048);
  EXPECT_EQ(c->dsa->rope_dim, 64);
  c = parse_model_config(
      llama_with({{"index_n_heads", 4}, {"index_head_dim", 32}, {"index_topk", 64}, {"index_rope_dim", 16}}));
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->dsa->rope_dim, 16);
}

TEST(DsaConfig, RejectsIncompleteOrInvalidKeysNamingTheField) {
  auto message = [](const json& extra) {
    StatusOr<ModelConfig> c = parse_model_config(llama_with(extra));
    EXPECT_FALSE(c.ok());
    return c.ok() ? std::string() : c.status().message();
  };
  EXPECT_NE(message({{"index_n_heads", 64}, {"index_head_dim", 128}}).find("index_topk"), std::string::npos);
  EXPECT_NE(message({{"index_n_heads", 64}, {"index_head_dim", 96}, {"index_topk", 8}}).find("power of two"),
            std::string::npos);
  EXPECT_NE(message({{"index_n_heads", 64}, {"index_head_dim", 32}, {"index_topk", 8}}).find("index_rope_dim"),
            std::string::npos);  // the default 64 exceeds head_dim 32
  EXPECT_NE(message({{"index_n_heads", 0}, {"index_head_dim", 128}, {"index_topk", 8}}).find("index_n_heads"),
            std::string::npos);
}

}  // namespace
}  // namespace longbow
