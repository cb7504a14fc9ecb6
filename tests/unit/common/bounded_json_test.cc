// parse_json's depth limit and error messages, describe_json's bounded descriptions, and
// read_file's refusal of non-regular files.
#include "common/bounded_json.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "common/json_file.h"

namespace longbow {
namespace {

using nlohmann::json;

std::string nested_arrays(int depth) { return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']'); }

TEST(ParseJson, AcceptsDocumentsUpToTheDepthLimit) {
  StatusOr<json> ok = parse_json(nested_arrays(kMaxJsonDepth), "doc");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  StatusOr<json> object = parse_json(R"({"a": {"b": [1, 2, {"c": null}]}})", "doc");
  ASSERT_TRUE(object.ok());
  EXPECT_EQ((*object)["a"]["b"][2]["c"], nullptr);
}

TEST(ParseJson, RejectsDeeperDocumentsWithoutRecursing) {
  for (int depth : {kMaxJsonDepth + 1, 100000, 1000000}) {
    StatusOr<json> deep = parse_json(nested_arrays(depth), "request body");
    EXPECT_EQ(deep.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(deep.status().message(), "request body: JSON nested deeper than 64 levels");
  }
  // Deep inside an otherwise ordinary object, and with objects.
  std::string objects;
  for (int i = 0; i < 50000; ++i) objects += R"({"k":)";
  objects += "1" + std::string(50000, '}');
  EXPECT_EQ(parse_json(objects, "doc").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_json(R"({"prompt": [1, )" + nested_arrays(100000) + "]}", "doc").status().code(),
            StatusCode::kInvalidArgument);
  // A custom limit.
  EXPECT_TRUE(parse_json("[[1]]", "doc", 2).ok());
  EXPECT_FALSE(parse_json("[[[1]]]", "doc", 2).ok());
}

TEST(ParseJson, ErrorsNameTheSourceTheFieldAndThePosition) {
  Status overflow = parse_json(R"({"a": 1, "rope_scaling": {"factor": 1e400}})", "config.json").status();
  EXPECT_EQ(overflow.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(overflow.message().find("config.json: invalid JSON in field \"rope_scaling.factor\""), std::string::npos)
      << overflow.message();
  EXPECT_NE(overflow.message().find("number overflow"), std::string::npos) << overflow.message();

  Status syntax = parse_json(R"({"a": tru})", "x.json").status();
  EXPECT_EQ(syntax.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(syntax.message().find("x.json: invalid JSON"), std::string::npos) << syntax.message();
  EXPECT_NE(syntax.message().find("column"), std::string::npos) << syntax.message();

  EXPECT_EQ(parse_json("", "empty").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_json("\xff\xfe", "bytes").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parse_json(R"("\ud800")", "surrogate").status().code(), StatusCode::kInvalidArgument);
}

TEST(DescribeJson, DescribesContainersByTheirSizeAndCutsStrings) {
  EXPECT_EQ(describe_json(json::array({1, json::array({2})})), "an array of 2 elements");
  EXPECT_EQ(describe_json(json::object({{"a", 1}})), "an object of 1 members");
  EXPECT_EQ(describe_json(json(7)), "7");
  EXPECT_EQ(describe_json(json(nullptr)), "null");
  EXPECT_EQ(describe_json(json("abc")), "\"abc\"");
  EXPECT_EQ(describe_json(json(std::string(1000, 'x')), 4), "\"xxxx\"...");
  EXPECT_EQ(describe_json(json(std::string("\xff"))), "\"\xEF\xBF\xBD\"");  // invalid UTF-8 replaced
}

class JsonFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "longbow_json_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    std::filesystem::remove_all(dir_, error);
  }
  std::string dir_;
};

TEST_F(JsonFileTest, ReadsRegularFilesOnly) {
  const std::string fifo = dir_ + "/config.json";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  Status status = read_json_file(fifo).status();  // would block forever on open() without the check
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a regular file"), std::string::npos) << status.message();
  EXPECT_EQ(read_file(dir_).status().code(), StatusCode::kInvalidArgument);  // a directory
  EXPECT_EQ(read_file(dir_ + "/absent").status().code(), StatusCode::kNotFound);
}

TEST_F(JsonFileTest, LimitsTheSizeAndNamesTheFile) {
  const std::string file = dir_ + "/big.json";
  std::ofstream(file) << "[" << std::string(100, ' ') << "]";
  EXPECT_TRUE(read_json_file(file).ok());
  Status big = read_json_file(file, /*max_bytes=*/50).status();
  EXPECT_EQ(big.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.message().find("big.json: 102 bytes is more than the 50 bytes allowed"), std::string::npos)
      << big.message();
  std::ofstream(file) << nested_arrays(100000);
  Status deep = read_json_file(file).status();
  EXPECT_NE(deep.message().find("big.json: JSON nested deeper than 64 levels"), std::string::npos) << deep.message();
}

}  // namespace
}  // namespace longbow
