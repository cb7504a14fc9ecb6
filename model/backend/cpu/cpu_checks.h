// Argument validation shared by the CPU backend's ops.
//
// Every op checks each tensor's dtype and shape before touching memory, so that a runtime bug shows
// up as INVALID_ARGUMENT naming the op and the tensor rather than as a wrong answer or a crash.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "model/backend/tensor.h"

namespace longbow::cpu {

// A wildcard in an expected shape.
constexpr int64_t kAnyDim = -1;

// OK when `t` has `dtype`, rank dims.size(), every dim equal to the expected one (kAnyDim matches
// anything) and memory behind it. Otherwise INVALID_ARGUMENT like
// "rms_norm: tensor 'out' is F32 [3, 5], expected F32 [3, 4]".
Status check_tensor(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
                    std::initializer_list<int64_t> dims);

// The geometry of attention over the paged cache: q [tokens, q_heads, head_dim] against K and V
// pools [pages, kPageSize, kv_heads, head_dim].
struct PagedKvShape {
  int64_t tokens = 0, q_heads = 0, head_dim = 0, pages = 0, kv_heads = 0;
};

// Checks q, k_cache and v_cache (F32, one head_dim, pools of `page_size`-token pages, kv_heads
// dividing q_heads) and returns their geometry; INVALID_ARGUMENT naming `op` and the tensor otherwise.
StatusOr<PagedKvShape> check_paged_kv(std::string_view op, const Tensor& q, const Tensor& k_cache,
                                      const Tensor& v_cache, int64_t page_size);

// True when the byte ranges of a and b intersect.
bool overlaps(const Tensor& a, const Tensor& b);

// INVALID_ARGUMENT "<op>: tensor '<a>' overlaps '<b>'" when they share memory.
Status check_disjoint(std::string_view op, std::string_view a_name, const Tensor& a, std::string_view b_name,
                      const Tensor& b);

// Rows and lengths as in paged attention: query_start [S + 1] runs from 0 to `rows`, every context
// holds its rows, and context 0 is allowed only for a one-query padding row (its length is 0).
Status check_lengths(std::string_view op, const Tensor& query_start, const Tensor& context_lens, int64_t rows);

// check_lengths, and every page id the contexts need (a padding row needs none) inside a pool of
// `pages` pages.
Status check_rows(std::string_view op, const Tensor& query_start, const Tensor& context_lens,
                  const Tensor& block_tables, int64_t rows, int64_t pages);

// Length (position + 1) of every row; 0 for a padding row (one query, context 0).
std::vector<int64_t> row_lengths(const Tensor& query_start, const Tensor& context_lens);

}  // namespace longbow::cpu
