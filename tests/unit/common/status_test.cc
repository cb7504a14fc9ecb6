#include "common/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace longbow {
namespace {

StatusOr<int> parse_positive(int value) {
  if (value <= 0) return invalid_argument("value must be positive, got " + std::to_string(value));
  return value;
}

Status doubled(int value, int* out) {
  ASSIGN_OR_RETURN(int parsed, parse_positive(value));
  *out = parsed * 2;
  return Status::Ok();
}

TEST(Status, OkByDefault) {
  Status status;
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(status.to_string(), "OK");
}

TEST(Status, CarriesCodeAndMessage) {
  Status status = not_found("tensor model.norm.weight");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.to_string(), "NOT_FOUND: tensor model.norm.weight");
  EXPECT_EQ(status.with_context("model.safetensors").message(), "model.safetensors: tensor model.norm.weight");
}

TEST(StatusOr, PropagatesThroughMacros) {
  int out = 0;
  EXPECT_TRUE(doubled(21, &out).ok());
  EXPECT_EQ(out, 42);
  Status failed = doubled(-1, &out);
  EXPECT_EQ(failed.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.message(), "value must be positive, got -1");
}

TEST(StatusOr, HoldsMoveOnlyValues) {
  StatusOr<std::unique_ptr<int>> holder(std::make_unique<int>(7));
  ASSERT_TRUE(holder.ok());
  std::unique_ptr<int> taken = std::move(holder).value();
  EXPECT_EQ(*taken, 7);
}

}  // namespace
}  // namespace longbow
