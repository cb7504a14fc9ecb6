// CpuBackend's append_kv + paged_attention against attention computed over each sequence's
// contiguous (logical) K/V in double precision. The pages are scattered: each sequence gets
// shuffled, non-contiguous physical pages, so a slot mapping bug changes the answer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "model/backend/cpu/cpu_backend.h"
#include "model/kv_cache/window_pages.h"
#include "tests/unit/backend/backend_test_util.h"

namespace longbow {
namespace {

using testing::expect_invalid;
using testing::make_f32;
using testing::make_i32;
using testing::make_poisoned;
using testing::random_floats;
using testing::relative_l2;
using testing::to_host;

struct SeqCase {
  int q_len;        // queries this step
  int context_len;  // tokens in the cache after this step
};

struct AttentionProblem {
  std::string name;
  int q_heads, kv_heads, head_dim, sliding_window;
  std::vector<SeqCase> seqs;
  float softcap = 0.0f;  // logit soft-cap (0: none)
};

void PrintTo(const AttentionProblem& p, std::ostream* os) {
  *os << p.name << " (Hq " << p.q_heads << ", Hkv " << p.kv_heads << ", D " << p.head_dim << ", window "
      << p.sliding_window << ")";
}

// Everything needed to run and check one batch.
class PagedAttentionHarness {
 public:
  PagedAttentionHarness(Backend& backend, const AttentionProblem& p, uint32_t seed) : backend_(backend), p_(p) {
    std::mt19937 rng(seed);
    int total_pages = 0;
    for (const SeqCase& s : p.seqs) total_pages += (s.context_len + kPageSize - 1) / kPageSize;
    num_pages_ = total_pages + 3;  // a few pages nobody uses
    std::vector<int32_t> pool(static_cast<size_t>(num_pages_));
    std::iota(pool.begin(), pool.end(), 0);
    std::shuffle(pool.begin(), pool.end(), rng);
    size_t next_page = 0;
    for (const SeqCase& s : p.seqs) {
      max_pages_ = std::max(max_pages_, (s.context_len + kPageSize - 1) / kPageSize);
      int kv_row = p.kv_heads * p.head_dim;
      keys_.push_back(random_floats(static_cast<size_t>(s.context_len * kv_row), rng()));
      values_.push_back(random_floats(static_cast<size_t>(s.context_len * kv_row), rng()));
      std::vector<int32_t> table;
      for (int b = 0; b < (s.context_len + kPageSize - 1) / kPageSize; ++b) table.push_back(pool[next_page++]);
      tables_.push_back(table);
      num_queries_ += s.q_len;
    }
    queries_ = random_floats(static_cast<size_t>(num_queries_ * p.q_heads * p.head_dim), rng(), -2.0f, 2.0f);
  }

  // Writes every sequence's K/V through append_kv in one call.
  void fill_cache(Tensor& k_cache, Tensor& v_cache) {
    std::vector<float> k_all, v_all;
    std::vector<int32_t> slots;
    for (size_t s = 0; s < p_.seqs.size(); ++s) {
      k_all.insert(k_all.end(), keys_[s].begin(), keys_[s].end());
      v_all.insert(v_all.end(), values_[s].begin(), values_[s].end());
      for (int j = 0; j < p_.seqs[s].context_len; ++j) slots.push_back(tables_[s][j / kPageSize] * kPageSize + j % kPageSize);
    }
    auto n = static_cast<int64_t>(slots.size());
    Status st = backend_.append_kv(make_f32(backend_, {n, p_.kv_heads, p_.head_dim}, k_all),
                                   make_f32(backend_, {n, p_.kv_heads, p_.head_dim}, v_all),
                                   make_i32(backend_, {n}, slots), k_cache, v_cache);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }

  // Leading table entries of sequence s that a sliding-window engine has released
  // (model/kv_cache/window_pages.h).
  int64_t released_pages(size_t s) const {
    return pages_behind_window(p_.seqs[s].context_len - p_.seqs[s].q_len, p_.sliding_window, kPageSize);
  }

  // Overwrites the released pages of every sequence with NaN in `cache`, as if reused by another.
  void poison_released(Tensor& cache) {
    std::vector<float> host = to_host(backend_, cache);
    const size_t page_floats = host.size() / static_cast<size_t>(num_pages_);
    for (size_t s = 0; s < p_.seqs.size(); ++s) {
      for (int64_t b = 0; b < released_pages(s); ++b) {
        auto page = static_cast<size_t>(tables_[s][static_cast<size_t>(b)]);
        std::fill_n(host.begin() + static_cast<std::ptrdiff_t>(page * page_floats), page_floats, std::nanf(""));
      }
    }
    ASSERT_TRUE(backend_.upload(host.data(), cache).ok());
  }

  // release_behind_window: the released entries read kNullPage, as the engine hands them over.
  PagedAttentionArgs make_args(Tensor& k_cache, Tensor& v_cache, bool release_behind_window = false) {
    std::vector<int32_t> starts = {0}, lens, tables;
    int max_q = 0, max_ctx = 0;
    for (size_t s = 0; s < p_.seqs.size(); ++s) {
      starts.push_back(starts.back() + p_.seqs[s].q_len);
      lens.push_back(p_.seqs[s].context_len);
      max_q = std::max(max_q, p_.seqs[s].q_len);
      max_ctx = std::max(max_ctx, p_.seqs[s].context_len);
      std::vector<int32_t> row = tables_[s];
      if (release_behind_window) std::fill_n(row.begin(), released_pages(s), kNullPage);
      row.resize(static_cast<size_t>(max_pages_), -1);  // unused columns hold garbage the op must not read
      tables.insert(tables.end(), row.begin(), row.end());
    }
    auto seqs = static_cast<int64_t>(p_.seqs.size());
    PagedAttentionArgs args;
    args.q = make_f32(backend_, {num_queries_, p_.q_heads, p_.head_dim}, queries_);
    args.k_cache = k_cache;
    args.v_cache = v_cache;
    args.query_start = make_i32(backend_, {seqs + 1}, starts);
    args.context_lens = make_i32(backend_, {seqs}, lens);
    args.block_tables = make_i32(backend_, {seqs, max_pages_}, tables);
    args.out = make_poisoned(backend_, {num_queries_, p_.q_heads, p_.head_dim});
    args.max_query_len = max_q;
    args.max_context_len = max_ctx;
    args.scale = 1.0f / std::sqrt(static_cast<float>(p_.head_dim));
    args.sliding_window = p_.sliding_window;
    args.softcap = p_.softcap;
    return args;
  }

  // softmax(q·kᵀ·scale) v over the visible positions of each query, from the logical arrays.
  std::vector<double> reference() const {
    std::vector<double> out;
    int row = 0;
    double scale = 1.0 / std::sqrt(static_cast<float>(p_.head_dim));
    scale = static_cast<float>(scale);
    for (size_t s = 0; s < p_.seqs.size(); ++s) {
      const SeqCase& c = p_.seqs[s];
      for (int i = 0; i < c.q_len; ++i, ++row) {
        int pos = c.context_len - c.q_len + i;
        for (int h = 0; h < p_.q_heads; ++h) {
          int g = h / (p_.q_heads / p_.kv_heads);
          std::vector<double> scores;
          std::vector<int> visible;
          for (int j = 0; j <= pos; ++j) {
            if (p_.sliding_window > 0 && pos - j >= p_.sliding_window) continue;
            double dot = 0.0;
            for (int d = 0; d < p_.head_dim; ++d) {
              dot += double{queries_[static_cast<size_t>((row * p_.q_heads + h) * p_.head_dim + d)]} *
                     keys_[s][static_cast<size_t>((j * p_.kv_heads + g) * p_.head_dim + d)];
            }
            double score = dot * scale;
            if (p_.softcap > 0.0f) score = p_.softcap * std::tanh(score / p_.softcap);
            scores.push_back(score);
            visible.push_back(j);
          }
          double top = *std::max_element(scores.begin(), scores.end());
          double total = 0.0;
          for (double sc : scores) total += std::exp(sc - top);
          for (int d = 0; d < p_.head_dim; ++d) {
            double acc = 0.0;
            for (size_t n = 0; n < visible.size(); ++n) {
              acc += std::exp(scores[n] - top) / total *
                     values_[s][static_cast<size_t>((visible[n] * p_.kv_heads + g) * p_.head_dim + d)];
            }
            out.push_back(acc);
          }
        }
      }
    }
    return out;
  }

  int num_pages() const { return num_pages_; }

 private:
  Backend& backend_;
  AttentionProblem p_;
  int num_pages_ = 0;
  int max_pages_ = 1;
  int64_t num_queries_ = 0;
  std::vector<std::vector<float>> keys_, values_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<float> queries_;
};

class CpuAttentionTest : public ::testing::TestWithParam<AttentionProblem> {
 protected:
  CpuBackend backend_;
};

TEST_P(CpuAttentionTest, MatchesContiguousReference) {
  const AttentionProblem& p = GetParam();
  PagedAttentionHarness harness(backend_, p, 1234);
  Tensor k_cache = make_poisoned(backend_, {harness.num_pages(), kPageSize, p.kv_heads, p.head_dim});
  Tensor v_cache = make_poisoned(backend_, {harness.num_pages(), kPageSize, p.kv_heads, p.head_dim});
  harness.fill_cache(k_cache, v_cache);
  PagedAttentionArgs args = harness.make_args(k_cache, v_cache);
  Status st = backend_.paged_attention(args);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_LT(relative_l2(to_host(backend_, args.out), harness.reference()), 1e-6);
}

// Mixed batches: a fresh prefill, decode tokens, a prefill chunk on top of a cache, a 1-token
// sequence; odd sizes around the 64-token page boundary.
const std::vector<SeqCase> kMixed = {{97, 97}, {1, 130}, {65, 200}, {1, 1}, {63, 63}, {1, 65}};

INSTANTIATE_TEST_SUITE_P(
    Batches, CpuAttentionTest,
    ::testing::Values(AttentionProblem{"Gqa", 4, 2, 64, 0, kMixed},
                      AttentionProblem{"MhaOddHeadDim", 3, 3, 65, 0, kMixed},
                      AttentionProblem{"Mqa", 8, 1, 16, 0, {{5, 5}, {1, 64}}},
                      AttentionProblem{"SlidingWindow17", 4, 2, 32, 17, kMixed},
                      AttentionProblem{"SlidingWindowOnePage", 4, 2, 32, 64, kMixed},
                      AttentionProblem{"SlidingWindowOfOne", 2, 1, 8, 1, {{7, 70}, {1, 3}}},  // itself only
                      AttentionProblem{"Smallest", 2, 2, 1, 0, {{1, 1}}},
                      // Scores of these random inputs reach ~±2, so a cap of 0.7 changes every softmax.
                      AttentionProblem{"SoftcapWindow", 4, 2, 24, 33, kMixed, 0.7f},
                      AttentionProblem{"SoftcapHeadDim256", 2, 1, 256, 0, {{3, 70}, {1, 5}}, 1.5f}),
    [](const ::testing::TestParamInfo<AttentionProblem>& param_info) { return param_info.param.name; });

// The sliding-window contract (backend.h, PagedAttentionArgs::block_tables): entries released behind
// every query's window point at the null page (page 0, whatever it holds) and the released pages may
// hold anything (here NaN); the window masks them. -1 is never a valid entry of a context.
TEST(CpuAttentionWindow, ReleasedPagesBehindTheWindowAreNeverRead) {
  CpuBackend backend;
  const AttentionProblem p{"Released", 4, 2, 32, 17, {{1, 400}, {30, 333}, {5, 200}, {1, 1}, {70, 130}}};
  PagedAttentionHarness harness(backend, p, 99);
  int64_t released = 0;
  for (size_t s = 0; s < p.seqs.size(); ++s) released += harness.released_pages(s);
  EXPECT_EQ(released, 4 + 4 + 2 + 0 + 0);
  Tensor k_cache = make_poisoned(backend, {harness.num_pages(), kPageSize, p.kv_heads, p.head_dim});
  Tensor v_cache = make_poisoned(backend, {harness.num_pages(), kPageSize, p.kv_heads, p.head_dim});
  harness.fill_cache(k_cache, v_cache);
  harness.poison_released(k_cache);
  harness.poison_released(v_cache);
  PagedAttentionArgs args = harness.make_args(k_cache, v_cache, /*release_behind_window=*/true);
  Status st = backend.paged_attention(args);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_LT(relative_l2(to_host(backend, args.out), harness.reference()), 1e-6);

  std::vector<int32_t> tables(static_cast<size_t>(args.block_tables.numel()));
  std::copy_n(args.block_tables.as<int32_t>(), tables.size(), tables.begin());
  tables[0] = -1;
  args.block_tables = make_i32(backend, {args.block_tables.dim(0), args.block_tables.dim(1)}, tables);
  expect_invalid(backend.paged_attention(args), {"block_tables[0][0] = -1"});
}

TEST(CpuAttentionDecode, BatchEqualsOneByOne) {
  // Each sequence alone gives bit-identical output to the same sequence inside a batch.
  CpuBackend backend;
  AttentionProblem batch{"Batch", 4, 2, 32, 0, kMixed};
  PagedAttentionHarness harness(backend, batch, 77);
  Tensor k_cache = make_poisoned(backend, {harness.num_pages(), kPageSize, 2, 32});
  Tensor v_cache = make_poisoned(backend, {harness.num_pages(), kPageSize, 2, 32});
  harness.fill_cache(k_cache, v_cache);
  PagedAttentionArgs args = harness.make_args(k_cache, v_cache);
  ASSERT_TRUE(backend.paged_attention(args).ok());
  std::vector<float> batched = to_host(backend, args.out);
  int64_t row = 0;
  for (size_t s = 0; s < kMixed.size(); ++s) {
    PagedAttentionArgs one = args;
    one.q = args.q.rows(row, kMixed[s].q_len);
    one.out = make_poisoned(backend, {kMixed[s].q_len, 4, 32});
    one.query_start = make_i32(backend, {2}, {0, kMixed[s].q_len});
    one.context_lens = args.context_lens.rows(static_cast<int64_t>(s), 1);
    one.block_tables = args.block_tables.rows(static_cast<int64_t>(s), 1);
    ASSERT_TRUE(backend.paged_attention(one).ok());
    std::vector<float> alone = to_host(backend, one.out);
    for (size_t i = 0; i < alone.size(); ++i) {
      ASSERT_EQ(alone[i], batched[static_cast<size_t>(row * 4 * 32) + i]) << "sequence " << s;
    }
    row += kMixed[s].q_len;
  }
}

class CpuAttentionErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    harness_ = std::make_unique<PagedAttentionHarness>(backend_, problem_, 5);
    k_cache_ = make_poisoned(backend_, {harness_->num_pages(), kPageSize, 2, 8});
    v_cache_ = make_poisoned(backend_, {harness_->num_pages(), kPageSize, 2, 8});
    harness_->fill_cache(k_cache_, v_cache_);
    args_ = harness_->make_args(k_cache_, v_cache_);
  }
  CpuBackend backend_;
  AttentionProblem problem_{"Errors", 4, 2, 8, 0, {{3, 70}, {1, 5}}};
  std::unique_ptr<PagedAttentionHarness> harness_;
  Tensor k_cache_, v_cache_;
  PagedAttentionArgs args_;
};

TEST_F(CpuAttentionErrors, RejectsBadIndexTensors) {
  ASSERT_TRUE(backend_.paged_attention(args_).ok());
  PagedAttentionArgs a = args_;
  a.query_start = make_i32(backend_, {3}, {0, 3, 5});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "query_start[2]", "4"});
  a = args_;
  a.query_start = make_i32(backend_, {3}, {0, 5, 4});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "query_start"});
  a = args_;
  a.context_lens = make_i32(backend_, {2}, {2, 5});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "context_lens[0]"});
  a = args_;
  a.context_lens = make_i32(backend_, {2}, {70, 129});
  a.max_context_len = 129;
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "needs 3 pages"});
  a = args_;
  a.block_tables = make_i32(backend_, {2, 2}, {0, harness_->num_pages(), 1, 0});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "block_tables[0][1]"});
  a = args_;
  a.max_query_len = 2;
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "max_query_len"});
  a = args_;
  a.max_context_len = 69;
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "max_context_len"});
}

TEST_F(CpuAttentionErrors, RejectsBadShapes) {
  PagedAttentionArgs a = args_;
  a.out = make_poisoned(backend_, {4, 4, 7});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "'out'"});
  a = args_;
  a.q = make_poisoned(backend_, {4, 3, 8});
  a.out = make_poisoned(backend_, {4, 3, 8});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "multiple"});
  a = args_;
  a.v_cache = make_poisoned(backend_, {harness_->num_pages(), kPageSize, 1, 8});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "v_cache"});
  a = args_;
  a.block_tables = make_i32(backend_, {2}, {0, 1});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "block_tables"});
  a = args_;
  a.out = a.q;
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "overlaps"});
}

TEST_F(CpuAttentionErrors, AppendKvRejectsBadSlots) {
  Tensor k = make_f32(backend_, {2, 2, 8}, random_floats(32, 1));
  Tensor v = make_f32(backend_, {2, 2, 8}, random_floats(32, 2));
  int64_t num_slots = int64_t{harness_->num_pages()} * kPageSize;
  expect_invalid(backend_.append_kv(k, v, make_i32(backend_, {2}, {0, static_cast<int32_t>(num_slots)}), k_cache_,
                                    v_cache_),
                 {"append_kv", "slots[1]"});
  expect_invalid(backend_.append_kv(k, v, make_i32(backend_, {2}, {-2, 0}), k_cache_, v_cache_),
                 {"append_kv", "slots[0]"});
  Tensor v_bad = make_f32(backend_, {2, 1, 8}, random_floats(16, 3));
  expect_invalid(backend_.append_kv(k, v_bad, make_i32(backend_, {2}, {0, 1}), k_cache_, v_cache_),
                 {"append_kv", "'v'"});
}

// Graph padding rows (model/runtime/decode_graphs.h): slot -1 is not stored; every other slot is.
TEST_F(CpuAttentionErrors, AppendKvSkipsPaddingSlot) {
  Tensor k = make_f32(backend_, {3, 2, 8}, random_floats(48, 11));
  Tensor v = make_f32(backend_, {3, 2, 8}, random_floats(48, 12));
  const std::vector<float> k_before = to_host(backend_, k_cache_);
  const std::vector<float> v_before = to_host(backend_, v_cache_);
  const int32_t stored0 = 3 * kPageSize + 5, stored2 = 17;
  ASSERT_TRUE(backend_.append_kv(k, v, make_i32(backend_, {3}, {stored0, -1, stored2}), k_cache_, v_cache_).ok());
  const std::vector<float> k_host = to_host(backend_, k), v_host = to_host(backend_, v);
  std::vector<float> k_want = k_before, v_want = v_before;
  constexpr size_t kRow = 16;
  for (auto [token, slot] : {std::pair<size_t, size_t>{0, stored0}, {2, stored2}}) {
    std::copy_n(k_host.begin() + static_cast<std::ptrdiff_t>(token * kRow), kRow,
                k_want.begin() + static_cast<std::ptrdiff_t>(slot * kRow));
    std::copy_n(v_host.begin() + static_cast<std::ptrdiff_t>(token * kRow), kRow,
                v_want.begin() + static_cast<std::ptrdiff_t>(slot * kRow));
  }
  // Bitwise: the untouched slots hold NaN poison.
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same_bits(to_host(backend_, k_cache_), k_want));
  EXPECT_TRUE(same_bits(to_host(backend_, v_cache_), v_want));
}

// A one-query row with context 0 (a graph padding row) writes zeros and leaves the other rows as
// they are without it; a multi-query row with context 0 is still an error.
TEST_F(CpuAttentionErrors, ContextZeroRowOutputsZeros) {
  ASSERT_TRUE(backend_.paged_attention(args_).ok());
  const std::vector<float> without = to_host(backend_, args_.out);  // rows: 3 queries of seq 0, 1 of seq 1
  PagedAttentionArgs a = args_;
  std::vector<float> q_all = to_host(backend_, args_.q);  // rows 0..3 as before, row 4 random
  const std::vector<float> padding_q = random_floats(32, 13);
  q_all.insert(q_all.end(), padding_q.begin(), padding_q.end());
  a.q = make_f32(backend_, {5, 4, 8}, q_all);
  a.out = make_poisoned(backend_, {5, 4, 8});
  a.query_start = make_i32(backend_, {4}, {0, 3, 4, 5});
  a.context_lens = make_i32(backend_, {3}, {70, 5, 0});
  std::vector<int32_t> tables(3 * static_cast<size_t>(args_.block_tables.dim(1)), -1);
  std::copy_n(args_.block_tables.as<int32_t>(), args_.block_tables.numel(), tables.begin());
  a.block_tables = make_i32(backend_, {3, args_.block_tables.dim(1)}, tables);
  ASSERT_TRUE(backend_.paged_attention(a).ok());
  const std::vector<float> with = to_host(backend_, a.out);
  for (size_t i = 0; i < without.size(); ++i) ASSERT_EQ(with[i], without[i]) << "element " << i;
  for (size_t i = without.size(); i < with.size(); ++i) ASSERT_EQ(with[i], 0.0f) << "padding element " << i;

  a.query_start = make_i32(backend_, {4}, {0, 2, 3, 5});  // the context-0 row now has two queries
  a.context_lens = make_i32(backend_, {3}, {70, 5, 0});
  expect_invalid(backend_.paged_attention(a), {"paged_attention", "context_lens[2]"});
}

}  // namespace
}  // namespace longbow
