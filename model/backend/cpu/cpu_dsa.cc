// DSA reference (contracts in cpu_dsa.h).
#include "model/backend/cpu/cpu_dsa.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "model/backend/cpu/cpu_dot.h"

namespace longbow::cpu {

uint8_t fp8_e4m3_from_float(float x) {
  if (std::isnan(x)) return 0x7F;
  uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  float a = std::fabs(x);
  if (a >= 448.0f) return sign | 0x7E;  // satfinite (448 = 1.75 · 2^8 is the largest finite)
  constexpr float kMinNormal = 0.015625f;  // 2^-6
  if (a < kMinNormal) {
    // Subnormals: multiples of 2^-9; a quotient of 8 is the smallest normal (bits 0x08).
    auto q = static_cast<int>(std::nearbyint(std::ldexp(a, 9)));
    return sign | static_cast<uint8_t>(q);
  }
  int e = 0;
  float m = std::frexp(a, &e);  // a = m · 2^e, m in [0.5, 1)
  // As 1.f · 2^(e-1): three mantissa bits, round half to even on the exact value (m·16 - 8).
  auto q = static_cast<int>(std::nearbyint(m * 16.0f - 8.0f));
  int exponent = e - 1 + 7;
  if (q == 8) {
    q = 0;
    ++exponent;
  }
  if (exponent > 15 || (exponent == 15 && q == 7)) return sign | 0x7E;
  return sign | static_cast<uint8_t>((exponent << 3) | q);
}

float fp8_e4m3_to_float(uint8_t bits) {
  float sign = (bits & 0x80) ? -1.0f : 1.0f;
  int exponent = (bits >> 3) & 0xF;
  int mantissa = bits & 0x7;
  if (exponent == 15 && mantissa == 7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

float dsa_fp8_scale(float amax) {
  float ratio = std::max(amax, 1e-4f) / 448.0f;  // a positive normal fp32
  auto bits = std::bit_cast<uint32_t>(ratio);
  int exponent = static_cast<int>((bits >> 23) & 0xFF) - 127;
  if ((bits & 0x7FFFFF) != 0) ++exponent;  // ceil(log2) of a non-power of two
  return std::bit_cast<float>(static_cast<uint32_t>(exponent + 127) << 23);
}

void hadamard_transform(float* x, int n) {
  for (int h = 1; h < n; h <<= 1) {
    for (int j = 0; j < n; ++j) {
      if (j & h) continue;
      float a = x[j], b = x[j + h];
      x[j] = a + b;
      x[j + h] = a - b;
    }
  }
}

void dsa_layer_norm(const float* x, int64_t rows, int dim, const float* gamma, const float* beta, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * dim;
    double mean = 0.0;
    for (int i = 0; i < dim; ++i) mean += in[i];
    mean /= dim;
    double var = 0.0;
    for (int i = 0; i < dim; ++i) var += (in[i] - mean) * (in[i] - mean);
    var /= dim;
    double inv = 1.0 / std::sqrt(var + static_cast<double>(kDsaNormEps));
    for (int i = 0; i < dim; ++i) {
      y[r * dim + i] = static_cast<float>((in[i] - mean) * inv) * gamma[i] + beta[i];
    }
  }
}

void dsa_rope(float* x, int64_t rows, int heads, int head_dim, int rope_dim, const int32_t* positions,
              const float* inv_freq, float attention_scaling) {
  int half = rope_dim / 2;
  std::vector<float> cos(static_cast<size_t>(half)), sin(static_cast<size_t>(half));
  for (int64_t r = 0; r < rows; ++r) {
    for (int i = 0; i < half; ++i) {
      float angle = static_cast<float>(positions[r]) * inv_freq[i];
      cos[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle))) * attention_scaling;
      sin[static_cast<size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(angle))) * attention_scaling;
    }
    for (int h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * head_dim;
      for (int i = 0; i < half; ++i) {
        float a = v[i], b = v[i + half];
        v[i] = a * cos[static_cast<size_t>(i)] - b * sin[static_cast<size_t>(i)];
        v[i + half] = b * cos[static_cast<size_t>(i)] + a * sin[static_cast<size_t>(i)];
      }
    }
  }
}

float dsa_quantize_fp8(const float* x, int n, uint8_t* out) {
  std::vector<float> y(x, x + n);
  hadamard_transform(y.data(), n);
  float norm = 1.0f / std::sqrt(static_cast<float>(n));  // exact for n = 4^m; the GPU uses the same fp32 value
  float amax = 0.0f;
  for (float& v : y) {
    v *= norm;
    amax = std::max(amax, std::fabs(v));
  }
  float scale = dsa_fp8_scale(amax);
  float inv = 1.0f / scale;  // a power of two: y · inv is y / scale exactly
  for (int i = 0; i < n; ++i) out[i] = fp8_e4m3_from_float(y[static_cast<size_t>(i)] * inv);
  return scale;
}

void dsa_write_index_keys(const DsaIndexKeyArgs& args) {
  int d = args.head_dim;
  std::vector<float> k(static_cast<size_t>(args.tokens * d));
  dsa_layer_norm(args.k_raw, args.tokens, d, args.gamma, args.beta, k.data());
  dsa_rope(k.data(), args.tokens, 1, d, args.rope_dim, args.positions, args.inv_freq, args.attention_scaling);
  size_t page_bytes = dsa_index_page_bytes(d);
  for (int64_t t = 0; t < args.tokens; ++t) {
    int64_t slot = args.slots[t];
    if (slot < 0) continue;  // a padding row: nothing to store
    const float* row = k.data() + t * d;
    if (args.f32_cache != nullptr) std::copy(row, row + d, args.f32_cache + slot * d);
    if (args.fp8_cache != nullptr) {
      uint8_t* page = args.fp8_cache + static_cast<size_t>(slot / kDsaPageSize) * page_bytes;
      int64_t off = slot % kDsaPageSize;
      float scale = dsa_quantize_fp8(row, d, page + off * d);
      std::memcpy(page + static_cast<size_t>(kDsaPageSize) * static_cast<size_t>(d) + off * 4, &scale, 4);
    }
  }
}

void dsa_prepare_query(const float* q, const float* w_raw, int64_t rows, int heads, int head_dim, uint8_t* q_fp8,
                       float* w_eff) {
  // The constant factor in fp32, as the GPU computes it: heads^-0.5 · D^-0.5.
  float constant = 1.0f / std::sqrt(static_cast<float>(heads)) * (1.0f / std::sqrt(static_cast<float>(head_dim)));
  for (int64_t r = 0; r < rows; ++r) {
    for (int h = 0; h < heads; ++h) {
      int64_t i = r * heads + h;
      float w = w_raw[i] * constant;
      if (q_fp8 != nullptr) w *= dsa_quantize_fp8(q + i * head_dim, head_dim, q_fp8 + i * head_dim);
      w_eff[i] = w;
    }
  }
}

void dsa_index_logits(const DsaIndexLogitsArgs& args) {
  int d = args.head_dim, heads = args.heads;
  bool fp8 = args.fp8_cache != nullptr;
  size_t page_bytes = dsa_index_page_bytes(d);
  std::vector<float> q(static_cast<size_t>(heads * d)), k(static_cast<size_t>(d));
  for (int s = 0; s < args.seqs; ++s) {
    int64_t q_len = int64_t{args.query_start[s + 1]} - args.query_start[s];
    const int32_t* table = args.block_tables + static_cast<int64_t>(s) * args.max_pages;
    for (int64_t i = 0; i < q_len; ++i) {
      int64_t row = args.query_start[s] + i;
      int64_t pos = args.context_lens[s] - q_len + i;
      for (int64_t e = 0; e < heads * d; ++e) {
        q[static_cast<size_t>(e)] =
            fp8 ? fp8_e4m3_to_float(args.q_fp8[row * heads * d + e]) : args.q_f32[row * heads * d + e];
      }
      const float* w = args.w_eff + row * heads;
      float* out = args.logits + row * args.logits_stride;
      for (int64_t j = 0; j < args.logits_stride; ++j) {
        if (j > pos) {
          out[j] = -std::numeric_limits<float>::infinity();
          continue;
        }
        int64_t slot = int64_t{table[j / kDsaPageSize]} * kDsaPageSize + j % kDsaPageSize;
        float k_scale = 1.0f;
        if (fp8) {
          const uint8_t* page = args.fp8_cache + static_cast<size_t>(slot / kDsaPageSize) * page_bytes;
          int64_t off = slot % kDsaPageSize;
          for (int e = 0; e < d; ++e) k[static_cast<size_t>(e)] = fp8_e4m3_to_float(page[off * d + e]);
          std::memcpy(&k_scale, page + static_cast<size_t>(kDsaPageSize) * static_cast<size_t>(d) + off * 4, 4);
        } else {
          std::copy(args.f32_cache + slot * d, args.f32_cache + (slot + 1) * d, k.begin());
        }
        double total = 0.0;
        for (int h = 0; h < heads; ++h) {
          double dot = cpu::dot(q.data() + static_cast<size_t>(h) * static_cast<size_t>(d), k.data(), d);
          total += static_cast<double>(w[h]) * std::max(dot, 0.0);
        }
        out[j] = static_cast<float>(total * k_scale);
      }
    }
  }
}

void dsa_topk(const float* scores, int64_t len, int k, int32_t* out) {
  if (len <= k) {
    for (int i = 0; i < k; ++i) out[i] = i < len ? static_cast<int32_t>(i) : -1;
    return;
  }
  std::vector<int32_t> order(static_cast<size_t>(len));
  std::iota(order.begin(), order.end(), 0);
  // A strict total order: higher score first, then lower index.
  auto before = [scores](int32_t a, int32_t b) { return scores[a] > scores[b] || (scores[a] == scores[b] && a < b); };
  std::nth_element(order.begin(), order.begin() + k, order.end(), before);
  std::sort(order.begin(), order.begin() + k);
  std::copy(order.begin(), order.begin() + k, out);
}

void dsa_sparse_attention(const DsaSparseAttentionArgs& args) {
  int d = args.head_dim;
  int group = args.q_heads / args.kv_heads;
  std::vector<int64_t> slots;
  std::vector<double> weights;
  std::vector<float> acc(static_cast<size_t>(d));
  for (int s = 0; s < args.seqs; ++s) {
    const int32_t* table = args.block_tables + static_cast<int64_t>(s) * args.max_pages;
    for (int64_t row = args.query_start[s]; row < args.query_start[s + 1]; ++row) {
      slots.clear();
      for (int i = 0; i < args.topk; ++i) {
        int32_t j = args.indices[row * args.topk + i];
        if (j >= 0) slots.push_back(int64_t{table[j / kDsaPageSize]} * kDsaPageSize + j % kDsaPageSize);
      }
      weights.resize(slots.size());
      for (int h = 0; h < args.q_heads; ++h) {
        int kv = h / group;
        const float* q = args.q + (row * args.q_heads + h) * d;
        float* out = args.out + (row * args.q_heads + h) * d;
        std::fill(acc.begin(), acc.end(), 0.0f);
        double max_score = -std::numeric_limits<double>::infinity();
        for (size_t i = 0; i < slots.size(); ++i) {
          weights[i] = cpu::dot(q, args.k_cache + (slots[i] * args.kv_heads + kv) * d, d) * args.scale;
          max_score = std::max(max_score, weights[i]);
        }
        double total = 0.0;
        for (double& w : weights) {
          w = std::exp(w - max_score);
          total += w;
        }
        for (size_t i = 0; i < slots.size(); ++i) {
          cpu::axpy(static_cast<float>(weights[i] / total), args.v_cache + (slots[i] * args.kv_heads + kv) * d,
                    acc.data(), d);
        }
        std::copy(acc.begin(), acc.end(), out);
      }
    }
  }
}

}  // namespace longbow::cpu
