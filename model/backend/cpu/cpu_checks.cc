#include "model/backend/cpu/cpu_checks.h"

#include <cstddef>
#include <string>

namespace longbow::cpu {
namespace {

std::string expected_string(DType dtype, std::initializer_list<int64_t> dims) {
  std::string out = std::string(dtype_name(dtype)) + " [";
  bool first = true;
  for (int64_t d : dims) {
    if (!first) out += ", ";
    first = false;
    out += d == kAnyDim ? std::string("*") : std::to_string(d);
  }
  return out + "]";
}

}  // namespace

Status check_tensor(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
                    std::initializer_list<int64_t> dims) {
  bool match = t.dtype == dtype && t.rank == static_cast<int>(dims.size());
  if (match) {
    int i = 0;
    for (int64_t d : dims) {
      if (t.dim(i) < 0 || (d != kAnyDim && t.dim(i) != d)) match = false;
      ++i;
    }
  }
  if (!match) {
    return invalid_argument(std::string(op) + ": tensor '" + std::string(name) + "' is " +
                            std::string(dtype_name(t.dtype)) + " " + t.shape_string() + ", expected " +
                            expected_string(dtype, dims));
  }
  if (t.numel() > 0 && t.data == nullptr) {
    return invalid_argument(std::string(op) + ": tensor '" + std::string(name) + "' " + t.shape_string() +
                            " has no memory (data is null)");
  }
  return Status::Ok();
}

bool overlaps(const Tensor& a, const Tensor& b) {
  if (a.data == nullptr || b.data == nullptr || a.num_bytes() == 0 || b.num_bytes() == 0) return false;
  auto a_begin = reinterpret_cast<uintptr_t>(a.data);
  auto b_begin = reinterpret_cast<uintptr_t>(b.data);
  return a_begin < b_begin + b.num_bytes() && b_begin < a_begin + a.num_bytes();
}

Status check_disjoint(std::string_view op, std::string_view a_name, const Tensor& a, std::string_view b_name,
                      const Tensor& b) {
  if (!overlaps(a, b)) return Status::Ok();
  return invalid_argument(std::string(op) + ": tensor '" + std::string(a_name) + "' overlaps tensor '" +
                          std::string(b_name) + "'; this op cannot run in place");
}

}  // namespace longbow::cpu
