// The CLI's flag parsing for the memory and weight-source flags, and where a model given as a bare
// config file finds its tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "model/runtime/weight_source.h"
#include "server/cli/flags.h"
#include "server/cli/model_path.h"

namespace longbow::cli {
namespace {

Status parse(FlagSet& flags, std::vector<std::string> args) { return flags.parse(args); }

TEST(FractionFlag, AcceptsNumbersInZeroOne) {
  double value = 0.9;
  FlagSet flags;
  flags.add_fraction("gpu-memory-utilization", "help", 0.0, 1.0, &value);
  ASSERT_TRUE(parse(flags, {"--gpu-memory-utilization", "0.35"}).ok());
  EXPECT_DOUBLE_EQ(value, 0.35);
  ASSERT_TRUE(parse(flags, {"--gpu-memory-utilization=1"}).ok());
  EXPECT_DOUBLE_EQ(value, 1.0);
}

TEST(FractionFlag, RejectsOutOfRangeAndMalformedValuesNamingTheFlag) {
  for (const char* bad : {"0", "-0.1", "1.01", "abc", "0.5x", "", "nan", "inf"}) {
    double value = 0.9;
    FlagSet flags;
    flags.add_fraction("gpu-memory-utilization", "help", 0.0, 1.0, &value);
    Status s = parse(flags, {std::string("--gpu-memory-utilization=") + bad});
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("--gpu-memory-utilization"), std::string::npos) << s.message();
    EXPECT_DOUBLE_EQ(value, 0.9) << bad;
  }
  double value = 0.9;
  FlagSet flags;
  flags.add_fraction("gpu-memory-utilization", "help", 0.0, 1.0, &value);
  EXPECT_EQ(parse(flags, {"--gpu-memory-utilization"}).code(), StatusCode::kInvalidArgument);
}

TEST(PositionalArgument, OneIsBoundAndASecondIsAnError) {
  std::optional<std::string> model;
  int port = 0;
  FlagSet flags;
  flags.add_int("port", "p", 0, 65535, &port);
  flags.set_positional("MODEL", &model);
  ASSERT_TRUE(parse(flags, {"--port", "9", "/models/llama"}).ok());
  EXPECT_EQ(model, "/models/llama");
  EXPECT_EQ(port, 9);
  std::optional<std::string> again;
  FlagSet twice;
  twice.set_positional("MODEL", &again);
  Status s = parse(twice, {"a", "b"});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("MODEL was already given as 'a'"), std::string::npos) << s.message();
  FlagSet none;  // without set_positional, any positional argument is an error
  EXPECT_FALSE(parse(none, {"/models/llama"}).ok());
}

TEST(LoadFormat, NamesVllmsFormats) {
  EXPECT_EQ(*parse_load_format("auto"), LoadFormat::kAuto);
  EXPECT_EQ(*parse_load_format("safetensors"), LoadFormat::kSafetensors);
  EXPECT_EQ(*parse_load_format("dummy"), LoadFormat::kDummy);
  auto bad = parse_load_format("pt");
  ASSERT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("auto, safetensors, dummy"), std::string::npos);
  EXPECT_EQ(load_format_name(LoadFormat::kDummy), "dummy");
}

class ConfigFileModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("longbow_cli_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    config_ = (dir_ / "llama-3.1-8b.config.json").string();
    std::ofstream(config_) << R"({"model_type": "llama", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
      "max_position_embeddings": 256, "rms_norm_eps": 1e-5})";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string config_;
};

TEST_F(ConfigFileModel, AConfigFileIsAModelWithoutWeights) {
  auto location = resolve_model(config_);
  ASSERT_TRUE(location.ok()) << location.status().to_string();
  EXPECT_EQ(location->config_path, config_);
  EXPECT_EQ(location->dir, dir_.string());
  EXPECT_EQ(location->name, "llama-3.1-8b");
  auto config = load_config(*location);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  EXPECT_EQ(config->vocab_size, 100);
}

TEST_F(ConfigFileModel, WithoutATokenizerItSaysToPassOne) {
  auto location = resolve_model(config_);
  ASSERT_TRUE(location.ok());
  auto tokenizer = resolve_tokenizer(std::nullopt, *location);
  ASSERT_EQ(tokenizer.status().code(), StatusCode::kNotFound);
  EXPECT_NE(tokenizer.status().message().find("--tokenizer"), std::string::npos) << tokenizer.status().message();
  auto missing = resolve_tokenizer(std::string((dir_ / "nowhere").string()), *location);
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  std::ofstream(dir_ / "tokenizer.model") << "x";
  auto from_dir = resolve_tokenizer(dir_.string(), *location);
  ASSERT_TRUE(from_dir.ok()) << from_dir.status().to_string();
  EXPECT_EQ(*from_dir, (dir_ / "tokenizer.model").string());
  auto beside = resolve_tokenizer(std::nullopt, *location);
  ASSERT_TRUE(beside.ok());
  EXPECT_EQ(*beside, (dir_ / "tokenizer.model").string());
}

TEST_F(ConfigFileModel, NeitherDirectoryNorJsonIsNotFound) {
  auto location = resolve_model((dir_ / "absent").string());
  EXPECT_EQ(location.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace longbow::cli
