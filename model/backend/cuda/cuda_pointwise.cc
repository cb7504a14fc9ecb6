#include "model/backend/cuda/cuda_pointwise.h"

#include <fmt/format.h>

#include <cmath>
#include <string_view>

#include "kernels/activation/params.h"
#include "kernels/elementwise/params.h"
#include "kernels/norm/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow::cuda_pointwise {
namespace {

using op_checks::dtype_is;
using op_checks::fits_int;
using op_checks::has_data;
using op_checks::shape_is;

Status check_bf16(std::string_view op, std::string_view name, const Tensor& t, std::initializer_list<int64_t> dims) {
  RETURN_IF_ERROR(dtype_is(op, name, t, DType::kBF16));
  RETURN_IF_ERROR(shape_is(op, name, t, dims));
  return has_data(op, name, t);
}

Status check_eps(std::string_view op, float eps) {
  if (std::isfinite(eps) && eps >= 0.0f) return Status::Ok();
  return invalid_argument(fmt::format("{}: eps {} must be finite and >= 0", op, eps));
}

// The shared checks of layer_norm and add_layer_norm; fills the params' weight, bias, rows and cols.
Status check_layer_norm(std::string_view op, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                        const Tensor& out, kernels::LayerNormParams& p) {
  RETURN_IF_ERROR(check_bf16(op, "x", x, {-1, -1}));
  RETURN_IF_ERROR(fits_int(op, "rows", x.dim(0)));
  RETURN_IF_ERROR(fits_int(op, "cols", x.dim(1)));
  const int64_t rows = x.dim(0), cols = x.dim(1);
  RETURN_IF_ERROR(check_bf16(op, "weight", weight, {cols}));
  if (bias.data != nullptr) RETURN_IF_ERROR(check_bf16(op, "bias", bias, {cols}));
  RETURN_IF_ERROR(check_bf16(op, "out", out, {rows, cols}));
  RETURN_IF_ERROR(check_eps(op, eps));
  if (rows > 0 && cols == 0) return invalid_argument(fmt::format("{}: rows of 0 columns have no statistics", op));
  p.weight = weight.data;
  p.bias = bias.data;
  p.rows = static_cast<int>(rows);
  p.cols = static_cast<int>(cols);
  p.eps = eps;
  return Status::Ok();
}

Status check_map(std::string_view op, const Tensor& x) {
  if (x.dtype != DType::kBF16 && x.dtype != DType::kF32) {
    return invalid_argument(fmt::format("{}: x has dtype {}, expected BF16 or F32", op, dtype_name(x.dtype)));
  }
  return has_data(op, "x", x);
}

}  // namespace

Status gated_activation(cudaStream_t stream, Activation act, const Tensor& gate, const Tensor& up, Tensor& out) {
  constexpr std::string_view op = "gated_activation";
  RETURN_IF_ERROR(check_bf16(op, "gate", gate, {-1, -1}));
  RETURN_IF_ERROR(check_bf16(op, "up", up, {gate.dim(0), gate.dim(1)}));
  RETURN_IF_ERROR(check_bf16(op, "out", out, {gate.dim(0), gate.dim(1)}));
  kernels::GatedActivationParams p;
  p.gate = gate.data;
  p.up = up.data;
  p.out = out.data;
  p.count = gate.numel();
  switch (act) {
    case Activation::kSilu: p.act = kernels::GatedActivation::kSilu; break;
    case Activation::kGeluTanh: p.act = kernels::GatedActivation::kGeluTanh; break;
    case Activation::kGelu: p.act = kernels::GatedActivation::kGelu; break;
    case Activation::kSigmoid: p.act = kernels::GatedActivation::kSigmoid; break;
  }
  return cuda_status(kernels::launch_gated_activation(p, stream), op);
}

Status layer_norm(cudaStream_t stream, const Tensor& x, const Tensor& weight, const Tensor& bias, float eps,
                  Tensor& out) {
  constexpr std::string_view op = "layer_norm";
  kernels::LayerNormParams p;
  RETURN_IF_ERROR(check_layer_norm(op, x, weight, bias, eps, out, p));
  p.x = x.data;
  p.out = out.data;
  return cuda_status(kernels::launch_layer_norm(p, stream), op);
}

Status add_layer_norm(cudaStream_t stream, Tensor& residual, const Tensor& delta, const Tensor& weight,
                      const Tensor& bias, float eps, Tensor& out) {
  constexpr std::string_view op = "add_layer_norm";
  kernels::LayerNormParams p;
  RETURN_IF_ERROR(check_layer_norm(op, residual, weight, bias, eps, out, p));
  RETURN_IF_ERROR(check_bf16(op, "delta", delta, {residual.dim(0), residual.dim(1)}));
  p.residual = residual.data;
  p.delta = delta.data;
  p.out = out.data;
  return cuda_status(kernels::launch_add_layer_norm(p, stream), op);
}

Status scale(cudaStream_t stream, Tensor& x, float factor) {
  constexpr std::string_view op = "scale";
  RETURN_IF_ERROR(check_map(op, x));
  if (!std::isfinite(factor)) return invalid_argument("scale: factor is not finite");
  kernels::ScaleParams p;
  p.x = x.data;
  p.count = x.numel();
  p.x_f32 = x.dtype == DType::kF32;
  p.value = factor;
  return cuda_status(kernels::launch_scale(p, stream), op);
}

Status softcap(cudaStream_t stream, Tensor& x, float cap) {
  constexpr std::string_view op = "softcap";
  RETURN_IF_ERROR(check_map(op, x));
  if (!(cap > 0.0f) || !std::isfinite(cap)) return invalid_argument("softcap: cap must be finite and > 0");
  kernels::ScaleParams p;
  p.x = x.data;
  p.count = x.numel();
  p.x_f32 = x.dtype == DType::kF32;
  p.value = cap;
  return cuda_status(kernels::launch_softcap(p, stream), op);
}

}  // namespace longbow::cuda_pointwise
