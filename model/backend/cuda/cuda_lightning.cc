// CudaBackend::lightning_attention over kernels/linear_attention (kernel design in lightning.cu).
#include "model/backend/cuda/cuda_lightning.h"

#include <fmt/format.h>

#include <cstdint>
#include <string_view>

#include "kernels/linear_attention/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow::cuda_lightning {
namespace {

constexpr std::string_view kOp = "lightning_attention";

using op_checks::fits_int;

Status check(std::string_view name, const Tensor& t, DType dtype, std::initializer_list<int64_t> dims) {
  return op_checks::tensor_is(kOp, name, t, dtype, dims);
}

bool overlap(const Tensor& a, const Tensor& b) {
  const auto* a0 = static_cast<const char*>(a.data);
  const auto* b0 = static_cast<const char*>(b.data);
  return a.num_bytes() > 0 && b.num_bytes() > 0 && a0 < b0 + b.num_bytes() && b0 < a0 + a.num_bytes();
}

}  // namespace

Status supports_head_dim(int head_dim) {
  if (head_dim >= 1 && head_dim <= kernels::kLightningMaxHeadDim) return Status::Ok();
  return unimplemented(fmt::format("{}: head_dim {} has no CUDA kernel (supported: 1 to {})", kOp, head_dim,
                                   kernels::kLightningMaxHeadDim));
}

Status lightning_attention(cudaStream_t stream, const LightningAttentionArgs& a) {
  const int64_t h = a.num_heads, d = a.head_dim;
  if (h <= 0 || d <= 0) return invalid_argument(fmt::format("{}: num_heads {} and head_dim {} must be > 0", kOp, h, d));
  if (a.block_size <= 0) return invalid_argument(fmt::format("{}: block_size {} must be > 0", kOp, a.block_size));
  RETURN_IF_ERROR(supports_head_dim(a.head_dim));
  if (h > 65535) return unimplemented(fmt::format("{}: num_heads {} exceeds 65535", kOp, h));
  RETURN_IF_ERROR(check("qkv", a.qkv, DType::kBF16, {-1, h * 3 * d}));
  const int64_t tokens = a.qkv.dim(0);
  RETURN_IF_ERROR(check("slopes", a.slopes, DType::kF32, {h}));
  RETURN_IF_ERROR(check("state", a.state, DType::kF32, {-1, h, d, d}));
  RETURN_IF_ERROR(check("query_start", a.query_start, DType::kI32, {-1}));
  const int64_t seqs = a.query_start.dim(0) - 1;
  if (seqs < 0) return invalid_argument(fmt::format("{}: query_start is empty", kOp));
  RETURN_IF_ERROR(check("context_lens", a.context_lens, DType::kI32, {seqs}));
  RETURN_IF_ERROR(check("slots", a.slots, DType::kI32, {seqs}));
  RETURN_IF_ERROR(check("out", a.out, DType::kBF16, {tokens, h * d}));
  if (overlap(a.out, a.qkv) || overlap(a.out, a.state)) {
    return invalid_argument(fmt::format("{}: out overlaps qkv or state", kOp));
  }
  RETURN_IF_ERROR(fits_int(kOp, "query_start", seqs));
  RETURN_IF_ERROR(fits_int(kOp, "qkv", tokens));
  RETURN_IF_ERROR(fits_int(kOp, "state", a.state.dim(0)));
  if (a.max_query_len < 0 || (seqs > 0 && tokens > 0 && a.max_query_len < 1)) {
    return invalid_argument(fmt::format("{}: max_query_len {} cannot bound {} rows of {} sequences", kOp,
                                        a.max_query_len, tokens, seqs));
  }
  if (seqs == 0 || tokens == 0) return Status::Ok();

  kernels::LightningParams p;
  p.qkv = a.qkv.data;
  p.slopes = a.slopes.as<float>();
  p.state = a.state.as<float>();
  p.query_start = a.query_start.as<int>();
  p.context_lens = a.context_lens.as<int>();
  p.slots = a.slots.as<int>();
  p.out = a.out.data;
  p.seqs = static_cast<int>(seqs);
  p.heads = static_cast<int>(h);
  p.head_dim = static_cast<int>(d);
  p.num_slots = static_cast<int>(a.state.dim(0));
  p.max_query_len = a.max_query_len;
  return cuda_status(kernels::launch_lightning_attention(p, stream), kOp);
}

}  // namespace longbow::cuda_lightning
