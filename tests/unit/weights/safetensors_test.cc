// Checkpoint (reader) and SafetensorsWriter: round trips, and every malformed-file case the reader
// must turn into a Status naming the file and tensor.
#include "model/weights/safetensors.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "common/half.h"
#include "model/weights/safetensors_writer.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "longbow_safetensors_XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code error;
    fs::remove_all(dir_, error);
  }

  std::string path(const std::string& name) const { return dir_ + "/" + name; }

  // A file with an explicit header length, header text and data section.
  void write_raw(const std::string& name, uint64_t header_length, const std::string& header, size_t data_bytes) {
    std::ofstream out(path(name), std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((header_length >> (8 * i)) & 0xff));
    out << header;
    out << std::string(data_bytes, '\x01');
  }
  void write_raw(const std::string& name, const std::string& header, size_t data_bytes) {
    write_raw(name, header.size(), header, data_bytes);
  }

  // A file holding `header` and `data_bytes` of data, opened as a single file.
  Status open_raw(const std::string& header, size_t data_bytes) {
    write_raw("raw.safetensors", header, data_bytes);
    return Checkpoint::open_file(path("raw.safetensors")).status();
  }

  std::string dir_;
};

std::vector<float> iota_values(size_t n, float scale) {
  std::vector<float> values(n);
  for (size_t i = 0; i < n; ++i) values[i] = scale * static_cast<float>(static_cast<int>(i) - 3);
  return values;
}

void fill_writer(SafetensorsWriter& writer) {
  ASSERT_TRUE(writer.add_float("model.norm.weight", DType::kF32, {5}, iota_values(5, 0.5f)).ok());
  ASSERT_TRUE(writer.add_float("model.embed_tokens.weight", DType::kBF16, {3, 4}, iota_values(12, 0.25f)).ok());
  ASSERT_TRUE(writer.add_float("lm_head.weight", DType::kF16, {2, 3}, iota_values(6, 1.5f)).ok());
  ASSERT_TRUE(writer.add_float("empty", DType::kBF16, {0, 7}, {}).ok());
  ASSERT_TRUE(writer.add_float("scalar", DType::kF32, {}, std::vector<float>{42.0f}).ok());
  int32_t ints[3] = {-7, 0, 123456};
  ASSERT_TRUE(writer.add("ints", DType::kI32, {3}, std::as_bytes(std::span<const int32_t>(ints))).ok());
}

void expect_contents(const Checkpoint& checkpoint) {
  EXPECT_EQ(checkpoint.tensor_names(),
            (std::vector<std::string>{"empty", "ints", "lm_head.weight", "model.embed_tokens.weight",
                                      "model.norm.weight", "scalar"}));
  EXPECT_EQ(checkpoint.total_bytes(), 5u * 4 + 12 * 2 + 6 * 2 + 0 + 4 + 3 * 4);

  struct Expected {
    const char* name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  const Expected expected[] = {
      {"model.norm.weight", DType::kF32, {5}, iota_values(5, 0.5f)},
      {"model.embed_tokens.weight", DType::kBF16, {3, 4}, iota_values(12, 0.25f)},
      {"lm_head.weight", DType::kF16, {2, 3}, iota_values(6, 1.5f)},
      {"empty", DType::kBF16, {0, 7}, {}},
      {"scalar", DType::kF32, {}, {42.0f}},
      {"ints", DType::kI32, {3}, {-7.0f, 0.0f, 123456.0f}},
  };
  for (const Expected& e : expected) {
    SCOPED_TRACE(e.name);
    StatusOr<TensorView> view = checkpoint.tensor(e.name);
    ASSERT_TRUE(view.ok()) << view.status().to_string();
    EXPECT_EQ(view->name, e.name);
    EXPECT_EQ(view->dtype, e.dtype);
    EXPECT_EQ(view->shape, e.shape);
    EXPECT_EQ(view->num_bytes, e.values.size() * dtype_size(e.dtype));
    EXPECT_EQ(view->num_elements(), static_cast<int64_t>(e.values.size()));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view->data) % dtype_size(e.dtype), 0u) << "tensor data misaligned";
    EXPECT_EQ(to_float32(*view), e.values);  // every value is exactly representable in its dtype
  }
}

TEST_F(SafetensorsTest, RoundTripSingleFile) {
  SafetensorsWriter writer;
  fill_writer(writer);
  writer.set_metadata("format", "pt");
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  EXPECT_FALSE(fs::exists(path("model.safetensors.tmp")));

  StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  expect_contents(**checkpoint);

  StatusOr<std::unique_ptr<Checkpoint>> file = Checkpoint::open_file(path("model.safetensors"));
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  expect_contents(**file);
}

TEST_F(SafetensorsTest, RoundTripSharded) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write_sharded(dir_, 16).ok());
  // 20 B, then 24 B, then 12 + 0 + 4 B, then 12 B: four shards.
  for (const char* shard : {"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                            "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"}) {
    EXPECT_TRUE(fs::exists(path(shard))) << shard;
  }
  StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  expect_contents(**checkpoint);
}

TEST_F(SafetensorsTest, CheckAcceptsMatchingSpecs) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  auto checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_TRUE((*checkpoint)->check({{"model.norm.weight", {5}}, {"lm_head.weight", {2, 3}}}).ok());
  StatusOr<TensorView> view = (*checkpoint)->tensor(TensorSpec{"model.embed_tokens.weight", {3, 4}});
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->dtype, DType::kBF16);
}

TEST_F(SafetensorsTest, MissingTensor) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  auto checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok());
  Status status = (*checkpoint)->check({{"model.norm.weight", {5}}, {"model.layers.0.mlp.up_proj.weight", {4, 4}}});
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << status.message();
  EXPECT_EQ((*checkpoint)->tensor("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(SafetensorsTest, MisshapenTensor) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  auto checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok());
  Status status = (*checkpoint)->check({{"lm_head.weight", {3, 2}}});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"lm_head.weight\" has shape [2, 3], expected [3, 2]"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, WrongDtype) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  auto checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok());
  Status status = (*checkpoint)->check({{"ints", {3}}});
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("\"ints\" has dtype I32, expected BF16, F16, F32 or F8_E4M3"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, UnsupportedDtypeIsUnimplementedOnAccess) {
  write_raw("model.safetensors", R"({"steps":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16);
  auto checkpoint = Checkpoint::open(dir_);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  EXPECT_EQ((*checkpoint)->tensor_names(), std::vector<std::string>{"steps"});
  EXPECT_EQ((*checkpoint)->total_bytes(), 16u);
  for (const Status& status : {(*checkpoint)->tensor("steps").status(), (*checkpoint)->check({{"steps", {2}}})}) {
    EXPECT_EQ(status.code(), StatusCode::kUnimplemented);
    EXPECT_NE(status.message().find("\"steps\" has dtype I64"), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("model.safetensors"), std::string::npos) << status.message();
  }
}

TEST_F(SafetensorsTest, UnknownDtype) {
  Status status = open_raw(R"({"w":{"dtype":"Q7","shape":[2],"data_offsets":[0,2]}})", 2);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tensor \"w\": unknown dtype \"Q7\""), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("raw.safetensors"), std::string::npos) << status.message();
}

TEST_F(SafetensorsTest, TruncatedFile) {
  SafetensorsWriter writer;
  fill_writer(writer);
  ASSERT_TRUE(writer.write(path("model.safetensors")).ok());
  fs::resize_file(path("model.safetensors"), fs::file_size(path("model.safetensors")) - 3);
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("model.safetensors: tensor \""), std::string::npos) << status.message();
  EXPECT_NE(status.message().find("truncated"), std::string::npos) << status.message();
}

TEST_F(SafetensorsTest, TruncatedHeader) {
  const std::string header = R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  write_raw("model.safetensors", header.size(), header.substr(0, 20), 0);
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("header length " + std::to_string(header.size())), std::string::npos)
      << status.message();

  std::ofstream(path("short.safetensors"), std::ios::binary) << "abc";
  status = Checkpoint::open_file(path("short.safetensors")).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("short.safetensors: 3 bytes"), std::string::npos) << status.message();

  std::ofstream(path("empty.safetensors"), std::ios::binary).flush();
  EXPECT_EQ(Checkpoint::open_file(path("empty.safetensors")).status().code(), StatusCode::kDataLoss);
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  write_raw("model.safetensors", uint64_t{1} << 62, "{}", 0);
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("header length 4611686018427387904 exceeds"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, BadHeaderJson) {
  Status status = open_raw(R"({"w":{"dtype":"F32","shape":[1],)", 4);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("raw.safetensors: header: invalid JSON"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, HeaderNotAnObject) {
  Status status = open_raw("[1, 2, 3]", 0);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("header must be a JSON object, got array"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, MalformedEntries) {
  struct Case {
    const char* header;
    const char* message;
  };
  const Case cases[] = {
      {R"({"w": 3})", "tensor \"w\": expected an object"},
      {R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "tensor \"w\": missing \"dtype\""},
      {R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", "tensor \"w\": dtype must be a string"},
      {R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", "tensor \"w\": missing \"shape\""},
      {R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", "tensor \"w\": shape must be an array"},
      {R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "tensor \"w\": shape has a non-integer or negative entry: -1"},
      {R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", "tensor \"w\": shape has a non-integer or negative entry: 1.5"},
      {R"({"w":{"dtype":"F32","shape":[1]}})", "tensor \"w\": missing \"data_offsets\""},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", "tensor \"w\": data_offsets must be [begin, end]"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", "tensor \"w\": data_offsets must be integers"},
      {R"({"w":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}})", "tensor \"w\": data_offsets must be integers"},
      {R"({"__metadata__": 5})", "__metadata__ must be an object"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.header);
    Status status = open_raw(c.header, 4);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status.message();
  }
}

TEST_F(SafetensorsTest, ShapeOffsetSizeMismatch) {
  Status status = open_raw(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tensor \"w\": data_offsets [0,12] span 12 bytes, but shape [2, 2] of F32 needs 16"),
            std::string::npos)
      << status.message();

  // Extents whose product overflows 64 bits must not wrap around to a plausible size.
  status = open_raw(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("needs more than 2^64"), std::string::npos) << status.message();
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  Status status = open_raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                           R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                           24);
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tensors \"a\" [0, 16) and \"b\" [8, 24) overlap"), std::string::npos)
      << status.message();

  // Empty tensors occupy no bytes and overlap nothing.
  EXPECT_TRUE(open_raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                       R"("b":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})",
                       16)
                  .ok());
}

TEST_F(SafetensorsTest, OutOfRangeOffsets) {
  Status status = open_raw(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})", 16);
  EXPECT_EQ(status.code(), StatusCode::kDataLoss);
  EXPECT_NE(status.message().find("tensor \"w\": data_offsets [16,32] reach past the end of the data section (16"),
            std::string::npos)
      << status.message();
}

// A deeply nested header is refused at parse time, and no error path serializes it (that recursion
// crashed the loader at 100,000 levels).
TEST_F(SafetensorsTest, DeeplyNestedHeaderIsRejected) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  for (const std::string& header : {R"({"w":)" + deep + "}", R"({"w":{"dtype":"F32","shape":)" + deep +
                                                              R"(,"data_offsets":[0,4]}})",
                                    R"({"w":{"dtype":)" + deep + R"(,"shape":[1],"data_offsets":[0,4]}})"}) {
    Status status = open_raw(header, 4);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("nested deeper than"), std::string::npos) << status.message().substr(0, 200);
  }
  // Shallow containers in the wrong place are described, not dumped.
  Status status = open_raw(R"({"w":{"dtype":[[1,2],[3]],"shape":[1],"data_offsets":[0,4]}})", 4);
  EXPECT_NE(status.message().find("dtype must be a string, got an array of 2 elements"), std::string::npos)
      << status.message();
}

// A FIFO named like a weights file is refused at once (opening it for reading would wait for a
// writer forever).
TEST_F(SafetensorsTest, FifoIsNotAWeightsFile) {
  ASSERT_EQ(mkfifo(path("model.safetensors").c_str(), 0600), 0);
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("not a regular file"), std::string::npos) << status.message();
}

TEST_F(SafetensorsTest, MissingFiles) {
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("neither model.safetensors nor model.safetensors.index.json"), std::string::npos);

  status = Checkpoint::open(path("no-such-model")).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("no-such-model: model directory does not exist"), std::string::npos);

  status = Checkpoint::open_file(path("absent.safetensors")).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("absent.safetensors"), std::string::npos);
}

void write_index(const std::string& path, const std::string& weight_map) {
  std::ofstream(path) << R"({"metadata": {}, "weight_map": )" << weight_map << "}";
}

TEST_F(SafetensorsTest, MissingShard) {
  write_raw("a.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  write_index(path("model.safetensors.index.json"), R"({"x": "a.safetensors", "y": "b.safetensors"})");
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("shard \"b.safetensors\" (which holds tensor \"y\")"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, TensorMissingFromIndexedShard) {
  write_raw("a.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  write_index(path("model.safetensors.index.json"), R"({"x": "a.safetensors", "z": "a.safetensors"})");
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_NE(status.message().find("a.safetensors: tensor \"z\" is not in this shard"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, TensorInTwoShards) {
  write_raw("a.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  write_raw("b.safetensors", R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  write_index(path("model.safetensors.index.json"), R"({"x": "a.safetensors", "y": "b.safetensors"})");
  Status status = Checkpoint::open(dir_).status();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("tensor \"x\" appears in more than one file"), std::string::npos)
      << status.message();
}

TEST_F(SafetensorsTest, MalformedIndex) {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"[]", "expected a JSON object"},
      {R"({"metadata": {}})", "weight_map: required field is missing"},
      {R"({"weight_map": []})", "weight_map: expected an object"},
      {R"({"weight_map": {}})", "weight_map is empty"},
      {R"({"weight_map": {"x": 3}})", "weight_map[\"x\"] must be a file name"},
      {R"({"weight_map": {"x": "../a.safetensors"}})", "weight_map[\"x\"] must be a file name"},
      {R"({"weight_map": {"x": "/etc/passwd"}})", "weight_map[\"x\"] must be a file name"},
      {R"({"weight_map": )", "invalid JSON"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    std::ofstream(path("model.safetensors.index.json")) << c.text;
    Status status = Checkpoint::open(dir_).status();
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find(c.message), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("model.safetensors.index.json"), std::string::npos) << status.message();
  }
}

TEST(Fp16Conversion, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);             // largest finite half
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7bff);             // below the halfway point to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7c00);             // halfway, odd mantissa: rounds up to infinity
  EXPECT_EQ(f32_to_f16(1e9f), 0x7c00);
  EXPECT_EQ(f32_to_f16(-INFINITY), 0xfc00);
  EXPECT_EQ(f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);  // tie, even mantissa stays
  EXPECT_EQ(f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);  // tie, odd mantissa rounds up
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);         // tie to even (zero)
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);         // tie to even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400);      // rounds up into the normals
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  // Every finite half survives half → float → half.
  for (uint32_t bits = 0; bits < 0x10000; ++bits) {
    float value = f16_to_f32(static_cast<uint16_t>(bits));
    if (std::isnan(value)) continue;
    ASSERT_EQ(f32_to_f16(value), bits) << "half bits " << bits;
  }
}

TEST(ToFloat32, DecodesFp8E4M3) {
  const uint8_t bytes[] = {0x38, 0xb8, 0x7e, 0x01, 0x08, 0x7f};
  TensorView view;
  view.dtype = DType::kFP8E4M3;
  view.shape = {6};
  view.data = reinterpret_cast<const std::byte*>(bytes);
  view.num_bytes = sizeof(bytes);
  std::vector<float> values = to_float32(view);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], -1.0f);
  EXPECT_EQ(values[2], 448.0f);
  EXPECT_EQ(values[3], std::ldexp(1.0f, -9));
  EXPECT_EQ(values[4], std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(values[5]));
}

TEST(SafetensorsWriter, RejectsBadInput) {
  SafetensorsWriter writer;
  std::vector<float> four(4, 1.0f);
  EXPECT_TRUE(writer.add_float("a", DType::kF32, {2, 2}, four).ok());
  EXPECT_EQ(writer.add_float("a", DType::kF32, {2, 2}, four).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add_float("b", DType::kF32, {3}, four).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add_float("c", DType::kF32, {-4}, four).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add_float("", DType::kF32, {4}, four).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.add_float("d", DType::kI32, {4}, four).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(writer.num_tensors(), 1u);
}

}  // namespace
}  // namespace longbow
