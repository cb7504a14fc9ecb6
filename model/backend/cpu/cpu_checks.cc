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

StatusOr<PagedKvShape> check_paged_kv(std::string_view op, const Tensor& q, const Tensor& k_cache,
                                      const Tensor& v_cache, int64_t page_size) {
  RETURN_IF_ERROR(check_tensor(op, "q", q, DType::kF32, {kAnyDim, kAnyDim, kAnyDim}));
  PagedKvShape shape;
  shape.tokens = q.dim(0);
  shape.q_heads = q.dim(1);
  shape.head_dim = q.dim(2);
  RETURN_IF_ERROR(check_tensor(op, "k_cache", k_cache, DType::kF32, {kAnyDim, page_size, kAnyDim, shape.head_dim}));
  shape.pages = k_cache.dim(0);
  shape.kv_heads = k_cache.dim(2);
  RETURN_IF_ERROR(
      check_tensor(op, "v_cache", v_cache, DType::kF32, {shape.pages, page_size, shape.kv_heads, shape.head_dim}));
  if (shape.kv_heads == 0 || shape.q_heads % shape.kv_heads != 0) {
    return invalid_argument(std::string(op) + ": " + std::to_string(shape.q_heads) +
                            " query heads are not a multiple of " + std::to_string(shape.kv_heads) + " kv heads");
  }
  return shape;
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
