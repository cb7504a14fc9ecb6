// CudaBackend's multi-head latent attention ops: head_matmul on cuBLAS, append_latent and
// latent_attention over kernels/mla (kernel design in latent_attention.cu).
#include "model/backend/cuda/cuda_mla.h"

#include <cublas_v2.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "kernels/mla/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow::cuda_mla {
namespace {

static_assert(kernels::kMlaPageSize == kPageSize, "kernels and model disagree on the latent page size");

using op_checks::fits_int;

Status check(std::string_view op, std::string_view name, const Tensor& t, DType dtype,
             std::initializer_list<int64_t> dims) {
  return op_checks::tensor_is(op, name, t, dtype, dims);
}

bool overlap(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.data);
  const auto* b0 = static_cast<const char*>(b.data);
  return a.num_bytes() > 0 && b.num_bytes() > 0 && a0 < b0 + b.num_bytes() && b0 < a0 + a.num_bytes();
}

}  // namespace

Status supports_latent_attention(int latent_dim, int rope_dim, int num_heads) {
  constexpr std::string_view op = "latent_attention";
  if (latent_dim < 2 || latent_dim > kernels::kMlaMaxLatentDim || latent_dim % 2 != 0) {
    return unimplemented(fmt::format("{}: kv_lora_rank (latent dim) {} has no CUDA kernel (supported: even, 2 to {})",
                                     op, latent_dim, kernels::kMlaMaxLatentDim));
  }
  if (rope_dim < 0 || rope_dim > kernels::kMlaMaxRopeDim || rope_dim % 2 != 0) {
    return unimplemented(fmt::format("{}: qk_rope_head_dim {} has no CUDA kernel (supported: even, 0 to {})", op,
                                     rope_dim, kernels::kMlaMaxRopeDim));
  }
  if (num_heads < 1) return unimplemented(fmt::format("{}: {} heads (need at least 1)", op, num_heads));
  return Status::Ok();
}

// Per head h, with W_h = w[h] rows [row_begin, row_begin + n) ([n, C] row-major, leading dim C) and the
// head's rows of x and out strided by H·(their width) in memory. cuBLAS is column-major, so each
// row-major matrix below is read as its transpose:
//   transpose_w = false: out_h [T, n] = x_h [T, C] · W_hᵀ   →  out_hᵀ [n, T] = W_h · x_hᵀ:
//     A = W_h as the column-major [C, n] (lda C) with op T, B = x_hᵀ [C, T] (ldb H·C), C ldc H·n.
//   transpose_w = true:  out_h [T, C] = x_h [T, n] · W_h     →  out_hᵀ [C, T] = W_hᵀ · x_hᵀ:
//     A = W_hᵀ, the column-major [C, n] (lda C) as is, B = x_hᵀ [n, T] (ldb H·n), C ldc H·C.
// Batch strides (elements): A R·C (one head's block of w), B and C one head's width.
Status head_matmul(const Context& ctx, const HeadMatmulArgs& a) {
  constexpr std::string_view op = "head_matmul";
  RETURN_IF_ERROR(check(op, "w", a.w, DType::kBF16, {-1, -1, -1}));
  const int64_t heads = a.w.dim(0), rows = a.w.dim(1), cols = a.w.dim(2), n = a.num_rows;
  if (a.row_begin < 0 || n < 1 || a.row_begin + n > rows) {
    return invalid_argument(fmt::format("{}: rows [{}, {}) are outside w's {} rows per head", op, a.row_begin,
                                        a.row_begin + n, rows));
  }
  const int64_t in = a.transpose_w ? n : cols, out_dim = a.transpose_w ? cols : n;
  RETURN_IF_ERROR(check(op, "x", a.x, DType::kBF16, {-1, heads, in}));
  const int64_t tokens = a.x.dim(0);
  RETURN_IF_ERROR(check(op, "out", a.out, DType::kBF16, {tokens, heads, out_dim}));
  if (overlap(a.out, a.x) || overlap(a.out, a.w)) {
    return invalid_argument(fmt::format("{}: out overlaps x or w", op));
  }
  RETURN_IF_ERROR(fits_int(op, "x", tokens));
  RETURN_IF_ERROR(fits_int(op, "w", heads));
  RETURN_IF_ERROR(fits_int(op, "x row", heads * in));
  RETURN_IF_ERROR(fits_int(op, "out row", heads * out_dim));
  if (heads == 0 || cols == 0) {
    return invalid_argument(fmt::format("{}: w {} has no heads or no columns", op, a.w.shape_string()));
  }
  if (tokens == 0) return Status::Ok();

  // W_0: head 0's row row_begin (bf16 elements).
  const void* w_h = static_cast<const char*>(a.w.data) + a.row_begin * cols * static_cast<int64_t>(sizeof(uint16_t));
  const cublasOperation_t op_a = a.transpose_w ? CUBLAS_OP_N : CUBLAS_OP_T;
  const int m = static_cast<int>(out_dim), k = static_cast<int>(in);
  const float alpha = 1.0f, beta = 0.0f;
  CUBLAS_RETURN_IF_ERROR(cublasGemmStridedBatchedEx(
      ctx.cublas, op_a, CUBLAS_OP_N, m, static_cast<int>(tokens), k, &alpha, w_h, CUDA_R_16BF,
      static_cast<int>(cols), static_cast<long long>(rows * cols), a.x.data, CUDA_R_16BF, static_cast<int>(heads * in),
      static_cast<long long>(in), &beta, a.out.data, CUDA_R_16BF, static_cast<int>(heads * out_dim),
      static_cast<long long>(out_dim), static_cast<int>(heads), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return Status::Ok();
}

Status append_latent(const Context& ctx, const AppendLatentArgs& a) {
  constexpr std::string_view op = "append_latent";
  RETURN_IF_ERROR(check(op, "latent", a.latent, DType::kBF16, {-1, -1}));
  const int64_t tokens = a.latent.dim(0), dl = a.latent.dim(1);
  RETURN_IF_ERROR(check(op, "rope_key", a.rope_key, DType::kBF16, {tokens, -1}));
  const int64_t dr = a.rope_key.dim(1);
  RETURN_IF_ERROR(check(op, "slots", a.slots, DType::kI32, {tokens}));
  RETURN_IF_ERROR(check(op, "cache", a.cache, DType::kBF16, {-1, kPageSize, dl + dr}));
  RETURN_IF_ERROR(fits_int(op, "latent", tokens));
  RETURN_IF_ERROR(fits_int(op, "latent row", dl));
  RETURN_IF_ERROR(fits_int(op, "rope_key row", dr));
  if (overlap(a.cache, a.latent) || overlap(a.cache, a.rope_key)) {
    return invalid_argument(fmt::format("{}: cache overlaps latent or rope_key", op));
  }
  if (tokens == 0) return Status::Ok();
  kernels::AppendLatentParams p;
  p.latent = a.latent.data;
  p.rope_key = a.rope_key.data;
  p.slots = a.slots.as<int>();
  p.cache = a.cache.data;
  p.tokens = static_cast<int>(tokens);
  p.latent_dim = static_cast<int>(dl);
  p.rope_dim = static_cast<int>(dr);
  p.num_slots = a.cache.dim(0) * kPageSize;
  return cuda_status(kernels::launch_append_latent(p, ctx.stream), op);
}

Status latent_attention(const Context& ctx, const LatentAttentionArgs& a) {
  constexpr std::string_view op = "latent_attention";
  RETURN_IF_ERROR(check(op, "q_latent", a.q_latent, DType::kBF16, {-1, -1, -1}));
  const int64_t rows = a.q_latent.dim(0), heads = a.q_latent.dim(1), dl = a.q_latent.dim(2);
  RETURN_IF_ERROR(check(op, "q_rope", a.q_rope, DType::kBF16, {rows, heads, -1}));
  const int64_t dr = a.q_rope.dim(2);
  RETURN_IF_ERROR(fits_int(op, "q_latent", rows));
  RETURN_IF_ERROR(fits_int(op, "q_latent heads", heads));
  if (dl > kernels::kMlaMaxLatentDim || dr > kernels::kMlaMaxRopeDim) {  // before narrowing to int
    return supports_latent_attention(static_cast<int>(std::min<int64_t>(dl, INT32_MAX)),
                                     static_cast<int>(std::min<int64_t>(dr, INT32_MAX)), 1);
  }
  RETURN_IF_ERROR(supports_latent_attention(static_cast<int>(dl), static_cast<int>(dr),
                                            static_cast<int>(std::max<int64_t>(heads, 1))));
  RETURN_IF_ERROR(check(op, "cache", a.cache, DType::kBF16, {-1, kPageSize, dl + dr}));
  RETURN_IF_ERROR(check(op, "context_lens", a.context_lens, DType::kI32, {-1}));
  const int64_t seqs = a.context_lens.dim(0);
  RETURN_IF_ERROR(check(op, "query_start", a.query_start, DType::kI32, {seqs + 1}));
  RETURN_IF_ERROR(check(op, "block_tables", a.block_tables, DType::kI32, {seqs, -1}));
  RETURN_IF_ERROR(check(op, "out", a.out, DType::kBF16, {rows, heads, dl}));
  const bool sparse = a.indices.data != nullptr;
  if (sparse) RETURN_IF_ERROR(check(op, "indices", a.indices, DType::kI32, {rows, -1}));
  if (overlap(a.out, a.q_latent) || overlap(a.out, a.q_rope) || overlap(a.out, a.cache)) {
    return invalid_argument(fmt::format("{}: out overlaps q_latent, q_rope or cache", op));
  }
  if (!std::isfinite(a.scale)) return invalid_argument(fmt::format("{}: scale {} is not finite", op, a.scale));
  if (a.max_query_len < 0 || a.max_context_len < 0) {
    return invalid_argument(fmt::format("{}: launch hints max_query_len {} and max_context_len {} must be >= 0", op,
                                        a.max_query_len, a.max_context_len));
  }
  if (a.block_tables.dim(1) * kPageSize < a.max_context_len) {
    return invalid_argument(fmt::format("{}: block_tables {} cannot cover max_context_len {}", op,
                                        a.block_tables.shape_string(), a.max_context_len));
  }
  RETURN_IF_ERROR(fits_int(op, "context_lens", seqs));
  RETURN_IF_ERROR(fits_int(op, "block_tables", a.block_tables.dim(1)));
  RETURN_IF_ERROR(fits_int(op, "cache slots", a.cache.dim(0) * kPageSize));
  if (sparse) RETURN_IF_ERROR(fits_int(op, "indices", a.indices.dim(1)));
  if (rows == 0 || heads == 0) return Status::Ok();
  if (seqs == 0) return invalid_argument(fmt::format("{}: {} query rows but no sequence", op, rows));

  kernels::LatentAttentionParams p;
  p.q_latent = a.q_latent.data;
  p.q_rope = a.q_rope.data;
  p.cache = a.cache.data;
  p.query_start = a.query_start.as<int>();
  p.context_lens = a.context_lens.as<int>();
  p.block_tables = a.block_tables.as<int>();
  p.indices = sparse ? a.indices.as<int>() : nullptr;
  p.out = a.out.data;
  p.seqs = static_cast<int>(seqs);
  p.rows = static_cast<int>(rows);
  p.heads = static_cast<int>(heads);
  p.latent_dim = static_cast<int>(dl);
  p.rope_dim = static_cast<int>(dr);
  p.max_pages = static_cast<int>(a.block_tables.dim(1));
  p.num_pages = static_cast<int>(a.cache.dim(0));
  p.topk = sparse ? static_cast<int>(a.indices.dim(1)) : 0;
  p.scale = a.scale;
  p.num_sms = ctx.num_sms;
  return cuda_status(kernels::launch_latent_attention(p, ctx.stream), op);
}

}  // namespace longbow::cuda_mla
