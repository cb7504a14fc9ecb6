#include <gtest/gtest.h>

#include "model/backend/backend.h"

namespace longbow {
namespace {

TEST(BackendFactory, CpuAndAuto) {
  auto cpu = create_backend("cpu");
  ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
  EXPECT_EQ((*cpu)->name(), "cpu");
  auto any = create_backend("auto");
  ASSERT_TRUE(any.ok()) << any.status().to_string();
  EXPECT_TRUE((*any)->name() == "cpu" || (*any)->name() == "cuda");
}

TEST(BackendFactory, UnknownNameIsInvalid) {
  auto bad = create_backend("tpu");
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("tpu"), std::string::npos);
}

TEST(BackendFactory, CudaIsUnimplementedOrAvailable) {
  auto cuda = create_backend("cuda");
  if (cuda.ok()) {
    EXPECT_EQ((*cuda)->name(), "cuda");
  } else {
    // Without CUDA compiled in: UNIMPLEMENTED; compiled in but no device: UNAVAILABLE.
    EXPECT_TRUE(cuda.status().code() == StatusCode::kUnimplemented ||
                cuda.status().code() == StatusCode::kUnavailable)
        << cuda.status().to_string();
  }
}

}  // namespace
}  // namespace longbow
