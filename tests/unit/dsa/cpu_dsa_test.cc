// The DSA reference (model/backend/cpu/cpu_dsa.h): FP8 e4m3 coding, power-of-two scales, the
// Hadamard transform, FP8 index scores against the exact ones, exact top-k with ties, and sparse
// attention against the dense paged attention of the CPU backend.
#include "model/backend/cpu/cpu_dsa.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow::cpu {
namespace {

using testing::random_floats;

TEST(Fp8E4m3, EveryFiniteCodeRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    auto bits = static_cast<uint8_t>(b);
    float v = fp8_e4m3_to_float(bits);
    if ((b & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(v)) << b;
      continue;
    }
    EXPECT_EQ(fp8_e4m3_from_float(v), bits) << "code " << b << " value " << v;
  }
  EXPECT_EQ(fp8_e4m3_to_float(0x7E), 448.0f);
  EXPECT_EQ(fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_e4m3_to_float(0x08), std::ldexp(1.0f, -6));
}

TEST(Fp8E4m3, RoundsHalfToEvenAndSaturates) {
  // 1.0 (0x38) and 1.125 (0x39): the midpoint goes to the even code 0x38, just above it to 0x39.
  EXPECT_EQ(fp8_e4m3_from_float(1.0625f), 0x38);
  EXPECT_EQ(fp8_e4m3_from_float(std::nextafter(1.0625f, 2.0f)), 0x39);
  // 1.125 and 1.25: the midpoint 1.1875 goes to the even 1.25 (0x3A).
  EXPECT_EQ(fp8_e4m3_from_float(1.1875f), 0x3A);
  // Subnormal midpoint 1.5 · 2^-9 goes to 2 · 2^-9; 0.5 · 2^-9 goes to 0.
  EXPECT_EQ(fp8_e4m3_from_float(1.5f * std::ldexp(1.0f, -9)), 0x02);
  EXPECT_EQ(fp8_e4m3_from_float(0.5f * std::ldexp(1.0f, -9)), 0x00);
  EXPECT_EQ(fp8_e4m3_from_float(-0.5f * std::ldexp(1.0f, -9)), 0x80);
  // The top subnormal rounds up into the smallest normal.
  EXPECT_EQ(fp8_e4m3_from_float(7.75f * std::ldexp(1.0f, -9)), 0x08);
  // 448 is the largest finite; 464 (the midpoint to 480, which would be NaN) and beyond saturate.
  EXPECT_EQ(fp8_e4m3_from_float(440.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_from_float(464.0f), 0x7E);
  EXPECT_EQ(fp8_e4m3_from_float(1e9f), 0x7E);
  EXPECT_EQ(fp8_e4m3_from_float(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(fp8_e4m3_from_float(std::nanf("")), 0x7F);
}

TEST(Fp8E4m3, MatchesNearestCodeOnRandomValues) {
  // Brute force: the nearest finite code, ties to the even mantissa (even code).
  std::vector<float> values = random_floats(20000, 7, -500.0f, 500.0f);
  std::vector<float> small = random_floats(20000, 8, -0.05f, 0.05f);
  values.insert(values.end(), small.begin(), small.end());
  for (float x : values) {
    int best = -1;
    double best_err = 0.0;
    for (int b = 0; b < 256; ++b) {
      if ((b & 0x7F) == 0x7F) continue;
      if (std::signbit(fp8_e4m3_to_float(static_cast<uint8_t>(b))) != std::signbit(x)) continue;
      double err = std::fabs(static_cast<double>(fp8_e4m3_to_float(static_cast<uint8_t>(b))) - x);
      if (best < 0 || err < best_err || (err == best_err && (b & 1) == 0)) {
        best = b;
        best_err = err;
      }
    }
    if (std::fabs(x) >= 448.0f) best = std::signbit(x) ? 0xFE : 0x7E;
    ASSERT_EQ(fp8_e4m3_from_float(x), best) << x;
  }
}

TEST(DsaFp8Scale, PowerOfTwoCeiling) {
  EXPECT_EQ(dsa_fp8_scale(448.0f), 1.0f);
  EXPECT_EQ(dsa_fp8_scale(std::nextafter(448.0f, 1e9f)), 2.0f);
  EXPECT_EQ(dsa_fp8_scale(896.0f), 2.0f);
  EXPECT_EQ(dsa_fp8_scale(1.0f), std::ldexp(1.0f, -8));  // 1/448 in (2^-9, 2^-8]
  EXPECT_EQ(dsa_fp8_scale(0.0f), std::ldexp(1.0f, -22));  // clamped to 1e-4: 2.2e-7 in (2^-23, 2^-22]
  for (float amax : random_floats(1000, 3, 1e-3f, 1e3f)) {
    float s = dsa_fp8_scale(std::fabs(amax));
    int e = 0;
    EXPECT_EQ(std::frexp(s, &e), 0.5f);  // a power of two
    EXPECT_LE(std::fabs(amax) / s, 448.0f);
    EXPECT_GT(std::fabs(amax) / s, 224.0f);
  }
}

TEST(Hadamard, MatchesTheMatrixAndIsItsOwnInverseUpToN) {
  const int n = 16;
  std::vector<float> x = random_floats(n, 11);
  std::vector<float> y = x;
  hadamard_transform(y.data(), n);
  for (int i = 0; i < n; ++i) {
    double ref = 0.0;
    for (int j = 0; j < n; ++j) ref += (std::popcount(static_cast<unsigned>(i & j)) % 2 ? -1.0 : 1.0) * x[j];
    EXPECT_NEAR(y[i], ref, 1e-5);
  }
  hadamard_transform(y.data(), n);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(y[i] / n, x[i], 1e-6);
}

TEST(DsaQuantize, DecodesCloseToTheRotatedVector) {
  const int n = 128;
  std::vector<float> x = random_floats(n, 5, -3.0f, 3.0f);
  std::vector<uint8_t> q(n);
  float scale = dsa_quantize_fp8(x.data(), n, q.data());
  std::vector<float> y = x;
  hadamard_transform(y.data(), n);
  double err = 0.0, ref = 0.0;
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) {
    y[i] /= std::sqrt(128.0f);
    amax = std::max(amax, std::fabs(y[i]));
    err += std::pow(fp8_e4m3_to_float(q[i]) * scale - y[i], 2);
    ref += y[i] * y[i];
  }
  EXPECT_EQ(scale, dsa_fp8_scale(amax));
  EXPECT_LT(std::sqrt(err / ref), 0.04);  // 3 mantissa bits: about 2^-4 / sqrt(3) relative RMS
}

TEST(DsaTopk, TiesGoToTheLowerIndexAndShortRowsPad) {
  std::vector<float> s = {1, 5, 5, 3, 5, 2, 5};
  std::vector<int32_t> out(3);
  dsa_topk(s.data(), 7, 3, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{1, 2, 4}));
  out.resize(10);
  dsa_topk(s.data(), 7, 10, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, -1, -1, -1}));
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> t = {-inf, -inf, 0.0f, -0.0f, -inf};
  out.resize(3);
  dsa_topk(t.data(), 5, 3, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{0, 2, 3}));
}

TEST(DsaTopk, EqualsAStableSortOnRowsWithManyTies) {
  std::mt19937 rng(9);
  for (int trial = 0; trial < 20; ++trial) {
    int64_t len = 500 + trial * 37;
    int k = 64;
    std::vector<float> s(static_cast<size_t>(len));
    std::uniform_int_distribution<int> level(0, trial % 2 ? 8 : 1000);
    for (float& v : s) v = static_cast<float>(level(rng));
    std::vector<int32_t> order(static_cast<size_t>(len));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[a] > s[b]; });
    std::vector<int32_t> expected(order.begin(), order.begin() + k);
    std::sort(expected.begin(), expected.end());
    std::vector<int32_t> out(static_cast<size_t>(k));
    dsa_topk(s.data(), len, k, out.data());
    EXPECT_EQ(out, expected) << "trial " << trial;
  }
}

// A small paged index cache with a shuffled page table, filled through dsa_write_index_keys.
struct IndexFixture {
  int heads = 8, d = 64, rope = 32, ctx = 300;
  int pages = 0;
  std::vector<int32_t> table;
  std::vector<uint8_t> fp8_cache;
  std::vector<float> f32_cache;
  std::vector<float> q, w_raw;
  std::vector<float> inv_freq;

  explicit IndexFixture(uint32_t seed) {
    int used = (ctx + 63) / 64;
    pages = used + 3;
    table.resize(static_cast<size_t>(used));
    std::vector<int32_t> perm(static_cast<size_t>(pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(seed));
    std::copy(perm.begin(), perm.begin() + used, table.begin());
    fp8_cache.assign(static_cast<size_t>(pages) * dsa_index_page_bytes(d), 0xFF);
    f32_cache.assign(static_cast<size_t>(pages) * 64 * static_cast<size_t>(d), std::nanf(""));
    for (int i = 0; i < rope / 2; ++i) inv_freq.push_back(std::pow(10000.0f, -2.0f * i / rope));
    std::vector<float> k_raw = random_floats(static_cast<size_t>(ctx * d), seed + 1, -2.0f, 2.0f);
    std::vector<float> gamma = random_floats(static_cast<size_t>(d), seed + 2, 0.5f, 1.5f);
    std::vector<float> beta = random_floats(static_cast<size_t>(d), seed + 3, -0.2f, 0.2f);
    std::vector<int32_t> positions(static_cast<size_t>(ctx)), slots(static_cast<size_t>(ctx));
    for (int j = 0; j < ctx; ++j) {
      positions[static_cast<size_t>(j)] = j;
      slots[static_cast<size_t>(j)] = table[static_cast<size_t>(j / 64)] * 64 + j % 64;
    }
    DsaIndexKeyArgs a;
    a.k_raw = k_raw.data();
    a.gamma = gamma.data();
    a.beta = beta.data();
    a.positions = positions.data();
    a.slots = slots.data();
    a.inv_freq = inv_freq.data();
    a.tokens = ctx;
    a.head_dim = d;
    a.rope_dim = rope;
    a.fp8_cache = fp8_cache.data();
    a.f32_cache = f32_cache.data();
    dsa_write_index_keys(a);
    q = random_floats(static_cast<size_t>(heads * d), seed + 4, -2.0f, 2.0f);
    int32_t pos = ctx - 1;
    dsa_rope(q.data(), 1, heads, d, rope, &pos, inv_freq.data(), 1.0f);
    w_raw = random_floats(static_cast<size_t>(heads), seed + 5, -1.0f, 1.0f);
  }

  std::vector<float> logits(bool fp8) {
    std::vector<uint8_t> q8(q.size());
    std::vector<float> w(static_cast<size_t>(heads));
    dsa_prepare_query(q.data(), w_raw.data(), 1, heads, d, fp8 ? q8.data() : nullptr, w.data());
    int32_t starts[2] = {0, 1};
    DsaIndexLogitsArgs a;
    a.q_f32 = q.data();
    a.q_fp8 = fp8 ? q8.data() : nullptr;
    a.w_eff = w.data();
    a.f32_cache = f32_cache.data();
    a.fp8_cache = fp8 ? fp8_cache.data() : nullptr;
    a.query_start = starts;
    a.context_lens = &ctx;
    a.block_tables = table.data();
    a.seqs = 1;
    a.max_pages = static_cast<int>(table.size());
    a.heads = heads;
    a.head_dim = d;
    std::vector<float> out(static_cast<size_t>(ctx + 5));
    a.logits = out.data();
    a.logits_stride = ctx + 5;
    dsa_index_logits(a);
    return out;
  }
};

TEST(DsaIndexLogits, Fp8TracksExactScoresAndMasksTheFuture) {
  IndexFixture f(21);
  std::vector<float> exact = f.logits(false);
  std::vector<float> fp8 = f.logits(true);
  double err = 0.0, ref = 0.0;
  for (int j = 0; j < f.ctx; ++j) {
    ASSERT_TRUE(std::isfinite(exact[static_cast<size_t>(j)]));
    err += std::pow(fp8[static_cast<size_t>(j)] - exact[static_cast<size_t>(j)], 2);
    ref += std::pow(exact[static_cast<size_t>(j)], 2);
  }
  EXPECT_LT(std::sqrt(err / ref), 0.1);
  for (int j = f.ctx; j < f.ctx + 5; ++j) {
    EXPECT_EQ(exact[static_cast<size_t>(j)], -std::numeric_limits<float>::infinity());
    EXPECT_EQ(fp8[static_cast<size_t>(j)], -std::numeric_limits<float>::infinity());
  }
  // Recall of the FP8 top-32 against the exact top-32 (a sanity bound; the H100 figures are in
  // docs/benchmarks.md).
  std::vector<int32_t> a(32), b(32);
  dsa_topk(exact.data(), f.ctx, 32, a.data());
  dsa_topk(fp8.data(), f.ctx, 32, b.data());
  std::vector<int32_t> both;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(both));
  EXPECT_GE(both.size(), 24u);
}

TEST(DsaIndexLogits, ExactScoresMatchTheDefinition) {
  IndexFixture f(33);
  std::vector<float> got = f.logits(false);
  float c = 1.0f / std::sqrt(static_cast<float>(f.heads)) / std::sqrt(static_cast<float>(f.d));
  for (int j : {0, 1, 63, 64, 200, f.ctx - 1}) {
    int slot = f.table[static_cast<size_t>(j / 64)] * 64 + j % 64;
    double ref = 0.0;
    for (int h = 0; h < f.heads; ++h) {
      double dot = 0.0;
      for (int e = 0; e < f.d; ++e) {
        dot += static_cast<double>(f.q[static_cast<size_t>(h * f.d + e)]) *
               f.f32_cache[static_cast<size_t>(slot * f.d + e)];
      }
      ref += f.w_raw[static_cast<size_t>(h)] * c * std::max(dot, 0.0);
    }
    EXPECT_NEAR(got[static_cast<size_t>(j)], ref, 1e-4 * (1.0 + std::fabs(ref))) << j;
  }
}

// With every token selected, sparse attention is the dense paged attention of the CPU backend.
TEST(DsaSparseAttention, AllSelectedEqualsDenseAndSubsetsRenormalise) {
  const int q_heads = 8, kv_heads = 2, d = 32, pages = 6;
  const int ctx[2] = {70, 130};
  const int max_pages = 3, topk = 160;
  std::vector<float> k = random_floats(static_cast<size_t>(pages * 64 * kv_heads * d), 1);
  std::vector<float> v = random_floats(static_cast<size_t>(pages * 64 * kv_heads * d), 2);
  std::vector<float> q = random_floats(static_cast<size_t>(2 * q_heads * d), 3, -2.0f, 2.0f);
  std::vector<int32_t> tables = {4, 1, 0, 2, 5, 3};
  std::vector<int32_t> starts = {0, 1, 2};
  std::vector<int32_t> lens = {ctx[0], ctx[1]};
  std::vector<int32_t> indices(2 * topk);
  std::vector<float> score(static_cast<size_t>(ctx[1]), 1.0f);
  for (int s = 0; s < 2; ++s) dsa_topk(score.data(), ctx[s], topk, indices.data() + s * topk);

  DsaSparseAttentionArgs a;
  a.q = q.data();
  a.k_cache = k.data();
  a.v_cache = v.data();
  a.indices = indices.data();
  a.query_start = starts.data();
  a.block_tables = tables.data();
  a.seqs = 2;
  a.max_pages = max_pages;
  a.topk = topk;
  a.q_heads = q_heads;
  a.kv_heads = kv_heads;
  a.head_dim = d;
  a.scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<float> out(q.size(), std::nanf(""));
  a.out = out.data();
  dsa_sparse_attention(a);

  auto backend = create_cpu_backend();
  auto tensor = [&](DType t, std::initializer_list<int64_t> dims, const void* host) {
    Tensor x = *backend->allocate(t, dims);
    EXPECT_TRUE(backend->upload(host, x).ok());
    return x;
  };
  PagedAttentionArgs p;
  p.q = tensor(DType::kF32, {2, q_heads, d}, q.data());
  p.k_cache = tensor(DType::kF32, {pages, 64, kv_heads, d}, k.data());
  p.v_cache = tensor(DType::kF32, {pages, 64, kv_heads, d}, v.data());
  p.query_start = tensor(DType::kI32, {3}, starts.data());
  p.context_lens = tensor(DType::kI32, {2}, lens.data());
  p.block_tables = tensor(DType::kI32, {2, max_pages}, tables.data());
  p.out = *backend->allocate(DType::kF32, {2, q_heads, d});
  p.max_query_len = 1;
  p.max_context_len = ctx[1];
  p.scale = a.scale;
  ASSERT_TRUE(backend->paged_attention(p).ok());
  std::vector<float> dense(q.size());
  ASSERT_TRUE(backend->download(p.out, dense.data()).ok());
  for (size_t i = 0; i < out.size(); ++i) ASSERT_NEAR(out[i], dense[i], 1e-5) << i;

  // One selected token: the output is that token's V row.
  std::fill(indices.begin(), indices.end(), -1);
  indices[5] = 100;  // sequence 0's topk slots 0..: token 100 is beyond ctx 70 but the reference trusts indices
  indices[topk + 7] = 129;
  dsa_sparse_attention(a);
  for (int h = 0; h < q_heads; ++h) {
    int kv = h / (q_heads / kv_heads);
    int slot0 = tables[1] * 64 + 100 % 64;
    int slot1 = tables[3 + 2] * 64 + 129 % 64;
    for (int e = 0; e < d; ++e) {
      EXPECT_FLOAT_EQ(out[static_cast<size_t>(h * d + e)], v[static_cast<size_t>((slot0 * kv_heads + kv) * d + e)]);
      EXPECT_FLOAT_EQ(out[static_cast<size_t>((q_heads + h) * d + e)],
                      v[static_cast<size_t>((slot1 * kv_heads + kv) * d + e)]);
    }
  }
  // No valid index: zeros.
  std::fill(indices.begin(), indices.end(), -1);
  dsa_sparse_attention(a);
  for (float x : out) ASSERT_EQ(x, 0.0f);
}

}  // namespace
}  // namespace longbow::cpu
