// Every table reproduces transformers 5.17 (modeling_rope_utils.py and the models'
// compute_default_rope_parameters) operation by operation in fp32, the way PyTorch evaluates it on the
// CPU. Checked against the models' RotaryEmbedding on 22 configs (every type, partial rotary, yarn
// with mscale/truncate/attention_factor): 10 tables bit-identical, the other 12 differ in a single
// element by 1 ulp (2 in one yarn table), because PyTorch's vectorized powf (SLEEF, <= 1 ulp) is
// not correctly rounded where glibc's powf is. The rules that make the rest exact:
//  - Python scalars meeting an fp32 tensor are rounded to fp32 first; scalar arithmetic between
//    Python numbers (correction dims, wavelength thresholds, attention factor) is in double.
//  - `scalar / tensor` is Tensor.__rtruediv__, i.e. reciprocal(tensor) * scalar: two roundings.
//  - `tensor / scalar` is a true fp32 division.
// This file is compiled with -ffp-contract=off: a fused multiply-add would round differently.
#include "model/config/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace longbow {
namespace {

// base ** (arange(0, dim, 2).float() / dim), the shared first step of every rope type.
std::vector<float> position_frequencies(double theta, int dim) {
  const float base = static_cast<float>(theta);
  std::vector<float> freqs(static_cast<size_t>(dim / 2));
  for (size_t i = 0; i < freqs.size(); ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    freqs[i] = std::pow(base, exponent);
  }
  return freqs;
}

// compute_default_rope_parameters: inv_freq = 1.0 / pos_freq.
std::vector<float> default_inv_freq(const RopeConfig& rope) {
  std::vector<float> inv_freq = position_frequencies(rope.theta, rope.rotary_dim);
  for (float& f : inv_freq) f = 1.0f / f;
  return inv_freq;
}

// _compute_linear_scaling_rope_parameters: inv_freq /= factor.
std::vector<float> linear_inv_freq(const RopeConfig& rope) {
  std::vector<float> inv_freq = default_inv_freq(rope);
  const float factor = static_cast<float>(rope.factor);
  for (float& f : inv_freq) f = f / factor;
  return inv_freq;
}

// _compute_llama3_parameters: wavelengths shorter than original/high_freq_factor keep their
// frequency, longer than original/low_freq_factor are divided by factor, and the band between is
// interpolated by smooth_factor = (original / wavelen - low) / (high - low).
std::vector<float> llama3_inv_freq(const RopeConfig& rope) {
  std::vector<float> inv_freq = default_inv_freq(rope);
  const double old_context_len = rope.original_max_position_embeddings;
  const float factor = static_cast<float>(rope.factor);
  const float low_freq_factor = static_cast<float>(rope.low_freq_factor);
  const float low_freq_wavelen = static_cast<float>(old_context_len / rope.low_freq_factor);
  const float high_freq_wavelen = static_cast<float>(old_context_len / rope.high_freq_factor);
  const float two_pi = static_cast<float>(2 * std::numbers::pi);
  const float factor_span = static_cast<float>(rope.high_freq_factor - rope.low_freq_factor);
  const float old_context_len_f = static_cast<float>(old_context_len);

  for (float& f : inv_freq) {
    const float wavelen = (1.0f / f) * two_pi;  // 2 * math.pi / inv_freq
    const float inv_freq_llama = wavelen > low_freq_wavelen ? f / factor : f;
    const float smooth_factor = ((1.0f / wavelen) * old_context_len_f - low_freq_factor) / factor_span;
    const float smoothed = (1.0f - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama;
    const bool is_medium_freq = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
    f = is_medium_freq ? smoothed : inv_freq_llama;
  }
  return inv_freq;
}

// get_mscale in _compute_yarn_parameters.
double yarn_mscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// find_correction_dim: the dimension whose wavelength fits num_rotations times into the original
// context.
double yarn_correction_dim(double num_rotations, int dim, double base, double max_position_embeddings) {
  return (dim * std::log(max_position_embeddings / (num_rotations * 2 * std::numbers::pi))) / (2 * std::log(base));
}

// _compute_yarn_parameters: dims below the correction range extrapolate (keep their frequency), dims
// above it interpolate (frequency / factor), with a linear ramp between; cos/sin are scaled by the
// attention factor.
RopeTable yarn_table(const RopeConfig& rope) {
  const int dim = rope.rotary_dim;
  const double factor = rope.factor;

  double attention_factor;
  if (rope.attention_factor) {
    attention_factor = *rope.attention_factor;
  } else if (rope.mscale.value_or(0.0) != 0.0 && rope.mscale_all_dim.value_or(0.0) != 0.0) {
    attention_factor = yarn_mscale(factor, *rope.mscale) / yarn_mscale(factor, *rope.mscale_all_dim);
  } else {
    attention_factor = yarn_mscale(factor, 1.0);
  }

  // find_correction_range
  const double original = rope.original_max_position_embeddings;
  double low = yarn_correction_dim(rope.beta_fast, dim, rope.theta, original);
  double high = yarn_correction_dim(rope.beta_slow, dim, rope.theta, original);
  if (rope.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // linear_ramp_factor's guard against a zero-width ramp

  const std::vector<float> pos_freqs = position_frequencies(rope.theta, dim);
  const float factor_f = static_cast<float>(factor);
  const float low_f = static_cast<float>(low);
  const float ramp_width = static_cast<float>(high - low);

  RopeTable table;
  table.inv_freq.resize(pos_freqs.size());
  for (size_t i = 0; i < pos_freqs.size(); ++i) {
    const float extrapolation = 1.0f / pos_freqs[i];
    const float interpolation = 1.0f / (factor_f * pos_freqs[i]);
    const float ramp = std::clamp((static_cast<float>(i) - low_f) / ramp_width, 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    table.inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  table.attention_scaling = static_cast<float>(attention_factor);
  return table;
}

}  // namespace

RopeTable make_rope_table(const RopeConfig& rope) {
  switch (rope.type) {
    case RopeType::kDefault: return RopeTable{default_inv_freq(rope), 1.0f};
    case RopeType::kLinear: return RopeTable{linear_inv_freq(rope), 1.0f};
    case RopeType::kLlama3: return RopeTable{llama3_inv_freq(rope), 1.0f};
    case RopeType::kYarn: return yarn_table(rope);
  }
  return RopeTable{default_inv_freq(rope), 1.0f};
}

}  // namespace longbow
