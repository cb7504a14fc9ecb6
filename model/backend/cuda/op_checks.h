// Argument checks for backend ops: each failure is INVALID_ARGUMENT naming the op, the tensor and
// what was expected, so a runtime bug reads as a message rather than a device fault.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "common/dtype.h"
#include "common/status.h"
#include "model/backend/tensor.h"

namespace longbow::op_checks {

inline std::string where(std::string_view op, std::string_view tensor) {
  return std::string(op) + ": " + std::string(tensor);
}

inline Status dtype_is(std::string_view op, std::string_view name, const Tensor& t, DType want) {
  if (t.dtype == want) return Status::Ok();
  return invalid_argument(where(op, name) + " has dtype " + std::string(dtype_name(t.dtype)) + ", expected " +
                          std::string(dtype_name(want)));
}

inline Status rank_is(std::string_view op, std::string_view name, const Tensor& t, int rank) {
  if (t.rank == rank) return Status::Ok();
  return invalid_argument(where(op, name) + " has shape " + t.shape_string() + ", expected rank " +
                          std::to_string(rank));
}

// dims: -1 matches anything.
inline Status shape_is(std::string_view op, std::string_view name, const Tensor& t, std::initializer_list<int64_t> dims) {
  bool ok = t.rank == static_cast<int>(dims.size());
  int i = 0;
  for (int64_t d : dims) {
    if (!ok) break;
    if (d >= 0 && t.dim(i) != d) ok = false;
    ++i;
  }
  if (ok) return Status::Ok();
  std::string want = "[";
  i = 0;
  for (int64_t d : dims) {
    if (i++) want += ", ";
    want += d >= 0 ? std::to_string(d) : std::string("*");
  }
  return invalid_argument(where(op, name) + " has shape " + t.shape_string() + ", expected " + want + "]");
}

inline Status has_data(std::string_view op, std::string_view name, const Tensor& t) {
  if (t.data != nullptr || t.numel() == 0) return Status::Ok();
  return invalid_argument(where(op, name) + " has no data");
}

// dtype_is, shape_is and has_data together: the usual check of one tensor argument.
inline Status tensor_is(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
                        std::initializer_list<int64_t> dims) {
  RETURN_IF_ERROR(dtype_is(op, name, t, dtype));
  RETURN_IF_ERROR(shape_is(op, name, t, dims));
  return has_data(op, name, t);
}

inline Status fits_int(std::string_view op, std::string_view name, int64_t value) {
  if (value >= 0 && value <= INT32_MAX) return Status::Ok();
  return invalid_argument(where(op, name) + " size " + std::to_string(value) + " exceeds the int32 range");
}

}  // namespace longbow::op_checks
