// Status and StatusOr<T>: the one error type of longbow.
//
// Every fallible function returns Status or StatusOr<T>. Codes form a closed set; each front end maps
// them to its protocol exactly once (HTTP in server/frontend/http, gRPC in server/frontend/grpc).
// No exception crosses a module boundary.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace longbow {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong (bad config field, malformed file, bad request)
  kNotFound,           // a named file, tensor, model or request does not exist
  kOutOfRange,         // a value exceeds a limit (prompt longer than the context, index past the end)
  kResourceExhausted,  // out of memory, KV pages or queue slots; retrying later may succeed
  kUnavailable,        // the server is loading or draining
  kCancelled,          // the client or the engine cancelled the work
  kDeadlineExceeded,   // a deadline passed
  kUnauthenticated,    // missing or wrong API key
  kUnimplemented,      // a recognised but unsupported feature (config value, dtype, op)
  kDataLoss,           // a file is truncated or corrupt
  kInternal,           // a broken invariant or a failed device call: a bug or a hardware fault
};

std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: message", or "OK".
  std::string to_string() const;

  // Returns a copy whose message is "context: message"; OK stays OK.
  Status with_context(std::string_view context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string message) { return {StatusCode::kInvalidArgument, std::move(message)}; }
inline Status not_found(std::string message) { return {StatusCode::kNotFound, std::move(message)}; }
inline Status out_of_range(std::string message) { return {StatusCode::kOutOfRange, std::move(message)}; }
inline Status resource_exhausted(std::string message) { return {StatusCode::kResourceExhausted, std::move(message)}; }
inline Status unavailable(std::string message) { return {StatusCode::kUnavailable, std::move(message)}; }
inline Status cancelled(std::string message) { return {StatusCode::kCancelled, std::move(message)}; }
inline Status unimplemented(std::string message) { return {StatusCode::kUnimplemented, std::move(message)}; }
inline Status data_loss(std::string message) { return {StatusCode::kDataLoss, std::move(message)}; }
inline Status internal_error(std::string message) { return {StatusCode::kInternal, std::move(message)}; }

// Holds either a T or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!status_.ok() && "StatusOr constructed from an OK Status");
    if (status_.ok()) status_ = internal_error("StatusOr constructed from an OK Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace longbow

#define LONGBOW_CONCAT_INNER(a, b) a##b
#define LONGBOW_CONCAT(a, b) LONGBOW_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::longbow::Status longbow_status_ = (expr);                 \
    if (!longbow_status_.ok()) return longbow_status_;          \
  } while (0)

// `ASSIGN_OR_RETURN(auto x, f());` declares x from a StatusOr, or returns its Status.
#define ASSIGN_OR_RETURN(lhs, expr) ASSIGN_OR_RETURN_IMPL(LONGBOW_CONCAT(longbow_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  lhs = std::move(tmp).value()
