// CpuBackend's row-wise ops: embedding, RMSNorm and LayerNorm, RoPE, gated activations, scale and
// soft-cap, row gather.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "model/backend/cpu/cpu_backend.h"
#include "model/backend/cpu/cpu_activation.h"
#include "model/backend/cpu/cpu_checks.h"

namespace longbow {

using cpu::check_tensor;
using cpu::kAnyDim;

namespace {

constexpr DType kF32 = DType::kF32;
constexpr DType kI32 = DType::kI32;

// INVALID_ARGUMENT when any of the n indices falls outside [0, limit).
Status check_indices(std::string_view op, std::string_view name, const int32_t* values, int64_t n,
                     int64_t limit) {
  for (int64_t i = 0; i < n; ++i) {
    if (values[i] < 0 || values[i] >= limit) {
      return invalid_argument(std::string(op) + ": " + std::string(name) + "[" + std::to_string(i) + "] = " +
                              std::to_string(values[i]) + " is outside [0, " + std::to_string(limit) + ")");
    }
  }
  return Status::Ok();
}

Status check_eps(std::string_view op, float eps) {
  if (!(eps >= 0.0f) || !std::isfinite(eps)) {
    return invalid_argument(std::string(op) + ": eps must be finite and >= 0, got " + std::to_string(eps));
  }
  return Status::Ok();
}

// out[c] = x[c] / sqrt(mean(x²) + eps) · weight[c] for one row of C values; out may equal x.
void rms_norm_row(const float* x, const float* weight, float eps, int64_t cols, float* out) {
  double sum_squares = 0.0;
  for (int64_t c = 0; c < cols; ++c) sum_squares += static_cast<double>(x[c]) * x[c];
  double inv_rms = 1.0 / std::sqrt(sum_squares / static_cast<double>(cols) + eps);
  for (int64_t c = 0; c < cols; ++c) out[c] = static_cast<float>(x[c] * inv_rms * weight[c]);
}

// INVALID_ARGUMENT unless x is F32 with memory behind it (element-wise ops take any rank).
Status check_f32_data(std::string_view op, const Tensor& x) {
  if (x.dtype != kF32 || (x.data == nullptr && x.numel() > 0)) {
    return invalid_argument(fmt::format("{}: tensor 'x' must be F32 with memory behind it", op));
  }
  return Status::Ok();
}

// out[c] = (x[c] − mean) / sqrt(var + eps) · weight[c] (+ bias[c]) for one row; out may equal x.
void layer_norm_row(const float* x, const float* weight, const float* bias, float eps, int64_t cols, float* out) {
  double sum = 0.0;
  for (int64_t c = 0; c < cols; ++c) sum += x[c];
  const double mean = sum / static_cast<double>(cols);
  double sum_squares = 0.0;
  for (int64_t c = 0; c < cols; ++c) sum_squares += (x[c] - mean) * (x[c] - mean);
  const double inv_std = 1.0 / std::sqrt(sum_squares / static_cast<double>(cols) + eps);
  for (int64_t c = 0; c < cols; ++c) {
    out[c] = static_cast<float>((x[c] - mean) * inv_std * weight[c] + (bias != nullptr ? bias[c] : 0.0f));
  }
}

// Rotates the leading 2·half dims of one head vector in place with the per-pair cos and sin.
void rotate_half_split(float* head, const float* cos, const float* sin, int64_t half) {
  for (int64_t i = 0; i < half; ++i) {
    float x = head[i];
    float y = head[i + half];
    head[i] = x * cos[i] - y * sin[i];
    head[i + half] = y * cos[i] + x * sin[i];
  }
}

}  // namespace

Status CpuBackend::embed(const Tensor& table, const Tensor& ids, Tensor& out) {
  RETURN_IF_ERROR(check_tensor("embed", "table", table, kF32, {kAnyDim, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("embed", "ids", ids, kI32, {kAnyDim}));
  int64_t vocab = table.dim(0), hidden = table.dim(1), tokens = ids.dim(0);
  RETURN_IF_ERROR(check_tensor("embed", "out", out, kF32, {tokens, hidden}));
  RETURN_IF_ERROR(cpu::check_disjoint("embed", "out", out, "table", table));
  RETURN_IF_ERROR(check_indices("embed", "ids", ids.as<int32_t>(), tokens, vocab));
  for (int64_t t = 0; t < tokens; ++t) {
    std::memcpy(out.as<float>() + t * hidden, table.as<float>() + ids.as<int32_t>()[t] * hidden,
                 static_cast<size_t>(hidden) * sizeof(float));
  }
  return Status::Ok();
}

Status CpuBackend::embed_shard(const Tensor& table, const Tensor& ids, int64_t vocab_begin, Tensor& out) {
  RETURN_IF_ERROR(check_tensor("embed_shard", "table", table, kF32, {kAnyDim, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("embed_shard", "ids", ids, kI32, {kAnyDim}));
  const int64_t rows = table.dim(0), hidden = table.dim(1), tokens = ids.dim(0);
  RETURN_IF_ERROR(check_tensor("embed_shard", "out", out, kF32, {tokens, hidden}));
  RETURN_IF_ERROR(cpu::check_disjoint("embed_shard", "out", out, "table", table));
  if (vocab_begin < 0) return invalid_argument(fmt::format("embed_shard: vocab_begin {} < 0", vocab_begin));
  for (int64_t t = 0; t < tokens; ++t) {
    const int64_t row = int64_t{ids.as<int32_t>()[t]} - vocab_begin;
    float* dst = out.as<float>() + t * hidden;
    if (row < 0 || row >= rows) {
      std::fill(dst, dst + hidden, 0.0f);
    } else {
      std::memcpy(dst, table.as<float>() + row * hidden, static_cast<size_t>(hidden) * sizeof(float));
    }
  }
  return Status::Ok();
}

Status CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) {
  RETURN_IF_ERROR(check_tensor("rms_norm", "x", x, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = x.dim(0), cols = x.dim(1);
  RETURN_IF_ERROR(check_tensor("rms_norm", "weight", weight, kF32, {cols}));
  RETURN_IF_ERROR(check_tensor("rms_norm", "out", out, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_eps("rms_norm", eps));
  if (out.data != x.data) RETURN_IF_ERROR(cpu::check_disjoint("rms_norm", "out", out, "x", x));
  for (int64_t r = 0; r < rows; ++r) {
    rms_norm_row(x.as<float>() + r * cols, weight.as<float>(), eps, cols, out.as<float>() + r * cols);
  }
  return Status::Ok();
}

Status CpuBackend::add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps,
                                Tensor& out) {
  RETURN_IF_ERROR(check_tensor("add_rms_norm", "residual", residual, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = residual.dim(0), cols = residual.dim(1);
  RETURN_IF_ERROR(check_tensor("add_rms_norm", "delta", delta, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_tensor("add_rms_norm", "weight", weight, kF32, {cols}));
  RETURN_IF_ERROR(check_tensor("add_rms_norm", "out", out, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_eps("add_rms_norm", eps));
  RETURN_IF_ERROR(cpu::check_disjoint("add_rms_norm", "out", out, "residual", residual));
  if (out.data != delta.data) RETURN_IF_ERROR(cpu::check_disjoint("add_rms_norm", "out", out, "delta", delta));
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual.as<float>() + r * cols;
    const float* d = delta.as<float>() + r * cols;
    for (int64_t c = 0; c < cols; ++c) res[c] += d[c];
    rms_norm_row(res, weight.as<float>(), eps, cols, out.as<float>() + r * cols);
  }
  return Status::Ok();
}

Status CpuBackend::rope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                        float attention_scaling) {
  RETURN_IF_ERROR(check_tensor("rope", "q", q, kF32, {kAnyDim, kAnyDim, kAnyDim}));
  int64_t tokens = q.dim(0), q_heads = q.dim(1), head_dim = q.dim(2);
  RETURN_IF_ERROR(check_tensor("rope", "k", k, kF32, {tokens, kAnyDim, head_dim}));
  int64_t k_heads = k.dim(1);
  RETURN_IF_ERROR(check_tensor("rope", "positions", positions, kI32, {tokens}));
  RETURN_IF_ERROR(check_tensor("rope", "inv_freq", inv_freq, kF32, {kAnyDim}));
  int64_t half = inv_freq.dim(0);
  if (2 * half > head_dim) {
    return invalid_argument("rope: inv_freq has " + std::to_string(half) + " pairs, more than head_dim " +
                            std::to_string(head_dim) + " / 2");
  }
  RETURN_IF_ERROR(cpu::check_disjoint("rope", "q", q, "k", k));
  const int32_t* pos = positions.as<int32_t>();
  for (int64_t t = 0; t < tokens; ++t) {
    if (pos[t] < 0) {
      return invalid_argument("rope: positions[" + std::to_string(t) + "] = " + std::to_string(pos[t]) +
                              " is negative");
    }
  }
  std::vector<float> cos(static_cast<size_t>(half)), sin(static_cast<size_t>(half));
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      // The angle is rounded to fp32 first, as transformers computes it (position · inv_freq in fp32).
      float angle = static_cast<float>(pos[t]) * inv_freq.as<float>()[i];
      cos[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention_scaling;
      sin[static_cast<size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention_scaling;
    }
    for (int64_t h = 0; h < q_heads; ++h) {
      rotate_half_split(q.as<float>() + (t * q_heads + h) * head_dim, cos.data(), sin.data(), half);
    }
    for (int64_t h = 0; h < k_heads; ++h) {
      rotate_half_split(k.as<float>() + (t * k_heads + h) * head_dim, cos.data(), sin.data(), half);
    }
  }
  return Status::Ok();
}

Status CpuBackend::gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) {
  constexpr std::string_view op = "gated_activation";
  RETURN_IF_ERROR(check_tensor(op, "gate", gate, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = gate.dim(0), cols = gate.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "up", up, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_tensor(op, "out", out, kF32, {rows, cols}));
  // Element i reads only gate[i] and up[i], so out may equal either; partial overlap is refused.
  if (out.data != gate.data) RETURN_IF_ERROR(cpu::check_disjoint(op, "out", out, "gate", gate));
  if (out.data != up.data) RETURN_IF_ERROR(cpu::check_disjoint(op, "out", out, "up", up));
  const int64_t n = gate.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double a = cpu::activate(act, gate.as<float>()[i]);
    out.as<float>()[i] = static_cast<float>(a * up.as<float>()[i]);
  }
  return Status::Ok();
}

Status CpuBackend::layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
  constexpr std::string_view op = "layer_norm";
  RETURN_IF_ERROR(check_tensor(op, "x", x, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = x.dim(0), cols = x.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "weight", weight, kF32, {cols}));
  if (bias.data != nullptr) RETURN_IF_ERROR(check_tensor(op, "bias", bias, kF32, {cols}));
  RETURN_IF_ERROR(check_tensor(op, "out", out, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_eps(op, eps));
  if (out.data != x.data) RETURN_IF_ERROR(cpu::check_disjoint(op, "out", out, "x", x));
  const float* b = bias.data != nullptr ? bias.as<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    layer_norm_row(x.as<float>() + r * cols, weight.as<float>(), b, eps, cols, out.as<float>() + r * cols);
  }
  return Status::Ok();
}

Status CpuBackend::add_layer_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, const Tensor& bias,
                                  float eps, Tensor& out) {
  constexpr std::string_view op = "add_layer_norm";
  RETURN_IF_ERROR(check_tensor(op, "residual", residual, kF32, {kAnyDim, kAnyDim}));
  int64_t rows = residual.dim(0), cols = residual.dim(1);
  RETURN_IF_ERROR(check_tensor(op, "delta", delta, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_tensor(op, "weight", weight, kF32, {cols}));
  if (bias.data != nullptr) RETURN_IF_ERROR(check_tensor(op, "bias", bias, kF32, {cols}));
  RETURN_IF_ERROR(check_tensor(op, "out", out, kF32, {rows, cols}));
  RETURN_IF_ERROR(check_eps(op, eps));
  RETURN_IF_ERROR(cpu::check_disjoint(op, "out", out, "residual", residual));
  if (out.data != delta.data) RETURN_IF_ERROR(cpu::check_disjoint(op, "out", out, "delta", delta));
  const float* b = bias.data != nullptr ? bias.as<float>() : nullptr;
  for (int64_t r = 0; r < rows; ++r) {
    float* res = residual.as<float>() + r * cols;
    const float* d = delta.as<float>() + r * cols;
    for (int64_t c = 0; c < cols; ++c) res[c] += d[c];
    layer_norm_row(res, weight.as<float>(), b, eps, cols, out.as<float>() + r * cols);
  }
  return Status::Ok();
}

Status CpuBackend::scale(Tensor& x, float factor) {
  RETURN_IF_ERROR(check_f32_data("scale", x));
  if (!std::isfinite(factor)) return invalid_argument("scale: factor is not finite");
  for (int64_t i = 0; i < x.numel(); ++i) x.as<float>()[i] *= factor;
  return Status::Ok();
}

Status CpuBackend::softcap(Tensor& x, float cap) {
  RETURN_IF_ERROR(check_f32_data("softcap", x));
  if (!(cap > 0.0f) || !std::isfinite(cap)) return invalid_argument("softcap: cap must be finite and > 0");
  for (int64_t i = 0; i < x.numel(); ++i) {
    x.as<float>()[i] = static_cast<float>(cap * std::tanh(static_cast<double>(x.as<float>()[i]) / cap));
  }
  return Status::Ok();
}

Status CpuBackend::gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) {
  RETURN_IF_ERROR(check_tensor("gather_rows", "x", x, kF32, {kAnyDim, kAnyDim}));
  RETURN_IF_ERROR(check_tensor("gather_rows", "rows", rows, kI32, {kAnyDim}));
  int64_t count = rows.dim(0), cols = x.dim(1);
  RETURN_IF_ERROR(check_tensor("gather_rows", "out", out, kF32, {count, cols}));
  RETURN_IF_ERROR(cpu::check_disjoint("gather_rows", "out", out, "x", x));
  RETURN_IF_ERROR(check_indices("gather_rows", "rows", rows.as<int32_t>(), count, x.dim(0)));
  for (int64_t s = 0; s < count; ++s) {
    std::memcpy(out.as<float>() + s * cols, x.as<float>() + rows.as<int32_t>()[s] * cols,
                static_cast<size_t>(cols) * sizeof(float));
  }
  return Status::Ok();
}

}  // namespace longbow
