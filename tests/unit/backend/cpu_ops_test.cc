// CpuBackend's dense ops against naive double-precision computations written out here.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <string>
#include <tuple>
#include <vector>

#include "common/half.h"
#include "model/backend/cpu/cpu_backend.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::expect_invalid;
using testing::make_f32;
using testing::make_i32;
using testing::make_poisoned;
using testing::max_abs_diff;
using testing::random_floats;
using testing::relative_l2;
using testing::to_host;

class CpuOpsTest : public ::testing::Test {
 protected:
  CpuBackend backend_;
};

// ---- memory ----------------------------------------------------------------------------------

TEST_F(CpuOpsTest, UploadDownloadRoundTrip) {
  std::vector<float> values = random_floats(65, 1);
  Tensor t = make_f32(backend_, {5, 13}, values);
  EXPECT_EQ(to_host(backend_, t), values);
  EXPECT_EQ(backend_.compute_dtype(), DType::kF32);
  EXPECT_EQ(backend_.name(), "cpu");
}

TEST_F(CpuOpsTest, UploadConvertedFromHalfFormats) {
  std::vector<float> values = {0.0f, 1.0f, -2.5f, 3.140625f, 65504.0f, 1e-3f, -7.75f};
  std::vector<uint16_t> bf16, f16;
  for (float v : values) bf16.push_back(f32_to_bf16(v));
  // fp16 bit patterns for the same values (sign | exponent+15 | mantissa), written out by hand.
  f16 = {0x0000, 0x3c00, 0xc100, 0x4248, 0x7bff, 0x1419, 0xc7c0};
  auto t = backend_.allocate(DType::kF32, {7});
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(backend_.upload_converted(bf16.data(), DType::kBF16, 7, *t).ok());
  std::vector<float> got = to_host(backend_, *t);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(got[i], bf16_to_f32(bf16[i])) << i;
  EXPECT_EQ(got[3], 3.140625f);  // exactly representable in bf16
  ASSERT_TRUE(backend_.upload_converted(f16.data(), DType::kF16, 7, *t).ok());
  got = to_host(backend_, *t);
  for (size_t i = 0; i < values.size(); ++i) EXPECT_NEAR(got[i], values[i], std::abs(values[i]) * 1e-3) << i;
  ASSERT_TRUE(backend_.upload_converted(values.data(), DType::kF32, 7, *t).ok());
  EXPECT_EQ(to_host(backend_, *t), values);
  expect_invalid(backend_.upload_converted(values.data(), DType::kF32, 6, *t), {"upload_converted", "6"});
}

TEST_F(CpuOpsTest, MemoryInfoReportsHostMemory) {
  auto info = backend_.memory_info();
  ASSERT_TRUE(info.ok()) << info.status().to_string();
  EXPECT_GT(info->total_bytes, 0u);
  EXPECT_LE(info->free_bytes, info->total_bytes);
}

TEST_F(CpuOpsTest, AllocateRejectsNegativeDims) {
  EXPECT_EQ(backend_.allocate(DType::kF32, {3, -1}).status().code(), StatusCode::kInvalidArgument);
}

// ---- embed -----------------------------------------------------------------------------------

TEST_F(CpuOpsTest, EmbedCopiesRows) {
  const int vocab = 11, hidden = 65;
  std::vector<float> table = random_floats(vocab * hidden, 2);
  std::vector<int32_t> ids = {3, 0, 10, 3, 7};
  Tensor out = make_poisoned(backend_, {5, hidden});
  ASSERT_TRUE(backend_.embed(make_f32(backend_, {vocab, hidden}, table), make_i32(backend_, {5}, ids), out).ok());
  std::vector<float> got = to_host(backend_, out);
  for (size_t t = 0; t < ids.size(); ++t) {
    for (int c = 0; c < hidden; ++c) ASSERT_EQ(got[t * hidden + c], table[ids[t] * hidden + c]);
  }
}

TEST_F(CpuOpsTest, EmbedRejectsBadIdsAndShapes) {
  Tensor table = make_f32(backend_, {4, 3}, random_floats(12, 3));
  Tensor out = make_poisoned(backend_, {2, 3});
  expect_invalid(backend_.embed(table, make_i32(backend_, {2}, {1, 4}), out), {"embed", "ids[1]", "4"});
  expect_invalid(backend_.embed(table, make_i32(backend_, {2}, {-1, 0}), out), {"embed", "ids[0]"});
  Tensor wrong_out = make_poisoned(backend_, {2, 4});
  expect_invalid(backend_.embed(table, make_i32(backend_, {2}, {0, 1}), wrong_out), {"embed", "out", "[2, 4]"});
  Tensor float_ids = make_f32(backend_, {2}, {0.0f, 1.0f});
  expect_invalid(backend_.embed(table, float_ids, out), {"embed", "ids", "I32"});
}

// ---- rms_norm / add_rms_norm -------------------------------------------------------------------

std::vector<double> naive_rms_norm(const std::vector<float>& x, const std::vector<float>& w, int rows, int cols,
                                   double eps) {
  std::vector<double> out(x.size());
  for (int r = 0; r < rows; ++r) {
    double ms = 0.0;
    for (int c = 0; c < cols; ++c) ms += double{x[r * cols + c]} * x[r * cols + c] / cols;
    for (int c = 0; c < cols; ++c) out[r * cols + c] = x[r * cols + c] / std::sqrt(ms + eps) * w[c];
  }
  return out;
}

TEST_F(CpuOpsTest, RmsNormMatchesNaive) {
  for (int cols : {1, 63, 65, 97}) {
    const int rows = 3;
    std::vector<float> x = random_floats(rows * cols, 4 + cols, -3.0f, 3.0f);
    std::vector<float> w = random_floats(cols, 5 + cols, 0.5f, 1.5f);
    Tensor xt = make_f32(backend_, {rows, cols}, x);
    Tensor out = make_poisoned(backend_, {rows, cols});
    ASSERT_TRUE(backend_.rms_norm(xt, make_f32(backend_, {cols}, w), 1e-5f, out).ok());
    std::vector<double> want = naive_rms_norm(x, w, rows, cols, 1e-5);
    EXPECT_LT(relative_l2(to_host(backend_, out), want), 1e-6) << cols;
    // In place (out aliases x) gives the same answer.
    ASSERT_TRUE(backend_.rms_norm(xt, make_f32(backend_, {cols}, w), 1e-5f, xt).ok());
    EXPECT_EQ(to_host(backend_, xt), to_host(backend_, out));
  }
}

TEST_F(CpuOpsTest, AddRmsNormUpdatesResidual) {
  const int rows = 5, cols = 97;
  std::vector<float> residual = random_floats(rows * cols, 6);
  std::vector<float> delta = random_floats(rows * cols, 7);
  std::vector<float> w = random_floats(cols, 8);
  Tensor rt = make_f32(backend_, {rows, cols}, residual);
  Tensor out = make_poisoned(backend_, {rows, cols});
  ASSERT_TRUE(backend_.add_rms_norm(rt, make_f32(backend_, {rows, cols}, delta), make_f32(backend_, {cols}, w),
                                    1e-6f, out)
                  .ok());
  std::vector<float> sum(residual.size());
  std::vector<double> sum_d(residual.size());
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = residual[i] + delta[i];
  for (size_t i = 0; i < sum.size(); ++i) sum_d[i] = sum[i];
  EXPECT_EQ(max_abs_diff(to_host(backend_, rt), sum_d), 0.0);
  EXPECT_LT(relative_l2(to_host(backend_, out), naive_rms_norm(sum, w, rows, cols, 1e-6)), 1e-6);
}

TEST_F(CpuOpsTest, NormsRejectBadShapes) {
  Tensor x = make_f32(backend_, {2, 4}, random_floats(8, 9));
  Tensor out = make_poisoned(backend_, {2, 4});
  expect_invalid(backend_.rms_norm(x, make_f32(backend_, {3}, {1, 1, 1}), 1e-6f, out), {"rms_norm", "weight"});
  Tensor w = make_f32(backend_, {4}, {1, 1, 1, 1});
  Tensor short_delta = make_f32(backend_, {1, 4}, {1, 1, 1, 1});
  expect_invalid(backend_.add_rms_norm(x, short_delta, w, 1e-6f, out), {"add_rms_norm", "delta", "[1, 4]"});
  expect_invalid(backend_.add_rms_norm(x, x, w, 1e-6f, x), {"add_rms_norm", "out", "residual"});
  expect_invalid(backend_.rms_norm(x, w, -1.0f, out), {"rms_norm", "eps"});
}

// ---- matmul ----------------------------------------------------------------------------------

TEST_F(CpuOpsTest, MatmulMatchesNaive) {
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {3, 63, 65}, {97, 65, 63}, {5, 300, 17}, {2, 4096, 3}, {65, 97, 1}}) {
    for (bool with_bias : {false, true}) {
      std::vector<float> x = random_floats(m * k, 10 + m);
      std::vector<float> w = random_floats(n * k, 11 + n);
      std::vector<float> b = random_floats(n, 12);
      Tensor out = make_poisoned(backend_, {m, n});
      Tensor bias = with_bias ? make_f32(backend_, {n}, b) : Tensor{};
      ASSERT_TRUE(backend_.matmul(make_f32(backend_, {m, k}, x), make_f32(backend_, {n, k}, w), bias, out).ok());
      std::vector<double> want(static_cast<size_t>(m * n));
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double sum = with_bias ? b[j] : 0.0;
          for (int l = 0; l < k; ++l) sum += double{x[i * k + l]} * w[j * k + l];
          want[i * n + j] = sum;
        }
      }
      EXPECT_LT(relative_l2(to_host(backend_, out), want), 1e-6) << m << "x" << k << "x" << n << " bias " << with_bias;
    }
  }
}

TEST_F(CpuOpsTest, MatmulRejectsBadShapes) {
  Tensor x = make_f32(backend_, {2, 3}, random_floats(6, 13));
  Tensor w = make_f32(backend_, {4, 3}, random_floats(12, 14));
  Tensor out = make_poisoned(backend_, {2, 4});
  expect_invalid(backend_.matmul(x, make_f32(backend_, {4, 2}, random_floats(8, 1)), Tensor{}, out),
                 {"matmul", "'w'", "[4, 2]"});
  expect_invalid(backend_.matmul(x, w, make_f32(backend_, {3}, {1, 2, 3}), out), {"matmul", "bias"});
  Tensor small_out = make_poisoned(backend_, {2, 3});
  expect_invalid(backend_.matmul(x, w, Tensor{}, small_out), {"matmul", "out"});
  Tensor in_place = make_poisoned(backend_, {4, 4});
  Tensor shifted = in_place.rows(1, 2);
  expect_invalid(backend_.matmul(in_place.rows(0, 2), make_f32(backend_, {4, 4}, random_floats(16, 2)), Tensor{},
                                 shifted),
                 {"matmul", "overlaps"});
  EXPECT_TRUE(std::isnan(to_host(backend_, out)[0]));  // failed calls wrote nothing
}

// ---- rope ------------------------------------------------------------------------------------

// Rotates pairs (i, i + rotary_dim/2) of each head by position · inv_freq[i] as a complex number.
std::vector<double> naive_rope(const std::vector<float>& x, int tokens, int heads, int head_dim,
                               const std::vector<int32_t>& positions, const std::vector<float>& inv_freq,
                               double scaling) {
  std::vector<double> out(x.begin(), x.end());
  int half = static_cast<int>(inv_freq.size());
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < half; ++i) {
        size_t base = static_cast<size_t>((t * heads + h) * head_dim);
        std::complex<double> value(x[base + i], x[base + i + half]);
        float angle = static_cast<float>(positions[t]) * inv_freq[i];
        std::complex<double> rotated = value * std::polar(scaling, double{angle});
        out[base + i] = rotated.real();
        out[base + i + half] = rotated.imag();
      }
    }
  }
  return out;
}

TEST_F(CpuOpsTest, RopeMatchesComplexRotation) {
  const int tokens = 7, q_heads = 4, k_heads = 2;
  for (auto [head_dim, rotary_dim, scaling] : {std::tuple{64, 64, 1.0f}, {96, 48, 1.0f}, {16, 16, 1.25f}}) {
    std::vector<float> inv_freq;
    for (int i = 0; i < rotary_dim / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * i / rotary_dim));
    std::vector<int32_t> positions = {0, 1, 2, 63, 64, 1000, 70000};
    std::vector<float> q = random_floats(tokens * q_heads * head_dim, 20);
    std::vector<float> k = random_floats(tokens * k_heads * head_dim, 21);
    Tensor qt = make_f32(backend_, {tokens, q_heads, head_dim}, q);
    Tensor kt = make_f32(backend_, {tokens, k_heads, head_dim}, k);
    ASSERT_TRUE(backend_.rope(qt, kt, make_i32(backend_, {tokens}, positions),
                              make_f32(backend_, {rotary_dim / 2}, inv_freq), scaling)
                    .ok());
    EXPECT_LT(max_abs_diff(to_host(backend_, qt), naive_rope(q, tokens, q_heads, head_dim, positions, inv_freq, scaling)),
              1e-6);
    EXPECT_LT(max_abs_diff(to_host(backend_, kt), naive_rope(k, tokens, k_heads, head_dim, positions, inv_freq, scaling)),
              1e-6);
  }
}

TEST_F(CpuOpsTest, RopeRejectsBadArguments) {
  Tensor q = make_f32(backend_, {2, 2, 4}, random_floats(16, 22));
  Tensor k = make_f32(backend_, {2, 1, 4}, random_floats(8, 23));
  Tensor positions = make_i32(backend_, {2}, {0, 1});
  expect_invalid(backend_.rope(q, k, positions, make_f32(backend_, {3}, {1, 1, 1}), 1.0f), {"rope", "inv_freq"});
  Tensor k_bad = make_f32(backend_, {2, 1, 8}, random_floats(16, 24));
  expect_invalid(backend_.rope(q, k_bad, positions, make_f32(backend_, {2}, {1, 1}), 1.0f), {"rope", "'k'"});
  expect_invalid(backend_.rope(q, k, make_i32(backend_, {2}, {0, -3}), make_f32(backend_, {2}, {1, 1}), 1.0f),
                 {"rope", "positions[1]"});
}

// ---- silu_mul, gather_rows -----------------------------------------------------------------------

TEST_F(CpuOpsTest, SiluMulMatchesNaive) {
  const int rows = 3, cols = 65;
  std::vector<float> gate = random_floats(rows * cols, 30, -8.0f, 8.0f);
  std::vector<float> up = random_floats(rows * cols, 31);
  Tensor out = make_poisoned(backend_, {rows, cols});
  ASSERT_TRUE(backend_.silu_mul(make_f32(backend_, {rows, cols}, gate), make_f32(backend_, {rows, cols}, up), out).ok());
  std::vector<double> want(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) want[i] = gate[i] * up[i] / (1.0 + std::exp(-double{gate[i]}));
  EXPECT_LT(max_abs_diff(to_host(backend_, out), want), 1e-6);
  expect_invalid(backend_.silu_mul(make_f32(backend_, {rows, cols}, gate), make_f32(backend_, {1, cols}, random_floats(cols, 32)), out),
                 {"gated_activation", "up"});
}

TEST_F(CpuOpsTest, GeluActivationsMatchTheirDefinitions) {
  const int rows = 2, cols = 37;
  std::vector<float> gate = random_floats(rows * cols, 33, -6.0f, 6.0f);
  std::vector<float> up = random_floats(rows * cols, 34);
  Tensor g = make_f32(backend_, {rows, cols}, gate), u = make_f32(backend_, {rows, cols}, up);
  Tensor out = make_poisoned(backend_, {rows, cols});
  std::vector<double> want(gate.size());
  ASSERT_TRUE(backend_.gated_activation(Activation::kGeluTanh, g, u, out).ok());
  for (size_t i = 0; i < gate.size(); ++i) {
    double x = gate[i];
    want[i] = 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) * up[i];
  }
  EXPECT_LT(max_abs_diff(to_host(backend_, out), want), 1e-6);
  ASSERT_TRUE(backend_.gated_activation(Activation::kGelu, g, u, out).ok());
  for (size_t i = 0; i < gate.size(); ++i) want[i] = 0.5 * gate[i] * std::erfc(-gate[i] / std::sqrt(2.0)) * up[i];
  EXPECT_LT(max_abs_diff(to_host(backend_, out), want), 1e-6);
  // The two GELUs differ by up to ~1e-3 around |x| ~ 2: the test would notice a swapped formula.
  std::vector<float> exact = to_host(backend_, out);
  ASSERT_TRUE(backend_.gated_activation(Activation::kGeluTanh, g, u, out).ok());
  EXPECT_GT(max_abs_diff(to_host(backend_, out), std::vector<double>(exact.begin(), exact.end())), 1e-5);
}

// MiniMax's output gate: sigmoid(gate) · up.
TEST_F(CpuOpsTest, SigmoidGateMatchesItsDefinition) {
  const int rows = 3, cols = 19;
  std::vector<float> gate = random_floats(rows * cols, 38, -8.0f, 8.0f);
  std::vector<float> up = random_floats(rows * cols, 39);
  Tensor g = make_f32(backend_, {rows, cols}, gate), u = make_f32(backend_, {rows, cols}, up);
  Tensor out = make_poisoned(backend_, {rows, cols});
  ASSERT_TRUE(backend_.gated_activation(Activation::kSigmoid, g, u, out).ok());
  std::vector<double> want(gate.size());
  for (size_t i = 0; i < gate.size(); ++i) want[i] = up[i] / (1.0 + std::exp(-double{gate[i]}));
  EXPECT_LT(max_abs_diff(to_host(backend_, out), want), 1e-6);
}

TEST_F(CpuOpsTest, LayerNormMatchesNaiveWithAndWithoutBias) {
  const int rows = 3, cols = 50;
  std::vector<float> x = random_floats(rows * cols, 35, -3.0f, 5.0f);
  std::vector<float> w = random_floats(cols, 36), b = random_floats(cols, 37);
  const float eps = 1e-5f;
  auto naive = [&](const std::vector<float>& in, bool with_bias) {
    std::vector<double> out(in.size());
    for (int r = 0; r < rows; ++r) {
      double mean = 0.0, var = 0.0;
      for (int c = 0; c < cols; ++c) mean += in[r * cols + c] / double{cols};
      for (int c = 0; c < cols; ++c) var += (in[r * cols + c] - mean) * (in[r * cols + c] - mean) / double{cols};
      for (int c = 0; c < cols; ++c) {
        out[r * cols + c] = (in[r * cols + c] - mean) / std::sqrt(var + eps) * w[c] + (with_bias ? b[c] : 0.0);
      }
    }
    return out;
  };
  Tensor out = make_poisoned(backend_, {rows, cols});
  Tensor weight = make_f32(backend_, {cols}, w), bias = make_f32(backend_, {cols}, b);
  ASSERT_TRUE(backend_.layer_norm(make_f32(backend_, {rows, cols}, x), weight, bias, eps, out).ok());
  EXPECT_LT(max_abs_diff(to_host(backend_, out), naive(x, true)), 1e-5);
  ASSERT_TRUE(backend_.layer_norm(make_f32(backend_, {rows, cols}, x), weight, Tensor{}, eps, out).ok());
  EXPECT_LT(max_abs_diff(to_host(backend_, out), naive(x, false)), 1e-5);

  std::vector<float> delta = random_floats(rows * cols, 38);
  Tensor residual = make_f32(backend_, {rows, cols}, x);
  ASSERT_TRUE(backend_.add_layer_norm(residual, make_f32(backend_, {rows, cols}, delta), weight, bias, eps, out).ok());
  std::vector<float> sum(x.size());
  for (size_t i = 0; i < x.size(); ++i) sum[i] = x[i] + delta[i];
  EXPECT_EQ(to_host(backend_, residual), sum);
  EXPECT_LT(max_abs_diff(to_host(backend_, out), naive(sum, true)), 1e-5);
  expect_invalid(backend_.layer_norm(make_f32(backend_, {rows, cols}, x), make_f32(backend_, {cols - 1}, random_floats(cols - 1, 40)), bias, eps, out),
                 {"layer_norm", "weight"});
}

TEST_F(CpuOpsTest, ScaleAndSoftcapAreElementWise) {
  std::vector<float> x = random_floats(41, 39, -200.0f, 200.0f);
  Tensor t = make_f32(backend_, {41}, x);
  ASSERT_TRUE(backend_.scale(t, 0.5f).ok());
  std::vector<float> got = to_host(backend_, t);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(got[i], x[i] * 0.5f);
  ASSERT_TRUE(backend_.softcap(t, 30.0f).ok());
  std::vector<float> capped = to_host(backend_, t);
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(capped[i], 30.0 * std::tanh(got[i] / 30.0), 1e-5);
    EXPECT_LT(std::abs(capped[i]), 30.0f);
  }
  expect_invalid(backend_.softcap(t, 0.0f), {"softcap"});
}

TEST_F(CpuOpsTest, GatherRowsPicksRows) {
  const int rows = 9, cols = 63;
  std::vector<float> x = random_floats(rows * cols, 40);
  std::vector<int32_t> picks = {8, 0, 8, 4};
  Tensor out = make_poisoned(backend_, {4, cols});
  ASSERT_TRUE(backend_.gather_rows(make_f32(backend_, {rows, cols}, x), make_i32(backend_, {4}, picks), out).ok());
  std::vector<float> got = to_host(backend_, out);
  for (size_t s = 0; s < picks.size(); ++s) {
    for (int c = 0; c < cols; ++c) ASSERT_EQ(got[s * cols + c], x[picks[s] * cols + c]);
  }
  expect_invalid(backend_.gather_rows(make_f32(backend_, {rows, cols}, x), make_i32(backend_, {4}, {0, 1, 9, 2}), out),
                 {"gather_rows", "rows[2]", "9"});
}

}  // namespace
}  // namespace longbow
