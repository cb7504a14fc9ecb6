#include "model/backend/cpu/cpu_checks.h"

#include "model/backend/backend.h"

#include <cstddef>
#include <string>
#include <vector>

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

namespace {
std::string num(int64_t v) { return std::to_string(v); }
}  // namespace

// Rows and lengths as in paged attention: query_start runs from 0 to `rows`, every context holds its
// rows, and context 0 is allowed only for a one-query padding row (its length is 0).
Status check_lengths(std::string_view op, const Tensor& query_start, const Tensor& context_lens, int64_t rows) {
  int64_t seqs = context_lens.dim(0);
  const int32_t* starts = query_start.as<int32_t>();
  if (starts[0] != 0 || starts[seqs] != rows) {
    return invalid_argument(std::string(op) + ": query_start must run from 0 to the row count " + num(rows));
  }
  for (int64_t s = 0; s < seqs; ++s) {
    int64_t q_len = int64_t{starts[s + 1]} - starts[s];
    int64_t ctx = context_lens.as<int32_t>()[s];
    const bool padding_row = ctx == 0 && q_len == 1;
    if (q_len < 0 || (!padding_row && (ctx < 1 || ctx < q_len))) {
      return invalid_argument(std::string(op) + ": sequence " + num(s) + " has " + num(q_len) +
                              " rows and context " + num(ctx));
    }
  }
  return Status::Ok();
}

// check_lengths, and every page id the contexts need (a padding row needs none) inside the pool.
Status check_rows(std::string_view op, const Tensor& query_start, const Tensor& context_lens,
                  const Tensor& block_tables, int64_t rows, int64_t pages) {
  RETURN_IF_ERROR(check_lengths(op, query_start, context_lens, rows));
  for (int64_t s = 0; s < context_lens.dim(0); ++s) {
    int64_t ctx = context_lens.as<int32_t>()[s];
    int64_t needed = (ctx + kPageSize - 1) / kPageSize;
    if (needed > block_tables.dim(1)) {
      return invalid_argument(std::string(op) + ": context " + num(ctx) + " needs " + num(needed) +
                              " pages, block_tables has " + num(block_tables.dim(1)));
    }
    for (int64_t b = 0; b < needed; ++b) {
      int32_t page = block_tables.as<int32_t>()[s * block_tables.dim(1) + b];
      if (page < 0 || page >= pages) {
        return invalid_argument(std::string(op) + ": block_tables[" + num(s) + "][" + num(b) + "] = " + num(page) +
                                " is outside the pool [0, " + num(pages) + ")");
      }
    }
  }
  return Status::Ok();
}

// Length (position + 1) of every row; 0 for a padding row (one query, context 0).
std::vector<int64_t> row_lengths(const Tensor& query_start, const Tensor& context_lens) {
  std::vector<int64_t> lens;
  for (int64_t s = 0; s < context_lens.dim(0); ++s) {
    int64_t begin = query_start.as<int32_t>()[s], end = query_start.as<int32_t>()[s + 1];
    int64_t ctx = context_lens.as<int32_t>()[s];
    for (int64_t r = begin; r < end; ++r) lens.push_back(ctx - (end - begin) + (r - begin) + 1);
  }
  return lens;
}

}  // namespace longbow::cpu
