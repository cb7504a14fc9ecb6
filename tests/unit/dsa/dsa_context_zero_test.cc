// The context-0 contract of the DSA ops (backend.h) on the CPU reference: a graph batch's padding
// row (one query, context 0, slot -1, a block-table row of -1) writes no index key, reads nothing,
// selects nothing and attends to nothing (output 0), and leaves the real rows of its batch exactly
// as they are when those rows run alone.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"

namespace longbow {
namespace {

constexpr int kHq = 8, kHkv = 2, kD = 32, kIh = 4, kId = 32, kRope = 16, kPages = 9, kTopk = 16;
constexpr int kPageBytes = 64 * (kId + 4);

std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

class DsaContextZero : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = create_cpu_backend();

  template <typename T>
  Tensor make(DType t, std::initializer_list<int64_t> dims, const std::vector<T>& host) {
    Tensor x = *be->allocate(t, dims);
    EXPECT_TRUE(be->upload(host.data(), x).ok());
    return x;
  }
  template <typename T>
  std::vector<T> read(const Tensor& t) {
    std::vector<T> out(t.num_bytes() / sizeof(T));
    EXPECT_TRUE(be->download(t, out.data()).ok());
    return out;
  }
  Tensor inv_freq() {
    std::vector<float> inv(kRope / 2);
    for (int i = 0; i < kRope / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * static_cast<float>(i) / kRope);
    return make(DType::kF32, {kRope / 2}, inv);
  }
  // Index keys of `slots` (positions = index, k_raw from `seed`) into a cache poisoned with 0xA5.
  StatusOr<std::vector<uint8_t>> keys(const std::vector<int32_t>& slots, const std::vector<int32_t>& positions,
                                      const std::vector<float>& k_raw) {
    const auto n = static_cast<int64_t>(slots.size());
    Tensor cache = make(DType::kFP8E4M3, {kPages, kPageBytes}, std::vector<uint8_t>(kPages * kPageBytes, 0xA5));
    DsaIndexKeysArgs k;
    k.k_raw = make(DType::kF32, {n, kId}, k_raw);
    k.norm_weight = make(DType::kF32, {kId}, random_floats(kId, 2, 0.5f, 1.5f));
    k.norm_bias = make(DType::kF32, {kId}, random_floats(kId, 3, -0.1f, 0.1f));
    k.positions = make(DType::kI32, {n}, positions);
    k.slots = make(DType::kI32, {n}, slots);
    k.inv_freq = inv_freq();
    k.index_cache = cache;
    RETURN_IF_ERROR(be->dsa_index_keys(k));
    return read<uint8_t>(cache);
  }
};

// Slot -1 writes nothing: the cache equals the one written by the real tokens alone, byte for byte
// (every other byte keeps its poison). Slots below -1 are still refused.
TEST_F(DsaContextZero, IndexKeysSkipSlotMinusOne) {
  const std::vector<float> raw = random_floats(4 * kId, 1, -2, 2);
  auto mixed = keys({-1, 5, -1, 200}, {0, 5, 0, 77}, raw);
  ASSERT_TRUE(mixed.ok()) << mixed.status().to_string();
  std::vector<float> real_raw(raw.begin() + kId, raw.begin() + 2 * kId);
  real_raw.insert(real_raw.end(), raw.begin() + 3 * kId, raw.end());
  auto alone = keys({5, 200}, {5, 77}, real_raw);
  ASSERT_TRUE(alone.ok()) << alone.status().to_string();
  EXPECT_EQ(*mixed, *alone);
  size_t untouched = 0;
  for (uint8_t b : *mixed) untouched += b == 0xA5 ? 1 : 0;
  EXPECT_GE(untouched, mixed->size() - 2 * (kId + 4));  // two slots written, nothing else

  EXPECT_FALSE(keys({-2}, {0}, random_floats(kId, 4)).ok());
}

// A decode batch of real rows and padding rows (context 0) through scores → top-k → sparse
// attention: real rows equal, bit for bit, the same rows run as their own batch; padding rows
// select all -1 and output 0 (their indices and outputs are poisoned first), and nothing of a
// padding row's block-table row (all -1) is read.
TEST_F(DsaContextZero, PaddingRowsSelectNothingAndOutputZero) {
  // Sequences: contexts 150 (3 pages), 0 (padding), 90 (2 pages), 0 (padding), 9 (<= topk).
  const std::vector<int32_t> contexts = {150, 0, 90, 0, 9};
  const std::vector<std::vector<int32_t>> pages = {{3, 0, 7}, {}, {4, 1}, {}, {6}};
  const int seqs = static_cast<int>(contexts.size()), width = 4;
  // Index keys for every real token of every sequence.
  std::vector<int32_t> slots, positions;
  for (int s = 0; s < seqs; ++s) {
    for (int j = 0; j < contexts[static_cast<size_t>(s)]; ++j) {
      slots.push_back(pages[static_cast<size_t>(s)][static_cast<size_t>(j / 64)] * 64 + j % 64);
      positions.push_back(j);
    }
  }
  auto cache_bytes = keys(slots, positions, random_floats(slots.size() * kId, 11, -2, 2));
  ASSERT_TRUE(cache_bytes.ok()) << cache_bytes.status().to_string();
  Tensor index_cache = make(DType::kFP8E4M3, {kPages, kPageBytes}, *cache_bytes);
  Tensor inv = inv_freq();
  const std::vector<float> q_index = random_floats(static_cast<size_t>(seqs) * kIh * kId, 12, -2, 2);
  const std::vector<float> w = random_floats(static_cast<size_t>(seqs) * kIh, 13);
  const std::vector<float> q = random_floats(static_cast<size_t>(seqs) * kHq * kD, 14, -2, 2);
  Tensor k_cache = make(DType::kF32, {kPages, 64, kHkv, kD}, random_floats(kPages * 64 * kHkv * kD, 15));
  Tensor v_cache = make(DType::kF32, {kPages, 64, kHkv, kD}, random_floats(kPages * 64 * kHkv * kD, 16));

  struct Result {
    std::vector<float> logits;     // [rows, stride]
    std::vector<int32_t> indices;  // [rows, topk]
    std::vector<float> out;        // [rows, Hq, D]
  };
  const int stride = 152;
  // Runs rows `rows` (sequence ids) as one decode batch.
  auto run = [&](const std::vector<int>& rows) -> Result {
    const auto n = static_cast<int64_t>(rows.size());
    std::vector<int32_t> starts(rows.size() + 1), lens, table(rows.size() * width, -1), pos;
    std::vector<float> qi, wi, qa;
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto s = static_cast<size_t>(rows[r]);
      starts[r + 1] = static_cast<int32_t>(r + 1);
      lens.push_back(contexts[s]);
      pos.push_back(std::max(0, contexts[s] - 1));
      std::copy(pages[s].begin(), pages[s].end(), table.begin() + static_cast<std::ptrdiff_t>(r * width));
      qi.insert(qi.end(), q_index.begin() + static_cast<std::ptrdiff_t>(s * kIh * kId),
                q_index.begin() + static_cast<std::ptrdiff_t>((s + 1) * kIh * kId));
      wi.insert(wi.end(), w.begin() + static_cast<std::ptrdiff_t>(s * kIh),
                w.begin() + static_cast<std::ptrdiff_t>((s + 1) * kIh));
      qa.insert(qa.end(), q.begin() + static_cast<std::ptrdiff_t>(s * kHq * kD),
                q.begin() + static_cast<std::ptrdiff_t>((s + 1) * kHq * kD));
    }
    Tensor query_start = make(DType::kI32, {n + 1}, starts);
    Tensor context_lens = make(DType::kI32, {n}, lens);
    Tensor block_tables = make(DType::kI32, {n, width}, table);
    DsaIndexScoresArgs sc;
    sc.q = make(DType::kF32, {n, kIh, kId}, qi);
    sc.weights = make(DType::kF32, {n, kIh}, wi);
    sc.positions = make(DType::kI32, {n}, pos);
    sc.inv_freq = inv;
    sc.index_cache = index_cache;
    sc.query_start = query_start;
    sc.context_lens = context_lens;
    sc.block_tables = block_tables;
    sc.logits = make(DType::kF32, {n, stride},
                     std::vector<float>(static_cast<size_t>(n * stride), std::numeric_limits<float>::quiet_NaN()));
    sc.max_context_len = stride;
    EXPECT_TRUE(be->dsa_index_scores(sc).ok());
    DsaTopkArgs tk{sc.logits, query_start, context_lens,
                   make(DType::kI32, {n, kTopk}, std::vector<int32_t>(static_cast<size_t>(n * kTopk), 12345))};
    const Status topk = be->dsa_topk(tk);
    EXPECT_TRUE(topk.ok()) << topk.to_string();
    DsaSparseAttentionArgs at;
    at.q = make(DType::kF32, {n, kHq, kD}, qa);
    at.k_cache = k_cache;
    at.v_cache = v_cache;
    at.indices = tk.indices;
    at.query_start = query_start;
    at.block_tables = block_tables;
    at.out = make(DType::kF32, {n, kHq, kD},
                  std::vector<float>(static_cast<size_t>(n * kHq * kD), std::numeric_limits<float>::quiet_NaN()));
    at.scale = 1.0f / std::sqrt(static_cast<float>(kD));
    const Status sparse = be->dsa_sparse_attention(at);
    EXPECT_TRUE(sparse.ok()) << sparse.to_string();
    return Result{read<float>(sc.logits), read<int32_t>(tk.indices), read<float>(at.out)};
  };

  const Result mixed = run({0, 1, 2, 3, 4});
  for (int s = 0; s < seqs; ++s) {
    const auto r = static_cast<size_t>(s);
    auto span = [](const auto& v, size_t row, size_t len) {
      return std::vector(v.begin() + static_cast<std::ptrdiff_t>(row * len),
                         v.begin() + static_cast<std::ptrdiff_t>((row + 1) * len));
    };
    if (contexts[r] == 0) {
      EXPECT_EQ(span(mixed.indices, r, kTopk), std::vector<int32_t>(kTopk, -1)) << "padding row " << s;
      EXPECT_EQ(span(mixed.out, r, kHq * kD), std::vector<float>(kHq * kD, 0.0f)) << "padding row " << s;
      continue;
    }
    const Result alone = run({s});
    const auto len = static_cast<size_t>(contexts[r]);
    EXPECT_EQ(std::vector(mixed.logits.begin() + static_cast<std::ptrdiff_t>(r * stride),
                          mixed.logits.begin() + static_cast<std::ptrdiff_t>(r * stride + len)),
              std::vector(alone.logits.begin(), alone.logits.begin() + static_cast<std::ptrdiff_t>(len)))
        << "row " << s;
    EXPECT_EQ(span(mixed.indices, r, kTopk), alone.indices) << "row " << s;
    EXPECT_EQ(span(mixed.out, r, kHq * kD), alone.out) << "row " << s;
    if (len > static_cast<size_t>(kTopk)) {  // a real selection: all k slots used, and not just 0..k-1
      EXPECT_EQ(std::count(alone.indices.begin(), alone.indices.end(), -1), 0);
      EXPECT_GT(alone.indices.back(), kTopk - 1);
    }
  }
}

// Context 0 is a padding row only with one query: two queries at context 0, or fewer context
// tokens than queries, are still refused by scores and top-k.
TEST_F(DsaContextZero, ContextZeroNeedsExactlyOneQuery) {
  for (const std::vector<int32_t>& ctx : {std::vector<int32_t>{0}, std::vector<int32_t>{1}}) {
    Tensor starts = make(DType::kI32, {2}, std::vector<int32_t>{0, 2});
    Tensor lens = make(DType::kI32, {1}, ctx);
    DsaTopkArgs tk{make(DType::kF32, {2, 8}, std::vector<float>(16, 0.0f)), starts, lens,
                   make(DType::kI32, {2, 4}, std::vector<int32_t>(8, 0))};
    EXPECT_FALSE(be->dsa_topk(tk).ok()) << "context " << ctx[0];
    DsaIndexScoresArgs sc;
    sc.q = make(DType::kF32, {2, kIh, kId}, random_floats(2 * kIh * kId, 1));
    sc.weights = make(DType::kF32, {2, kIh}, random_floats(2 * kIh, 2));
    sc.positions = make(DType::kI32, {2}, std::vector<int32_t>{0, 0});
    sc.inv_freq = inv_freq();
    sc.index_cache = make(DType::kFP8E4M3, {kPages, kPageBytes}, std::vector<uint8_t>(kPages * kPageBytes, 0));
    sc.query_start = starts;
    sc.context_lens = lens;
    sc.block_tables = make(DType::kI32, {1, 2}, std::vector<int32_t>{0, 1});
    sc.logits = make(DType::kF32, {2, 8}, std::vector<float>(16, 0.0f));
    sc.max_context_len = 8;
    EXPECT_FALSE(be->dsa_index_scores(sc).ok()) << "context " << ctx[0];
  }
}

}  // namespace
}  // namespace longbow
