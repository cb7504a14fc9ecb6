// lightning_check.h: the CUDA op against an fp64 token-by-token recurrence (backend.h's contract:
// S ← λ·S + kᵀv, o = q·S, q/k/v = SiLU of the bf16 qkv, λ_h = exp(−slopes[h])).
#include "tools/bench/lightning_check.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "model/backend/backend.h"
#include "model/backend/cuda/cuda_lightning.h"

namespace longbow::bench {
namespace {

uint16_t to_bf16(float x) {  // round to nearest even (inputs are finite)
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

double from_bf16(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, 4);
  return x;
}

double silu(double x) { return x / (1.0 + std::exp(-x)); }

// A borrowed device tensor (no storage: the caller frees the memory).
Tensor view(void* data, DType dtype, std::initializer_list<int64_t> dims) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int>(dims.size());
  size_t i = 0;
  for (int64_t d : dims) t.dims[i++] = d;
  return t;
}

struct DevMem {
  void* ptr = nullptr;
  explicit DevMem(size_t bytes) {
    if (cudaMalloc(&ptr, std::max<size_t>(bytes, 16)) != cudaSuccess) ptr = nullptr;
  }
  ~DevMem() { cudaFree(ptr); }
  DevMem(const DevMem&) = delete;
  DevMem& operator=(const DevMem&) = delete;
};

// Folds |got − want| / max(|want|, floor) into `worst`.
void fold(double got, double want, double floor, double* worst) {
  if (std::isnan(*worst)) return;  // a NaN sticks
  const double err = std::abs(got - want) / std::max(std::abs(want), floor);
  if (std::isnan(err) || err > *worst) *worst = err;
}

}  // namespace

LightningCheck run_lightning_check(int tokens, int heads, int head_dim, int decode_steps) {
  LightningCheck r;
  r.tokens = tokens;
  r.heads = heads;
  r.head_dim = head_dim;
  r.decode_steps = decode_steps;
  const int h_n = heads, d = head_dim, total = tokens + decode_steps;
  const size_t row = static_cast<size_t>(h_n) * 3 * d, out_row = static_cast<size_t>(h_n) * d;
  const size_t state_n = static_cast<size_t>(h_n) * d * d;

  // Inputs: qkv uniform in [-2, 2] rounded to bf16; MiniMax's slopes for `heads` heads at layer 0
  // (2^(−8(h+1)/H): λ from 0.78 to 0.996 at H = 4, i.e. histories of ~5 to ~250 tokens).
  std::mt19937 rng(20261207);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  std::vector<uint16_t> qkv(row * static_cast<size_t>(total));
  for (auto& x : qkv) x = to_bf16(dist(rng));
  std::vector<float> slopes(static_cast<size_t>(h_n));
  for (int h = 0; h < h_n; ++h) slopes[static_cast<size_t>(h)] = std::exp2f(-8.0f * static_cast<float>(h + 1) / h_n);

  // Reference: the recurrence in double, one token at a time.
  std::vector<double> ref_out(out_row * static_cast<size_t>(total)), s(state_n, 0.0);
  std::vector<double> q(static_cast<size_t>(d)), k(static_cast<size_t>(d)), v(static_cast<size_t>(d));
  for (int t = 0; t < total; ++t) {
    for (int h = 0; h < h_n; ++h) {
      const uint16_t* src = qkv.data() + static_cast<size_t>(t) * row + static_cast<size_t>(h) * 3 * d;
      for (int i = 0; i < d; ++i) {
        q[static_cast<size_t>(i)] = silu(from_bf16(src[i]));
        k[static_cast<size_t>(i)] = silu(from_bf16(src[d + i]));
        v[static_cast<size_t>(i)] = silu(from_bf16(src[2 * d + i]));
      }
      const double lambda = std::exp(-static_cast<double>(slopes[static_cast<size_t>(h)]));
      double* sh = s.data() + static_cast<size_t>(h) * d * d;
      double* o = ref_out.data() + static_cast<size_t>(t) * out_row + static_cast<size_t>(h) * d;
      std::fill(o, o + d, 0.0);
      for (int i = 0; i < d; ++i) {
        for (int j = 0; j < d; ++j) {
          double& e = sh[static_cast<size_t>(i) * d + j];
          e = lambda * e + k[static_cast<size_t>(i)] * v[static_cast<size_t>(j)];
          o[j] += q[static_cast<size_t>(i)] * e;
        }
      }
    }
  }

  // The CUDA op: the prefill call (fresh slot 0, which holds NaN: a fresh slot must not be read),
  // then the decode calls.
  DevMem qkv_d(qkv.size() * 2), out_d(out_row * static_cast<size_t>(total) * 2), state_d(state_n * 4),
      slopes_d(slopes.size() * 4), starts_d(8), lens_d(4), slots_d(4);
  if (!qkv_d.ptr || !out_d.ptr || !state_d.ptr || !slopes_d.ptr || !starts_d.ptr || !lens_d.ptr || !slots_d.ptr) {
    std::snprintf(r.error, sizeof r.error, "cudaMalloc failed");
    return r;
  }
  std::vector<float> nan_state(state_n, std::nanf(""));
  cudaMemcpy(qkv_d.ptr, qkv.data(), qkv.size() * 2, cudaMemcpyHostToDevice);
  cudaMemcpy(state_d.ptr, nan_state.data(), state_n * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(slopes_d.ptr, slopes.data(), slopes.size() * 4, cudaMemcpyHostToDevice);
  cudaMemset(out_d.ptr, 0xFF, out_row * static_cast<size_t>(total) * 2);  // NaN until written
  const int zero = 0;
  cudaMemcpy(slots_d.ptr, &zero, 4, cudaMemcpyHostToDevice);
  for (int call = 0; call <= decode_steps; ++call) {
    const int row0 = call == 0 ? 0 : tokens + call - 1, q_len = call == 0 ? tokens : 1;
    const int starts[2] = {0, q_len}, ctx = row0 + q_len;
    cudaMemcpy(starts_d.ptr, starts, 8, cudaMemcpyHostToDevice);
    cudaMemcpy(lens_d.ptr, &ctx, 4, cudaMemcpyHostToDevice);
    LightningAttentionArgs a;
    a.qkv = view(static_cast<char*>(qkv_d.ptr) + static_cast<size_t>(row0) * row * 2, DType::kBF16,
                 {q_len, static_cast<int64_t>(row)});
    a.slopes = view(slopes_d.ptr, DType::kF32, {h_n});
    a.state = view(state_d.ptr, DType::kF32, {1, h_n, d, d});
    a.query_start = view(starts_d.ptr, DType::kI32, {2});
    a.context_lens = view(lens_d.ptr, DType::kI32, {1});
    a.slots = view(slots_d.ptr, DType::kI32, {1});
    a.out = view(static_cast<char*>(out_d.ptr) + static_cast<size_t>(row0) * out_row * 2, DType::kBF16,
                 {q_len, static_cast<int64_t>(out_row)});
    a.num_heads = h_n;
    a.head_dim = d;
    a.max_query_len = q_len;
    const Status st = cuda_lightning::lightning_attention(nullptr, a);
    if (!st.ok()) {
      std::snprintf(r.error, sizeof r.error, "lightning_attention: %s", st.message().c_str());
      return r;
    }
    const cudaError_t err = cudaDeviceSynchronize();
    if (err != cudaSuccess) {
      std::snprintf(r.error, sizeof r.error, "lightning_attention: %s", cudaGetErrorString(err));
      return r;
    }
  }
  std::vector<uint16_t> got(out_row * static_cast<size_t>(total));
  std::vector<float> got_state(state_n);
  cudaMemcpy(got.data(), out_d.ptr, got.size() * 2, cudaMemcpyDeviceToHost);
  cudaMemcpy(got_state.data(), state_d.ptr, state_n * 4, cudaMemcpyDeviceToHost);

  for (int t = 0; t < total; ++t) {
    for (int h = 0; h < h_n; ++h) {
      const size_t base = static_cast<size_t>(t) * out_row + static_cast<size_t>(h) * d;
      double peak = 0.0;
      for (int j = 0; j < d; ++j) peak = std::max(peak, std::abs(ref_out[base + static_cast<size_t>(j)]));
      for (int j = 0; j < d; ++j) {
        fold(from_bf16(got[base + static_cast<size_t>(j)]), ref_out[base + static_cast<size_t>(j)], 0.01 * peak,
             &r.max_rel_out);
      }
    }
  }
  for (int h = 0; h < h_n; ++h) {
    const size_t base = static_cast<size_t>(h) * d * d;
    double peak = 0.0;
    for (size_t i = 0; i < static_cast<size_t>(d) * d; ++i) peak = std::max(peak, std::abs(s[base + i]));
    for (size_t i = 0; i < static_cast<size_t>(d) * d; ++i) {
      fold(got_state[base + i], s[base + i], 0.01 * peak, &r.max_rel_state);
    }
  }
  return r;
}

}  // namespace longbow::bench
