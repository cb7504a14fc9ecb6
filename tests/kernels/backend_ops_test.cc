// Every CudaBackend op against the CPU reference backend, on fresh random inputs of odd sizes.
//
// Inputs are drawn in fp32 and rounded to bf16 first, so both backends see the same numbers; every
// CUDA output is poisoned (all bits set: NaN) before the op runs, so an element the kernel forgets
// to write fails the test. The error measure is ‖out − ref‖₂ / ‖ref‖₂ over the whole output; each
// test states its budget next to the reason for it. Each measured error is recorded as a gtest
// property (visible in --gtest_output=json) and printed.
//
// Built only with LONGBOW_CUDA and run on the GPU machine from the bundle (tools/gpu_bundle), never
// by CTest.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/half.h"
#include "model/backend/backend.h"
#include "model/kv_cache/window_pages.h"

namespace longbow {
namespace {

// bf16 has an 8-bit mantissa: one rounding of the output costs up to 2^-9 relative per element,
// about 2.3e-3 in relative L2 over many elements. Budgets below are a small multiple of that.
constexpr double kOneRounding = 5e-3;
// GEMMs and attention round their inputs' products differently (fp32 accumulation orders, P in bf16).
constexpr double kGemmBudget = 1e-2;
constexpr double kAttentionBudget = 1e-2;  // measured ~2e-3 on the H100

const int kLengths[] = {1, 63, 97, 4097};

class BackendOpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cuda = create_backend("cuda");
    ASSERT_TRUE(cuda.ok()) << cuda.status().to_string();
    auto cpu = create_backend("cpu");
    ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
    cuda_ = std::move(cuda).value().release();
    cpu_ = std::move(cpu).value().release();
  }
  static void TearDownTestSuite() {
    delete cuda_;
    delete cpu_;
  }

  // A tensor on each backend holding the same values (the CPU in F32, CUDA in its compute dtype).
  struct Pair {
    Tensor ref;
    Tensor dev;
  };

  std::vector<float> random_values(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = bf16_to_f32(f32_to_bf16(dist(rng_)));
    return v;
  }

  Pair floats(std::initializer_list<int64_t> dims, const std::vector<float>& values) {
    Pair p;
    p.ref = must(cpu_->allocate(DType::kF32, dims));
    p.dev = must(cuda_->allocate(cuda_->compute_dtype(), dims));
    EXPECT_EQ(static_cast<size_t>(p.ref.numel()), values.size());
    check(cpu_->upload(values.data(), p.ref));
    check(cuda_->upload_converted(values.data(), DType::kF32, static_cast<int64_t>(values.size()), p.dev));
    return p;
  }

  // F32 on both sides (slopes, states, router logits and weights), the values as given.
  Pair floats_f32(std::initializer_list<int64_t> dims, const std::vector<float>& values) {
    Pair p;
    p.ref = must(cpu_->allocate(DType::kF32, dims));
    p.dev = must(cuda_->allocate(DType::kF32, dims));
    EXPECT_EQ(static_cast<size_t>(p.ref.numel()), values.size());
    check(cpu_->upload(values.data(), p.ref));
    check(cuda_->upload(values.data(), p.dev));
    return p;
  }

  Pair random_floats(std::initializer_list<int64_t> dims, float lo = -1.0f, float hi = 1.0f) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return floats(dims, random_values(static_cast<size_t>(n), lo, hi));
  }

  Pair ints(std::initializer_list<int64_t> dims, const std::vector<int32_t>& values) {
    Pair p;
    p.ref = must(cpu_->allocate(DType::kI32, dims));
    p.dev = must(cuda_->allocate(DType::kI32, dims));
    EXPECT_EQ(static_cast<size_t>(p.ref.numel()), values.size());
    check(cpu_->upload(values.data(), p.ref));
    check(cuda_->upload(values.data(), p.dev));
    return p;
  }

  // Output pair: the CUDA side poisoned with all-ones bytes (NaN in every float format).
  Pair outputs(std::initializer_list<int64_t> dims, DType dev_dtype) {
    Pair p;
    p.ref = must(cpu_->allocate(DType::kF32, dims));
    p.dev = must(cuda_->allocate(dev_dtype, dims));
    poison(p.dev);
    return p;
  }
  Pair outputs(std::initializer_list<int64_t> dims) { return outputs(dims, cuda_->compute_dtype()); }

  void poison(Tensor& t) {
    std::vector<uint8_t> bytes(t.num_bytes(), 0xff);
    check(cuda_->upload(bytes.data(), t));
  }

  std::vector<float> host(Backend& backend, const Tensor& t) {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    if (t.dtype == DType::kF32) {
      check(backend.download(t, out.data()));
    } else if (t.dtype == DType::kBF16) {
      std::vector<uint16_t> raw(out.size());
      check(backend.download(t, raw.data()));
      for (size_t i = 0; i < raw.size(); ++i) out[i] = bf16_to_f32(raw[i]);
    } else {
      ADD_FAILURE() << "host(): unexpected dtype " << dtype_name(t.dtype);
    }
    return out;
  }

  // Compares the two sides of `p`; NaN/Inf anywhere on the CUDA side fails outright.
  double expect_close(const Pair& p, double budget, const std::string& label) {
    std::vector<float> ref = host(*cpu_, p.ref);
    std::vector<float> got = host(*cuda_, p.dev);
    return expect_close_values(got, ref, budget, label);
  }

  double expect_close_values(const std::vector<float>& got, const std::vector<float>& ref, double budget,
                             const std::string& label) {
    EXPECT_EQ(got.size(), ref.size()) << label;
    double diff = 0.0, norm = 0.0;
    size_t non_finite = 0, first_bad = got.size();
    for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
      if (!std::isfinite(got[i])) {
        if (non_finite++ == 0) first_bad = i;
        continue;
      }
      const double d = static_cast<double>(got[i]) - ref[i];
      diff += d * d;
      norm += static_cast<double>(ref[i]) * ref[i];
    }
    const double err = norm > 0.0 ? std::sqrt(diff / norm) : std::sqrt(diff);
    EXPECT_EQ(non_finite, 0u) << label << ": " << non_finite << " non-finite outputs, first at flat index "
                              << first_bad;
    EXPECT_LE(err, budget) << label << ": relative L2 error " << err << " over budget " << budget;
    std::printf("[ error ] %-60s rel_l2 %.3e (budget %.1e)\n", label.c_str(), err, budget);
    RecordProperty("rel_l2 " + label, std::to_string(err));
    return err;
  }

  template <typename T>
  static T must(StatusOr<T> v) {
    EXPECT_TRUE(v.ok()) << v.status().to_string();
    return v.ok() ? std::move(v).value() : T{};
  }
  static void check(const Status& s) { EXPECT_TRUE(s.ok()) << s.to_string(); }

  // Multi-head latent attention (defined with its tests, "multi-head latent attention" below): one
  // latent_attention call on both backends over a shuffled latent page pool; topk 0: dense causal,
  // else random DSA selections of topk entries per row. Returns the error.
  struct LatentSeq {
    int q_len;
    int ctx;  // 0 (with q_len 1): a padding row
  };
  double run_latent_attention(const std::vector<LatentSeq>& seqs, int heads, int latent_dim, int rope_dim,
                              int topk = 0);

  static Backend* cuda_;
  static Backend* cpu_;
  std::mt19937 rng_{std::random_device{}()};
};

Backend* BackendOpsTest::cuda_ = nullptr;
Backend* BackendOpsTest::cpu_ = nullptr;

TEST_F(BackendOpsTest, Embed) {
  for (int tokens : kLengths) {
    for (int hidden : {4096, 100, 33}) {
      const int vocab = 1000;
      Pair table = random_floats({vocab, hidden});
      std::vector<int32_t> ids(static_cast<size_t>(tokens));
      std::uniform_int_distribution<int32_t> pick(0, vocab - 1);
      for (auto& id : ids) id = pick(rng_);
      Pair id_t = ints({tokens}, ids);
      Pair out = outputs({tokens, hidden});
      check(cpu_->embed(table.ref, id_t.ref, out.ref));
      check(cuda_->embed(table.dev, id_t.dev, out.dev));
      // A copy: exact.
      expect_close(out, 0.0, "embed T=" + std::to_string(tokens) + " H=" + std::to_string(hidden));
    }
  }
}

// The same (seed, index) → value function on both backends: the CUDA bf16 output must be the CPU's
// fp32 value rounded once (exact equality, budget 0), the fp32 output bit-identical; fresh seeds,
// odd sizes, poisoned outputs.
TEST_F(BackendOpsTest, FillRandom) {
  std::uniform_int_distribution<uint64_t> seeds;
  for (int64_t n : {1, 63, 4097, 1000003}) {
    const uint64_t seed = seeds(rng_);
    const float mean = n == 63 ? 1.0f : 0.0f, std = n == 4097 ? 0.015625f : 0.37f;
    Pair bf16 = outputs({n});
    Pair f32 = outputs({n}, DType::kF32);
    check(cpu_->fill_random(bf16.ref, seed, mean, std));
    check(cuda_->fill_random(bf16.dev, seed, mean, std));
    check(cuda_->fill_random(f32.dev, seed, mean, std));
    std::vector<float> ref = host(*cpu_, bf16.ref);
    std::vector<float> rounded(ref.size());
    for (size_t i = 0; i < ref.size(); ++i) rounded[i] = bf16_to_f32(f32_to_bf16(ref[i]));
    const std::string label = "fill_random n=" + std::to_string(n) + " seed=" + std::to_string(seed);
    expect_close_values(host(*cuda_, bf16.dev), rounded, 0.0, label + " bf16");
    std::vector<float> got = host(*cuda_, f32.dev);
    ASSERT_EQ(got.size(), ref.size());
    EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0) << label << " f32";
  }
}

TEST_F(BackendOpsTest, GatherRows) {
  for (int rows : kLengths) {
    const int src_rows = 5000;
    for (int cols : {4096, 97}) {
      Pair x = random_floats({src_rows, cols});
      std::vector<int32_t> idx(static_cast<size_t>(rows));
      std::uniform_int_distribution<int32_t> pick(0, src_rows - 1);
      for (auto& i : idx) i = pick(rng_);
      Pair idx_t = ints({rows}, idx);
      Pair out = outputs({rows, cols});
      check(cpu_->gather_rows(x.ref, idx_t.ref, out.ref));
      check(cuda_->gather_rows(x.dev, idx_t.dev, out.dev));
      expect_close(out, 0.0, "gather_rows S=" + std::to_string(rows) + " C=" + std::to_string(cols));
    }
  }
}

TEST_F(BackendOpsTest, RmsNorm) {
  for (int rows : kLengths) {
    for (int cols : {4096, 100}) {
      Pair x = random_floats({rows, cols}, -3.0f, 3.0f);
      Pair w = random_floats({cols}, 0.5f, 1.5f);
      Pair out = outputs({rows, cols});
      check(cpu_->rms_norm(x.ref, w.ref, 1e-5f, out.ref));
      check(cuda_->rms_norm(x.dev, w.dev, 1e-5f, out.dev));
      // One bf16 rounding of the output.
      expect_close(out, kOneRounding, "rms_norm R=" + std::to_string(rows) + " C=" + std::to_string(cols));
    }
  }
}

TEST_F(BackendOpsTest, AddRmsNorm) {
  for (int rows : kLengths) {
    for (int cols : {4096, 100}) {
      Pair residual = random_floats({rows, cols}, -3.0f, 3.0f);
      Pair delta = random_floats({rows, cols}, -1.0f, 1.0f);
      Pair w = random_floats({cols}, 0.5f, 1.5f);
      Pair out = outputs({rows, cols});
      check(cpu_->add_rms_norm(residual.ref, delta.ref, w.ref, 1e-6f, out.ref));
      check(cuda_->add_rms_norm(residual.dev, delta.dev, w.dev, 1e-6f, out.dev));
      const std::string size = " R=" + std::to_string(rows) + " C=" + std::to_string(cols);
      // The residual is rounded to bf16 once; the output is normalised from it and rounded again.
      expect_close(residual, kOneRounding, "add_rms_norm residual" + size);
      expect_close(out, 2 * kOneRounding, "add_rms_norm out" + size);
    }
  }
}

TEST_F(BackendOpsTest, Matmul) {
  for (int m : kLengths) {
    for (bool f32_out : {false, true}) {
      for (bool with_bias : {false, true}) {
        const int k = 320, n = 333;
        Pair x = random_floats({m, k});
        Pair w = random_floats({n, k}, -0.1f, 0.1f);
        Pair bias = with_bias ? random_floats({n}) : Pair{};
        Pair out = outputs({m, n}, f32_out ? DType::kF32 : cuda_->compute_dtype());
        check(cpu_->matmul(x.ref, w.ref, bias.ref, out.ref));
        check(cuda_->matmul(x.dev, w.dev, bias.dev, out.dev));
        // fp32 accumulation in both; bf16 output adds one rounding.
        expect_close(out, f32_out ? 1e-5 : kGemmBudget,
                     "matmul M=" + std::to_string(m) + " K=320 N=333" + (f32_out ? " f32" : " bf16") +
                         (with_bias ? " bias" : ""));
      }
    }
  }
}

// Products of m <= kSkinnyGemmMaxRows rows run the skinny GEMM (kernels/gemm) when k is a multiple
// of 8 and the operands are 16-byte aligned, cuBLAS otherwise: row counts on both sides of the
// switch, k across the kernel's unrolled and tail loops, odd n (a column pair's second column past
// n), bias, both output types, and the two cuBLAS fallbacks.
TEST_F(BackendOpsTest, SkinnyMatmul) {
  struct Shape {
    int k, n;
  };
  for (Shape shape : {Shape{8, 5}, Shape{1000, 77}, Shape{4104, 129}, Shape{330, 33}}) {
    for (int m = 1; m <= 8; ++m) {
      for (bool f32_out : {false, true}) {
        const bool with_bias = (m + shape.k) % 2 == 0;
        Pair x = random_floats({m, shape.k});
        Pair w = random_floats({shape.n, shape.k}, -0.1f, 0.1f);
        Pair bias = with_bias ? random_floats({shape.n}) : Pair{};
        Pair out = outputs({m, shape.n}, f32_out ? DType::kF32 : cuda_->compute_dtype());
        check(cpu_->matmul(x.ref, w.ref, bias.ref, out.ref));
        check(cuda_->matmul(x.dev, w.dev, bias.dev, out.dev));
        expect_close(out, f32_out ? 1e-5 : kGemmBudget,
                     fmt::format("skinny matmul M={} K={} N={}{}{}", m, shape.k, shape.n, f32_out ? " f32" : " bf16",
                                 with_bias ? " bias" : ""));
      }
    }
  }
  // x rows starting 24 bytes into an allocation: not 16-byte aligned, so cuBLAS takes it.
  Pair x_all = random_floats({4, 12});
  Pair w = random_floats({9, 12}, -0.1f, 0.1f);
  Pair out = outputs({3, 9}, DType::kF32);
  const Tensor x_ref = x_all.ref.rows(1, 3), x_dev = x_all.dev.rows(1, 3);
  check(cpu_->matmul(x_ref, w.ref, Tensor{}, out.ref));
  check(cuda_->matmul(x_dev, w.dev, Tensor{}, out.dev));
  expect_close(out, 1e-5, "skinny matmul unaligned x M=3 K=12 N=9");
}

TEST_F(BackendOpsTest, Rope) {
  for (int tokens : kLengths) {
    for (int rotary_dim : {128, 64}) {
      for (float scaling : {1.0f, 1.2f}) {
        const int hq = 8, hkv = 2, d = 128;
        Pair q = random_floats({tokens, hq, d});
        Pair k = random_floats({tokens, hkv, d});
        std::vector<int32_t> pos(static_cast<size_t>(tokens));
        std::uniform_int_distribution<int32_t> pick(0, 131071);
        for (auto& p : pos) p = pick(rng_);
        if (tokens > 1) pos[0] = 0;
        Pair pos_t = ints({tokens}, pos);
        // Llama-3-style base frequencies (theta 500000): angles up to ~1.3e5 rad at the longest positions.
        std::vector<float> inv_freq(static_cast<size_t>(rotary_dim / 2));
        for (int i = 0; i < rotary_dim / 2; ++i) {
          inv_freq[static_cast<size_t>(i)] =
              static_cast<float>(1.0 / std::pow(500000.0, 2.0 * i / static_cast<double>(rotary_dim)));
        }
        Tensor inv_ref = must(cpu_->allocate(DType::kF32, {rotary_dim / 2}));
        Tensor inv_dev = must(cuda_->allocate(DType::kF32, {rotary_dim / 2}));
        check(cpu_->upload(inv_freq.data(), inv_ref));
        check(cuda_->upload(inv_freq.data(), inv_dev));
        check(cpu_->rope(q.ref, k.ref, pos_t.ref, inv_ref, scaling));
        check(cuda_->rope(q.dev, k.dev, pos_t.dev, inv_dev, scaling));
        const std::string label = " T=" + std::to_string(tokens) + " rot=" + std::to_string(rotary_dim) +
                                  " scale=" + std::to_string(scaling).substr(0, 3);
        // One rounding of q and k (angles in fp32 on both sides).
        expect_close(q, kOneRounding, "rope q" + label);
        expect_close(k, kOneRounding, "rope k" + label);
      }
    }
  }
}

TEST_F(BackendOpsTest, SiluMul) {
  for (int tokens : kLengths) {
    for (int inter : {1024, 77}) {
      Pair gate = random_floats({tokens, inter}, -6.0f, 6.0f);
      Pair up = random_floats({tokens, inter}, -2.0f, 2.0f);
      Pair out = outputs({tokens, inter});
      check(cpu_->silu_mul(gate.ref, up.ref, out.ref));
      check(cuda_->silu_mul(gate.dev, up.dev, out.dev));
      expect_close(out, kOneRounding, "silu_mul T=" + std::to_string(tokens) + " I=" + std::to_string(inter));
    }
  }
}

TEST_F(BackendOpsTest, AppendKv) {
  for (int tokens : kLengths) {
    const int hkv = 8, d = 128, pages = (4097 + 63) / 64 + 8;
    Pair k = random_floats({tokens, hkv, d});
    Pair v = random_floats({tokens, hkv, d});
    // Distinct random slots anywhere in the pool.
    std::vector<int32_t> all(static_cast<size_t>(pages) * 64);
    std::iota(all.begin(), all.end(), 0);
    std::shuffle(all.begin(), all.end(), rng_);
    std::vector<int32_t> slots(all.begin(), all.begin() + tokens);
    for (size_t i = 1; i < slots.size(); i += 3) slots[i] = -1;  // graph padding rows: not stored
    Pair slot_t = ints({tokens}, slots);
    // Both caches start zeroed on both sides (the CPU side from its allocation, CUDA uploaded).
    std::vector<float> zeros(static_cast<size_t>(pages) * 64 * hkv * d, 0.0f);
    Pair kc = floats({pages, 64, hkv, d}, zeros);
    Pair vc = floats({pages, 64, hkv, d}, zeros);
    check(cpu_->append_kv(k.ref, v.ref, slot_t.ref, kc.ref, vc.ref));
    check(cuda_->append_kv(k.dev, v.dev, slot_t.dev, kc.dev, vc.dev));
    // Copies: exact, untouched slots included.
    expect_close(kc, 0.0, "append_kv k_cache T=" + std::to_string(tokens));
    expect_close(vc, 0.0, "append_kv v_cache T=" + std::to_string(tokens));
  }
}

struct SeqSpec {
  int q_len;
  int ctx;  // 0 (with q_len 1): a graph batch's padding row, block-table row all -1
};

// Per-call attention settings beyond the shapes.
struct AttnOptions {
  int window = 0;
  float softcap = 0.0f;
  float scale = 0.0f;  // 0: 1 / sqrt(D)
  // Entries behind the window. false: the pages the engine releases (window_pages.h: whole pairs
  // before the first query's window) read kNullPage (page 0). true: every page wholly before that
  // window (a superset, page by page) names one page whose K and V hold NaN (the readable null page
  // of the hybrid KV cache). A kernel that uses such an entry, even to load and mask, fails.
  bool null_page = false;
};

class PagedAttentionTest : public BackendOpsTest {
 protected:
  double run_case(const std::vector<SeqSpec>& seqs, int hq, int hkv, int d, int window, const std::string& label) {
    AttnOptions options;
    options.window = window;
    return run_case(seqs, hq, hkv, d, options, label);
  }

  // Builds a shuffled page pool whose unused slots hold NaN on both sides, runs both backends and
  // compares. Returns the error.
  double run_case(const std::vector<SeqSpec>& seqs, int hq, int hkv, int d, const AttnOptions& options,
                  const std::string& label) {
    const int window = options.window;
    const int num_seqs = static_cast<int>(seqs.size());
    int max_q = 0, max_ctx = 0, total_q = 0, total_pages = 0;
    for (const auto& s : seqs) {
      max_q = std::max(max_q, s.q_len);
      max_ctx = std::max(max_ctx, s.ctx);
      total_q += s.q_len;
      total_pages += (s.ctx + 63) / 64;
    }
    const int pool_pages = total_pages + 3;  // the 3 spare pages stay NaN: the last one is the null page
    const int max_pages = (max_ctx + 63) / 64 + 1;
    std::vector<int32_t> page_ids(static_cast<size_t>(pool_pages));
    std::iota(page_ids.begin(), page_ids.end(), 0);
    std::shuffle(page_ids.begin(), page_ids.end(), rng_);
    std::vector<int32_t> table(static_cast<size_t>(num_seqs) * max_pages, -1);  // unused entries: invalid
    const size_t row = static_cast<size_t>(hkv) * d;
    std::vector<float> k_pool(static_cast<size_t>(pool_pages) * 64 * row, std::nanf(""));
    std::vector<float> v_pool = k_pool;
    std::uniform_real_distribution<float> kv_dist(-1.0f, 1.0f);
    size_t next_page = 0;
    std::vector<int32_t> query_start{0}, ctx_lens;
    for (int s = 0; s < num_seqs; ++s) {
      const int pages = (seqs[s].ctx + 63) / 64;
      for (int b = 0; b < pages; ++b) table[static_cast<size_t>(s) * max_pages + b] = page_ids[next_page++];
      for (int i = 0; i < seqs[s].ctx; ++i) {
        const size_t slot = static_cast<size_t>(table[static_cast<size_t>(s) * max_pages + i / 64]) * 64 + i % 64;
        for (size_t e = 0; e < row; ++e) {
          k_pool[slot * row + e] = bf16_to_f32(f32_to_bf16(kv_dist(rng_)));
          v_pool[slot * row + e] = bf16_to_f32(f32_to_bf16(kv_dist(rng_)));
        }
      }
      query_start.push_back(query_start.back() + seqs[s].q_len);
      ctx_lens.push_back(seqs[s].ctx);
    }
    // With a window, entries behind it point at a page: the engine's null page 0 (kNullPage), or with
    // AttnOptions::null_page a page filled with NaN, so that a kernel that lets such a page reach the
    // output fails. The CPU reference accepts any valid id anywhere.
    const int32_t null_page = page_ids[static_cast<size_t>(pool_pages - 1)];
    for (int s = 0; s < num_seqs && window > 0; ++s) {
      const int64_t first_query = int64_t{seqs[s].ctx} - seqs[s].q_len;
      const int64_t released = options.null_page ? std::max<int64_t>(0, first_query - window + 1) / 64
                                                 : pages_behind_window(first_query, window, 64);
      for (int64_t b = 0; b < released; ++b) {
        table[static_cast<size_t>(s) * max_pages + b] = options.null_page ? null_page : kNullPage;
      }
    }
    // q in [-2, 2] so that softmax rows are far from uniform.
    Pair q = random_floats({total_q, hq, d}, -2.0f, 2.0f);
    Pair kc = floats({pool_pages, 64, hkv, d}, k_pool);
    Pair vc = floats({pool_pages, 64, hkv, d}, v_pool);
    Pair qs = ints({num_seqs + 1}, query_start);
    Pair cl = ints({num_seqs}, ctx_lens);
    Pair bt = ints({num_seqs, max_pages}, table);
    Pair out = outputs({total_q, hq, d});

    auto args_for = [&](bool dev) {
      PagedAttentionArgs a;
      a.q = dev ? q.dev : q.ref;
      a.k_cache = dev ? kc.dev : kc.ref;
      a.v_cache = dev ? vc.dev : vc.ref;
      a.query_start = dev ? qs.dev : qs.ref;
      a.context_lens = dev ? cl.dev : cl.ref;
      a.block_tables = dev ? bt.dev : bt.ref;
      a.out = dev ? out.dev : out.ref;
      a.max_query_len = max_q;
      a.max_context_len = max_ctx;
      a.scale = options.scale > 0.0f ? options.scale : 1.0f / std::sqrt(static_cast<float>(d));
      a.sliding_window = window;
      a.softcap = options.softcap;
      return a;
    };
    check(cpu_->paged_attention(args_for(false)));
    check(cuda_->paged_attention(args_for(true)));
    return expect_close(out, kAttentionBudget, label);
  }

  static std::string describe(const std::vector<SeqSpec>& seqs, int hq, int hkv, int d, int window) {
    AttnOptions options;
    options.window = window;
    return describe(seqs, hq, hkv, d, options);
  }
  static std::string describe(const std::vector<SeqSpec>& seqs, int hq, int hkv, int d, const AttnOptions& o) {
    std::string s = "attn Hq=" + std::to_string(hq) + " Hkv=" + std::to_string(hkv) + " D=" + std::to_string(d);
    if (o.window > 0) s += " W=" + std::to_string(o.window) + (o.null_page ? " null-page" : "");
    if (o.softcap > 0.0f) s += " cap=" + std::to_string(o.softcap).substr(0, 4);
    if (o.scale > 0.0f) s += " scale=" + std::to_string(o.scale).substr(0, 5);
    s += " seqs(q/ctx)=";
    for (size_t i = 0; i < seqs.size() && i < 4; ++i) {
      s += (i ? "," : "") + std::to_string(seqs[i].q_len) + "/" + std::to_string(seqs[i].ctx);
    }
    if (seqs.size() > 4) s += ",...(" + std::to_string(seqs.size()) + ")";
    return s;
  }
};

// Whole-prompt prefill (q_len == ctx) at the odd lengths, both head dims.
TEST_F(PagedAttentionTest, PrefillSingleSequence) {
  for (int d : {128, 64}) {
    for (int len : kLengths) {
      const int hq = len > 1000 ? 4 : 8;  // keeps the CPU reference quick at 4097
      const std::vector<SeqSpec> seqs{{len, len}};
      run_case(seqs, hq, hq / 4, d, 0, describe(seqs, hq, hq / 4, d, 0));
    }
  }
}

// Chunked prefill over a cached prefix, several sequences of different shapes, GQA groups 1..8.
TEST_F(PagedAttentionTest, PrefillMixedBatch) {
  for (int d : {128, 64}) {
    for (int group : {1, 4, 8}) {
      const std::vector<SeqSpec> seqs{{97, 300}, {63, 63}, {1, 97}, {130, 1000}, {5, 4097}};
      run_case(seqs, 8, 8 / group, d, 0, describe(seqs, 8, 8 / group, d, 0));
    }
  }
}

// Contexts on and beside the 64- and 128-token boundaries where the sm_90 kernels switch between
// whole-tile (TMA) loads and zero-filled partial tiles, with prefixes that put the causal diagonal
// across two key tiles.
TEST_F(PagedAttentionTest, PrefillTileBoundaries) {
  for (int d : {128, 64}) {
    const std::vector<SeqSpec> seqs{{128, 128}, {256, 256}, {64, 192}, {200, 320}, {127, 129}, {129, 383}, {65, 640}};
    run_case(seqs, 8, 2, d, 0, describe(seqs, 8, 2, d, 0));
    run_case(seqs, 8, 2, d, 100, describe(seqs, 8, 2, d, 100));
  }
}

// One token per sequence: the split-KV decode path (long contexts force several splits).
TEST_F(PagedAttentionTest, Decode) {
  for (int d : {128, 64}) {
    for (int batch : {1, 3, 16}) {
      std::vector<SeqSpec> seqs;
      const int ctxs[] = {1, 63, 97, 4097, 20000, 64, 65};
      for (int b = 0; b < batch; ++b) seqs.push_back({1, ctxs[b % 7]});
      if (batch == 1) seqs[0].ctx = 20000;
      run_case(seqs, 32, 8, d, 0, describe(seqs, 32, 8, d, 0));
    }
  }
}

TEST_F(PagedAttentionTest, DecodeLongSingleSequence) {
  const std::vector<SeqSpec> seqs{{1, 65537}};
  run_case(seqs, 32, 8, 128, 0, describe(seqs, 32, 8, 128, 0));
}

TEST_F(PagedAttentionTest, SlidingWindow) {
  for (int d : {128, 64}) {
    for (int window : {1, 50, 200}) {
      const std::vector<SeqSpec> prefill{{300, 300}, {97, 500}, {1, 400}};
      run_case(prefill, 8, 2, d, window, describe(prefill, 8, 2, d, window));
      const std::vector<SeqSpec> decode{{1, 1}, {1, 97}, {1, 4097}};
      run_case(decode, 8, 2, d, window, describe(decode, 8, 2, d, window));
    }
  }
}

// Every head size: 64, 128 and 256 run their own kernel instances, the others the next one up with
// zero-padded dims (kernels/common/paged_kv.h); 72 and 248 are odd multiples of 8 on either side.
// Prefill: chunks over cached prefixes, whole prompts on and beside the tile boundaries, a padding
// row of context 0; decode: short and split-KV contexts with a padding row. GQA groups 4 and 3.
TEST_F(PagedAttentionTest, EveryHeadDim) {
  for (int d : {16, 32, 48, 64, 72, 80, 96, 128, 192, 248, 256}) {
    const std::vector<SeqSpec> prefill{{97, 300}, {63, 63}, {1, 97}, {130, 400}, {128, 256}, {1, 0}, {129, 129}};
    run_case(prefill, 8, 2, d, 0, describe(prefill, 8, 2, d, 0));
    const std::vector<SeqSpec> decode{{1, 1}, {1, 63}, {1, 4097}, {1, 0}, {1, 700}, {1, 129}};
    run_case(decode, 12, 4, d, 0, describe(decode, 12, 4, d, 0));
  }
}

// Sliding windows at each kernel size and a padded one, with the pages before the window released
// as -1 or as a NaN-filled null page.
TEST_F(PagedAttentionTest, SlidingWindowEveryKernel) {
  for (int d : {64, 128, 256, 80}) {
    for (bool null_page : {false, true}) {
      for (int window : {1, 100, 300}) {
        AttnOptions o;
        o.window = window;
        o.null_page = null_page;
        const std::vector<SeqSpec> prefill{{300, 300}, {97, 700}, {1, 400}, {200, 1000}};
        run_case(prefill, 8, 2, d, o, describe(prefill, 8, 2, d, o));
        const std::vector<SeqSpec> decode{{1, 1}, {1, 97}, {1, 4097}, {1, 0}, {1, 1000}};
        run_case(decode, 8, 2, d, o, describe(decode, 8, 2, d, o));
      }
    }
  }
}

// Gemma 2's logit soft-cap, with a softmax scale other than 1/sqrt(D) (Gemma's query_pre_attn_scalar)
// and with a window; caps small enough that tanh bends most scores.
TEST_F(PagedAttentionTest, SoftcapAndScale) {
  for (int d : {128, 256, 64, 48}) {
    for (float cap : {1.0f, 5.0f}) {
      for (int window : {0, 150}) {
        AttnOptions o;
        o.softcap = cap;
        o.scale = 0.3f;
        o.window = window;
        const std::vector<SeqSpec> prefill{{300, 300}, {97, 500}, {1, 64}, {129, 257}};
        run_case(prefill, 8, 4, d, o, describe(prefill, 8, 4, d, o));
        const std::vector<SeqSpec> decode{{1, 1}, {1, 97}, {1, 4097}, {1, 0}, {1, 20000}};
        run_case(decode, 8, 4, d, o, describe(decode, 8, 4, d, o));
      }
    }
  }
}

// Head sizes with no kernel are refused with the supported set, never launched.
TEST_F(PagedAttentionTest, RejectsUnsupportedHeadDim) {
  for (int d : {4, 36, 264}) {
    Tensor q = must(cuda_->allocate(DType::kBF16, {1, 2, d}));
    Tensor kc = must(cuda_->allocate(DType::kBF16, {1, 64, 2, d}));
    Tensor vc = must(cuda_->allocate(DType::kBF16, {1, 64, 2, d}));
    Tensor out = must(cuda_->allocate(DType::kBF16, {1, 2, d}));
    Pair qs = ints({2}, {0, 1});
    Pair cl = ints({1}, {1});
    Pair bt = ints({1, 1}, {0});
    PagedAttentionArgs a;
    a.q = q;
    a.k_cache = kc;
    a.v_cache = vc;
    a.query_start = qs.dev;
    a.context_lens = cl.dev;
    a.block_tables = bt.dev;
    a.out = out;
    a.max_query_len = 1;
    a.max_context_len = 1;
    a.scale = 0.5f;
    Status s = cuda_->paged_attention(a);
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << d << ": " << s.to_string();
    EXPECT_NE(s.message().find("multiples of 8 from 8 to 256"), std::string::npos) << s.message();
  }
}

// GELU-tanh (Gemma), exact GELU (ModernBERT) and sigmoid (MiniMax) gates next to SiLU, on both the 16-byte path and
// the scalar one (an inner size that is not a multiple of 8).
TEST_F(BackendOpsTest, GatedActivations) {
  const std::pair<Activation, const char*> acts[] = {
      {Activation::kSilu, "silu"}, {Activation::kGeluTanh, "gelu_tanh"}, {Activation::kGelu, "gelu"},
      {Activation::kSigmoid, "sigmoid"}};
  for (const auto& [act, name] : acts) {
    for (int tokens : kLengths) {
      for (int inter : {1024, 77}) {
        Pair gate = random_floats({tokens, inter}, -6.0f, 6.0f);
        Pair up = random_floats({tokens, inter}, -2.0f, 2.0f);
        Pair out = outputs({tokens, inter});
        check(cpu_->gated_activation(act, gate.ref, up.ref, out.ref));
        check(cuda_->gated_activation(act, gate.dev, up.dev, out.dev));
        // fp32 arithmetic, one bf16 rounding of the output.
        expect_close(out, kOneRounding,
                     std::string("gated_activation ") + name + " T=" + std::to_string(tokens) +
                         " I=" + std::to_string(inter));
      }
    }
  }
}

TEST_F(BackendOpsTest, LayerNorm) {
  for (int rows : kLengths) {
    for (int cols : {768, 100}) {
      for (bool with_bias : {false, true}) {
        // An offset mean, so that a one-pass variance formula would lose digits.
        Pair x = random_floats({rows, cols}, 2.0f, 6.0f);
        Pair w = random_floats({cols}, 0.5f, 1.5f);
        Pair b = with_bias ? random_floats({cols}, -0.5f, 0.5f) : Pair{};
        Pair out = outputs({rows, cols});
        check(cpu_->layer_norm(x.ref, w.ref, b.ref, 1e-5f, out.ref));
        check(cuda_->layer_norm(x.dev, w.dev, b.dev, 1e-5f, out.dev));
        expect_close(out, kOneRounding,
                     "layer_norm R=" + std::to_string(rows) + " C=" + std::to_string(cols) + (with_bias ? " bias" : ""));
      }
    }
  }
}

TEST_F(BackendOpsTest, AddLayerNorm) {
  for (int rows : kLengths) {
    for (int cols : {768, 100}) {
      for (bool with_bias : {false, true}) {
        Pair residual = random_floats({rows, cols}, -3.0f, 3.0f);
        Pair delta = random_floats({rows, cols}, -1.0f, 1.0f);
        Pair w = random_floats({cols}, 0.5f, 1.5f);
        Pair b = with_bias ? random_floats({cols}, -0.5f, 0.5f) : Pair{};
        Pair out = outputs({rows, cols});
        check(cpu_->add_layer_norm(residual.ref, delta.ref, w.ref, b.ref, 1e-5f, out.ref));
        check(cuda_->add_layer_norm(residual.dev, delta.dev, w.dev, b.dev, 1e-5f, out.dev));
        const std::string size =
            " R=" + std::to_string(rows) + " C=" + std::to_string(cols) + (with_bias ? " bias" : "");
        // As add_rms_norm: the residual rounded once, the output normalised from it and rounded again.
        expect_close(residual, kOneRounding, "add_layer_norm residual" + size);
        expect_close(out, 2 * kOneRounding, "add_layer_norm out" + size);
      }
    }
  }
}

// In-place scale and soft-cap on bf16 (one rounding) and f32 (fp32 arithmetic: tanhf and the
// product against the CPU's double, a few ulps).
TEST_F(BackendOpsTest, ScaleAndSoftcap) {
  for (int64_t n : {1, 63, 4097, 100003}) {
    for (bool f32 : {false, true}) {
      for (bool cap : {false, true}) {
        const std::vector<float> values = random_values(static_cast<size_t>(n), -60.0f, 60.0f);
        Pair x;
        x.ref = must(cpu_->allocate(DType::kF32, {n}));
        x.dev = must(cuda_->allocate(f32 ? DType::kF32 : DType::kBF16, {n}));
        check(cpu_->upload(values.data(), x.ref));
        check(cuda_->upload_converted(values.data(), DType::kF32, n, x.dev));
        if (cap) {
          check(cpu_->softcap(x.ref, 30.0f));
          check(cuda_->softcap(x.dev, 30.0f));
        } else {
          check(cpu_->scale(x.ref, 7.0f / 3.0f));
          check(cuda_->scale(x.dev, 7.0f / 3.0f));
        }
        expect_close(x, f32 ? 1e-6 : kOneRounding,
                     std::string(cap ? "softcap 30" : "scale 7/3") + " n=" + std::to_string(n) +
                         (f32 ? " f32" : " bf16"));
      }
    }
  }
  Tensor ints_t = must(cuda_->allocate(DType::kI32, {4}));
  EXPECT_EQ(cuda_->scale(ints_t, 2.0f).code(), StatusCode::kInvalidArgument);
  Tensor x = must(cuda_->allocate(DType::kBF16, {4}));
  EXPECT_EQ(cuda_->softcap(x, 0.0f).code(), StatusCode::kInvalidArgument);
}

TEST_F(BackendOpsTest, RejectsBadShapes) {
  Tensor x = must(cuda_->allocate(DType::kBF16, {4, 8}));
  Tensor w = must(cuda_->allocate(DType::kBF16, {8}));
  Tensor out = must(cuda_->allocate(DType::kBF16, {4, 9}));
  Status s = cuda_->rms_norm(x, w, 1e-6f, out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("out"), std::string::npos) << s.message();
  Tensor f32 = must(cuda_->allocate(DType::kF32, {4, 8}));
  s = cuda_->silu_mul(f32, x, x);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
}

TEST_F(BackendOpsTest, CheckSupportedNamesHeadDim) {
  ModelConfig config;
  config.head_dim = 100;
  config.num_attention_heads = 8;
  config.num_key_value_heads = 8;
  config.rope.rotary_dim = 100;
  Status s = cuda_->check_supported(config);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("head_dim 100"), std::string::npos) << s.message();
  for (int d : {16, 96, 128, 256}) {
    config.head_dim = d;
    config.rope.rotary_dim = d;
    EXPECT_TRUE(cuda_->check_supported(config).ok()) << d;
  }
}


// ---- lightning attention (MiniMax): CudaBackend vs CpuBackend ----
//
// Budgets. Both backends read the same bf16 qkv values; the CUDA kernels apply SiLU, the decays
// (expf of slope·n) and every sum in fp32 where the CPU uses double, which moves a value by a few
// fp32 ulps (~1e-7 relative); the state stays fp32 on both sides, so states agree to ~1e-6 relative
// L2 even after several calls and hundreds of tokens: kLightningStateBudget. The outputs add one bf16
// rounding on the CUDA side (≤ 2^-9 per element, ~1e-3..2.3e-3 relative L2); with inputs in [-2, 2]
// the SiLU'd q, k, v are mostly positive and the history states are O(1), so no sum cancels enough to
// lift the fp32 error near that: one rounding's budget, kOneRounding. A kernel that mixes up a decay
// exponent (λ^p for λ^{p+1}), a block boundary or a fresh slot misses these by orders of magnitude
// at the fast heads (λ = 0.41).
constexpr double kLightningStateBudget = 1e-5;

// One sequence of a lightning call: q_len rows, context ctx after them (ctx == q_len: its first step,
// the slot is fresh), its state slot (−1 with q_len 1 and ctx 0: a graph batch's padding row).
struct LightningSeq {
  int q_len;
  int ctx;
  int slot;
};

class LightningTest : public BackendOpsTest {
 protected:
  // Per-head slopes, geometric from 0.9 (λ = 0.41, MiniMax's fastest head) to 0.004 (λ = 0.996).
  static std::vector<float> slopes(int heads) {
    std::vector<float> out(static_cast<size_t>(heads));
    for (int h = 0; h < heads; ++h) {
      const double f = heads > 1 ? static_cast<double>(h) / (heads - 1) : 0.0;
      out[static_cast<size_t>(h)] = static_cast<float>(0.9 * std::pow(0.004 / 0.9, f));
    }
    return out;
  }

  // A pool of `slots` states: the `fresh` slots hold NaN on both sides (a fresh sequence must never
  // read its slot), every other slot a random history in [-1, 1] (slots no sequence names must come
  // back unchanged).
  Pair state_pool(int slots, int heads, int d, const std::vector<int>& fresh) {
    const size_t per_slot = static_cast<size_t>(heads) * d * d;
    std::vector<float> values(per_slot * static_cast<size_t>(slots));
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& v : values) v = dist(rng_);
    for (int slot : fresh) {
      std::fill(values.begin() + static_cast<int64_t>(per_slot) * slot,
                values.begin() + static_cast<int64_t>(per_slot) * (slot + 1), std::nanf(""));
    }
    return floats_f32({slots, heads, d, d}, values);
  }

  struct Call {
    Pair qkv, query_start, context_lens, slots, out;
    int max_query_len = 0;
  };

  // The inputs of one call: fresh random qkv in [-2, 2] (unscaled: the decays must hold at O(1)).
  Call make_call(const std::vector<LightningSeq>& seqs, int heads, int d) {
    Call c;
    std::vector<int32_t> starts{0}, ctx, slots;
    for (const LightningSeq& s : seqs) {
      starts.push_back(starts.back() + s.q_len);
      ctx.push_back(s.ctx);
      slots.push_back(s.slot);
      c.max_query_len = std::max(c.max_query_len, s.q_len);
    }
    const int tokens = starts.back(), n = static_cast<int>(seqs.size());
    c.qkv = random_floats({tokens, heads * 3 * d}, -2.0f, 2.0f);
    c.query_start = ints({n + 1}, starts);
    c.context_lens = ints({n}, ctx);
    c.slots = ints({n}, slots);
    c.out = outputs({tokens, heads * d});
    return c;
  }

  static LightningAttentionArgs args(const Call& c, const Pair& slopes_t, const Pair& state, int heads, int d,
                                     bool dev) {
    LightningAttentionArgs a;
    a.qkv = dev ? c.qkv.dev : c.qkv.ref;
    a.slopes = dev ? slopes_t.dev : slopes_t.ref;
    a.state = dev ? state.dev : state.ref;
    a.query_start = dev ? c.query_start.dev : c.query_start.ref;
    a.context_lens = dev ? c.context_lens.dev : c.context_lens.ref;
    a.slots = dev ? c.slots.dev : c.slots.ref;
    a.out = dev ? c.out.dev : c.out.ref;
    a.num_heads = heads;
    a.head_dim = d;
    a.block_size = 256;  // the CPU's blocks; the CUDA kernel uses its own 64-token blocks
    a.max_query_len = c.max_query_len;
    return a;
  }

  // One call on both backends, comparing the outputs and then the whole state pool.
  void run_call(const std::vector<LightningSeq>& seqs, int heads, int d, const Pair& slopes_t, Pair& state,
                const std::string& label) {
    Call c = make_call(seqs, heads, d);
    check(cpu_->lightning_attention(args(c, slopes_t, state, heads, d, false)));
    check(cuda_->lightning_attention(args(c, slopes_t, state, heads, d, true)));
    expect_close(c.out, kOneRounding, "lightning out " + label);
    expect_close(state, kLightningStateBudget, "lightning state " + label);
  }

  static std::string describe(const std::vector<LightningSeq>& seqs, int heads, int d) {
    std::string s = fmt::format("H={} D={} seqs(q/ctx/slot)=", heads, d);
    for (size_t i = 0; i < seqs.size(); ++i) {
      s += fmt::format("{}{}/{}/{}", i ? "," : "", seqs[i].q_len, seqs[i].ctx, seqs[i].slot);
    }
    return s;
  }
};

// Whole prompts (fresh slots full of NaN) at lengths around the kernel's 64-token blocks, one per
// call and all in one batch; head sizes of every kernel instance (32, 64, 128) and padded ones.
TEST_F(LightningTest, FreshPrefillAtOddLengths) {
  const int lengths[] = {1, 17, 63, 64, 65, 300};
  for (int d : {128, 64, 32, 100, 5}) {
    const int heads = d >= 64 ? 4 : 3;
    const Pair sl = floats_f32({heads}, slopes(heads));
    for (int len : lengths) {
      Pair state = state_pool(3, heads, d, {1});
      const std::vector<LightningSeq> seqs{{len, len, 1}};
      run_call(seqs, heads, d, sl, state, describe(seqs, heads, d));
    }
    std::vector<LightningSeq> batch;
    std::vector<int> fresh;
    for (int i = 0; i < 6; ++i) {
      batch.push_back({lengths[i], lengths[i], 5 - i});
      fresh.push_back(5 - i);
    }
    Pair state = state_pool(7, heads, d, fresh);
    run_call(batch, heads, d, sl, state, describe(batch, heads, d));
  }
}

// Three sequences prefilled in chunks across calls, then decoded token by token: the state each call
// leaves is the next call's history. Calls mix chunk and decode rows, and two calls are decode-only.
TEST_F(LightningTest, ChunkedPrefillThenDecodeCarriesTheState) {
  const std::vector<std::vector<int>> chunks{{100, 1, 70, 1, 1, 129, 1, 1},
                                             {1, 1, 64, 1, 65, 1, 1, 1},
                                             {300, 1, 2, 1, 1, 17, 1, 1}};
  const int slots[] = {2, 0, 4};
  for (int d : {128, 64}) {
    const int heads = 4;
    const Pair sl = floats_f32({heads}, slopes(heads));
    Pair state = state_pool(5, heads, d, {2, 0, 4});
    std::vector<int> ctx(3, 0);
    for (size_t call = 0; call < chunks[0].size(); ++call) {
      std::vector<LightningSeq> seqs;
      for (size_t s = 0; s < 3; ++s) {
        const int q = chunks[s][call];
        ctx[s] += q;
        seqs.push_back({q, ctx[s], slots[s]});
      }
      run_call(seqs, heads, d, sl, state, fmt::format("call {} ", call) + describe(seqs, heads, d));
    }
  }
}

// One call mixing every kind of row: fresh prefills, chunks and decode steps over a history, a fresh
// one-token sequence, a two-token one, and a padding row (slot −1, context 0).
TEST_F(LightningTest, MixedBatchWithHistoryAndPadding) {
  for (int d : {128, 48}) {
    const int heads = 3;
    const Pair sl = floats_f32({heads}, slopes(heads));
    Pair state = state_pool(8, heads, d, {3, 7, 6});
    const std::vector<LightningSeq> seqs{{65, 65, 3}, {1, 500, 0},   {1, 0, -1}, {97, 1000, 5},
                                         {1, 1, 7},   {300, 400, 1}, {2, 2, 6}};
    run_call(seqs, heads, d, sl, state, describe(seqs, heads, d));
  }
}

// Decode steps recorded once in a CUDA graph and replayed with new qkv and context lengths uploaded
// between replays (a padding row included), against the CPU op stepping the same inputs.
TEST_F(LightningTest, DecodeInsideAGraph) {
  const int heads = 4, d = 128;
  const Pair sl = floats_f32({heads}, slopes(heads));
  Pair state = state_pool(5, heads, d, {});
  std::vector<LightningSeq> seqs{{1, 40, 1}, {1, 0, -1}, {1, 7, 3}, {1, 1000, 0}};
  Call c = make_call(seqs, heads, d);
  auto advance = [&](bool first) {
    std::vector<int32_t> ctx;
    for (LightningSeq& s : seqs) {
      if (!first && s.slot >= 0) ++s.ctx;
      ctx.push_back(s.ctx);
    }
    check(cpu_->upload(ctx.data(), c.context_lens.ref));
    check(cuda_->upload(ctx.data(), c.context_lens.dev));
    const std::vector<float> qkv = random_values(static_cast<size_t>(c.qkv.ref.numel()), -2.0f, 2.0f);
    check(cpu_->upload(qkv.data(), c.qkv.ref));
    check(cuda_->upload_converted(qkv.data(), DType::kF32, static_cast<int64_t>(qkv.size()), c.qkv.dev));
    poison(c.out.dev);
  };
  // An eager step first (as the runtime does before capturing), then the graph.
  advance(true);
  check(cpu_->lightning_attention(args(c, sl, state, heads, d, false)));
  check(cuda_->lightning_attention(args(c, sl, state, heads, d, true)));
  expect_close(c.out, kOneRounding, "lightning graph eager out");
  auto graph = cuda_->capture_graph([&] { return cuda_->lightning_attention(args(c, sl, state, heads, d, true)); });
  ASSERT_TRUE(graph.ok()) << graph.status().to_string();
  for (int step = 0; step < 4; ++step) {
    advance(false);
    check(cpu_->lightning_attention(args(c, sl, state, heads, d, false)));
    check((*graph)->replay());
    expect_close(c.out, kOneRounding, fmt::format("lightning graph replay {} out", step));
    expect_close(state, kLightningStateBudget, fmt::format("lightning graph replay {} state", step));
  }
}

TEST_F(LightningTest, RejectsBadArgumentsAndUnsupportedHeadDims) {
  OpQuery query;
  query.op = "lightning_attention";
  query.head_dim = 128;
  EXPECT_TRUE(cuda_->supports(query).ok());
  query.head_dim = 256;
  Status s = cuda_->supports(query);
  EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << s.to_string();
  EXPECT_NE(s.message().find("head_dim 256"), std::string::npos) << s.message();

  const int heads = 2, d = 32;
  const Pair sl = floats_f32({heads}, slopes(heads));
  Pair state = state_pool(2, heads, d, {});
  Call c = make_call({{3, 3, 0}}, heads, d);
  LightningAttentionArgs a = args(c, sl, state, heads, d, true);
  a.qkv = must(cuda_->allocate(DType::kF32, {3, heads * 3 * d}));
  s = cuda_->lightning_attention(a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("qkv"), std::string::npos) << s.message();
  a = args(c, sl, state, heads, d, true);
  a.state = must(cuda_->allocate(DType::kBF16, {2, heads, d, d}));
  s = cuda_->lightning_attention(a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("state"), std::string::npos) << s.message();
  a = args(c, sl, state, heads, d, true);
  a.head_dim = 200;
  s = cuda_->lightning_attention(a);
  EXPECT_NE(s.code(), StatusCode::kOk);
}

// ---- mixture of experts: CudaBackend vs CpuBackend ----

// Router logits whose values in a row are at least 0.03 apart (a shuffled ladder plus noise below
// the step), so the top-k set and order are unambiguous in fp32 and double alike: ids must be equal.
// The weights are exp differences renormalised in fp32 against the CPU's double: a few ulps.
TEST_F(BackendOpsTest, MoeRoute) {
  for (int experts : {4, 32, 256}) {
    for (int k : {2, 8}) {
      if (k > experts) continue;
      for (int tokens : {1, 37, 300}) {
        std::vector<float> logits(static_cast<size_t>(tokens) * experts);
        std::vector<int> ladder(static_cast<size_t>(experts));
        std::uniform_real_distribution<float> noise(0.0f, 0.02f);
        for (int t = 0; t < tokens; ++t) {
          std::iota(ladder.begin(), ladder.end(), 0);
          std::shuffle(ladder.begin(), ladder.end(), rng_);
          for (int e = 0; e < experts; ++e) {
            logits[static_cast<size_t>(t) * experts + e] =
                t == 1 ? 0.25f : (ladder[static_cast<size_t>(e)] - experts / 2) * 0.05f + noise(rng_);
          }
        }
        // Row 1 (when present) is all ties: the lowest ids, equal weights, on both sides.
        const Pair lg = floats_f32({tokens, experts}, logits);
        Pair ids;
        ids.ref = must(cpu_->allocate(DType::kI32, {tokens, k}));
        ids.dev = must(cuda_->allocate(DType::kI32, {tokens, k}));
        poison(ids.dev);
        Pair weights = outputs({tokens, k}, DType::kF32);
        auto route_args = [](const Tensor& l, const Tensor& i, const Tensor& w) {
          MoeRouteArgs a;  // softmax top-k, renormalized (MiniMax, Mixtral)
          a.logits = l;
          a.ids = i;
          a.weights = w;
          return a;
        };
        check(cpu_->moe_route(route_args(lg.ref, ids.ref, weights.ref)));
        check(cuda_->moe_route(route_args(lg.dev, ids.dev, weights.dev)));
        const std::string label = fmt::format("moe_route T={} E={} k={}", tokens, experts, k);
        std::vector<int32_t> want(static_cast<size_t>(tokens) * k), got(want.size());
        check(cpu_->download(ids.ref, want.data()));
        check(cuda_->download(ids.dev, got.data()));
        EXPECT_EQ(got, want) << label;
        expect_close(weights, 1e-5, label + " weights");
      }
    }
  }
}

// DeepSeek's sigmoid group-limited routing: the correction bias is a shuffled ladder (steps of 0.04 plus
// noise below 0.01) and the logits small noise, so every choice score, group score and top-k is
// separated far beyond fp32-vs-double differences: ids must be equal; weights within a few ulps.
TEST_F(BackendOpsTest, MoeSigmoidRoute) {
  struct Case {
    int experts, groups, topk_groups, k;
    bool renormalize;
  };
  for (const Case& c : {Case{8, 4, 2, 3, true}, Case{64, 8, 4, 6, true}, Case{256, 8, 4, 8, true},
                        Case{16, 1, 1, 4, false}}) {
    for (int tokens : {1, 37, 300}) {
      std::vector<float> logits(static_cast<size_t>(tokens) * c.experts), bias(static_cast<size_t>(c.experts));
      std::vector<int> ladder(static_cast<size_t>(c.experts));
      std::iota(ladder.begin(), ladder.end(), 0);
      std::shuffle(ladder.begin(), ladder.end(), rng_);
      std::uniform_real_distribution<float> noise(0.0f, 0.01f), small(-0.002f, 0.002f);
      for (int e = 0; e < c.experts; ++e) bias[static_cast<size_t>(e)] = (ladder[static_cast<size_t>(e)] - c.experts / 2) * 0.04f + noise(rng_);
      for (float& x : logits) x = small(rng_);
      const Pair lg = floats_f32({tokens, c.experts}, logits);
      const Pair b = floats_f32({c.experts}, bias);
      Pair ids;
      ids.ref = must(cpu_->allocate(DType::kI32, {tokens, c.k}));
      ids.dev = must(cuda_->allocate(DType::kI32, {tokens, c.k}));
      poison(ids.dev);
      Pair weights = outputs({tokens, c.k}, DType::kF32);
      auto route_args = [&](const Tensor& l, const Tensor& bias_t, const Tensor& i, const Tensor& w) {
        MoeRouteArgs a;
        a.logits = l;
        a.ids = i;
        a.weights = w;
        a.scoring = MoeScoring::kSigmoid;
        a.correction_bias = bias_t;
        a.num_groups = c.groups;
        a.topk_groups = c.topk_groups;
        a.renormalize = c.renormalize;
        a.scaling = 2.5f;
        return a;
      };
      check(cpu_->moe_route(route_args(lg.ref, b.ref, ids.ref, weights.ref)));
      check(cuda_->moe_route(route_args(lg.dev, b.dev, ids.dev, weights.dev)));
      const std::string label = fmt::format("sigmoid moe_route T={} E={} groups={}/{} k={}", tokens, c.experts,
                                            c.topk_groups, c.groups, c.k);
      std::vector<int32_t> want(static_cast<size_t>(tokens) * c.k), got(want.size());
      check(cpu_->download(ids.ref, want.data()));
      check(cuda_->download(ids.dev, got.data()));
      EXPECT_EQ(got, want) << label;
      expect_close(weights, 1e-5, label + " weights");
    }
  }
}

// Experts at decode and prefill sizes (1 token to several 64-row tiles per expert, experts left
// without tokens), hidden and intermediate sizes off the 64/32-column tiles, every activation.
// Budget: h = act(gate)·up is stored in bf16 between the two GEMMs (one rounding, ~1e-3 relative,
// carried through the down projection without growing: random-sign weights sum its independent
// errors as they sum the values) and the output is rounded once more; fp32 accumulation elsewhere.
TEST_F(BackendOpsTest, MoeExperts) {
  struct Shape {
    int hidden, inter;
  };
  struct Case {
    int experts, tokens;
    Shape shape;
    Activation act;
  };
  std::vector<Case> cases;
  for (int experts : {4, 32}) {
    for (int tokens : {1, 5, 64, 300}) {
      for (Shape shape : {Shape{200, 150}, Shape{256, 128}}) cases.push_back({experts, tokens, shape, Activation::kSilu});
    }
  }
  for (Activation act : {Activation::kGeluTanh, Activation::kGelu, Activation::kSigmoid}) {
    cases.push_back({4, 64, Shape{200, 150}, act});
  }
  const int k = 2;
  for (const Case& c : cases) {
    const int t_count = c.tokens, hidden = c.shape.hidden, inter = c.shape.inter;
    std::vector<int32_t> ids;
    std::vector<float> weights;
    std::vector<int32_t> order(static_cast<size_t>(c.experts));
    std::uniform_real_distribution<float> w_dist(0.1f, 1.0f);
    for (int t = 0; t < t_count; ++t) {
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng_);
      const float w0 = w_dist(rng_), w1 = w_dist(rng_);
      ids.push_back(order[0]);
      ids.push_back(order[1]);
      weights.push_back(w0 / (w0 + w1));
      weights.push_back(w1 / (w0 + w1));
    }
    const Pair x = random_floats({t_count, hidden});
    const Pair id_t = ints({t_count, k}, ids);
    const Pair w_t = floats_f32({t_count, k}, weights);
    const Pair gate_up = random_floats({c.experts, 2 * inter, hidden}, -0.1f, 0.1f);
    const Pair down = random_floats({c.experts, hidden, inter}, -0.1f, 0.1f);
    Pair out = outputs({t_count, hidden});
    auto args = [&](bool dev) {
      MoeExpertsArgs a;
      a.x = dev ? x.dev : x.ref;
      a.ids = dev ? id_t.dev : id_t.ref;
      a.weights = dev ? w_t.dev : w_t.ref;
      a.gate_up = dev ? gate_up.dev : gate_up.ref;
      a.down = dev ? down.dev : down.ref;
      a.activation = c.act;
      a.out = dev ? out.dev : out.ref;
      return a;
    };
    check(cpu_->moe_experts(args(false)));
    check(cuda_->moe_experts(args(true)));
    expect_close(out, kGemmBudget,
                 fmt::format("moe_experts T={} E={} k={} H={} I={} act={}", t_count, c.experts, k, hidden, inter,
                             static_cast<int>(c.act)));
    if (c.tokens != 64 || c.experts != 4 || c.act != Activation::kSilu) continue;
    // accumulate: out += the experts' sum (DeepSeek's shared experts are already in out).
    Pair shared = random_floats({t_count, hidden});
    auto accumulate = [&](bool dev) {
      MoeExpertsArgs a = args(dev);
      a.out = dev ? shared.dev : shared.ref;
      a.accumulate = true;
      return a;
    };
    check(cpu_->moe_experts(accumulate(false)));
    check(cuda_->moe_experts(accumulate(true)));
    expect_close(shared, kGemmBudget, fmt::format("moe_experts accumulate T={} H={} I={}", t_count, hidden, inter));
  }
}

// ---- multi-head latent attention (DeepSeek MLA): CudaBackend vs CpuBackend ----

// Per-head products over each head's own row block of w [H, R, C], in both forms (W_h·x and W_hᵀ·x),
// with the block starting at row 0 and inside the head, at odd sizes (unaligned leading dims for
// cuBLAS, a one-row block) and at DeepSeek V3's kv_b_proj shape with 16 of its 128 heads (R 256,
// C 512: the absorb reads rows [0, 128) transposed, the expand rows [128, 256)). Budget: the bf16
// inputs are exact on both sides, fp32 accumulation against double, one rounding of the output:
// kGemmBudget, as matmul.
TEST_F(BackendOpsTest, HeadMatmul) {
  struct Shape {
    int heads, rows, cols, row_begin, n;
  };
  const Shape shapes[] = {{3, 11, 37, 3, 5},      {4, 48, 64, 0, 32},       {4, 48, 64, 32, 16},
                          {5, 9, 8, 8, 1},        {16, 256, 512, 0, 128},   {16, 256, 512, 128, 128}};
  for (const Shape& shape : shapes) {
    for (bool transpose : {false, true}) {
      for (int tokens : {1, 37, 300}) {
        const int in = transpose ? shape.n : shape.cols, out_dim = transpose ? shape.cols : shape.n;
        const Pair x = random_floats({tokens, shape.heads, in});
        const Pair w = random_floats({shape.heads, shape.rows, shape.cols}, -0.2f, 0.2f);
        Pair out = outputs({tokens, shape.heads, out_dim});
        auto args = [&](bool dev) {
          HeadMatmulArgs a;
          a.x = dev ? x.dev : x.ref;
          a.w = dev ? w.dev : w.ref;
          a.row_begin = shape.row_begin;
          a.num_rows = shape.n;
          a.transpose_w = transpose;
          a.out = dev ? out.dev : out.ref;
          return a;
        };
        check(cpu_->head_matmul(args(false)));
        check(cuda_->head_matmul(args(true)));
        expect_close(out, kGemmBudget,
                     fmt::format("head_matmul{} T={} H={} w=[{}, {}] rows [{}, {})", transpose ? " transposed" : "",
                                 tokens, shape.heads, shape.rows, shape.cols, shape.row_begin,
                                 shape.row_begin + shape.n));
      }
    }
  }
  // A row block past the head's rows, or x of the other form's width: INVALID_ARGUMENT.
  const Pair x = random_floats({2, 3, 37});
  const Pair w = random_floats({3, 11, 37});
  Pair out = outputs({2, 3, 5});
  HeadMatmulArgs a;
  a.x = x.dev;
  a.w = w.dev;
  a.row_begin = 7;
  a.num_rows = 5;
  a.out = out.dev;
  Status s = cuda_->head_matmul(a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  a.row_begin = 0;
  a.transpose_w = true;
  s = cuda_->head_matmul(a);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("x"), std::string::npos) << s.message();
}

// Latent and RoPE-key rows copied into distinct random slots, every third token a padding row
// (slot −1, not stored): the DeepSeek row (512 + 64), the fixtures' (32 + 8) and an odd one. Copies:
// exact, untouched slots included.
TEST_F(BackendOpsTest, AppendLatent) {
  struct Dims {
    int latent, rope;
  };
  for (Dims dims : {Dims{512, 64}, Dims{32, 8}, Dims{7, 3}}) {
    for (int tokens : {1, 63, 97}) {
      const int pages = 5, width = dims.latent + dims.rope;
      const Pair latent = random_floats({tokens, dims.latent});
      const Pair rope = random_floats({tokens, dims.rope});
      std::vector<int32_t> all(static_cast<size_t>(pages) * 64);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng_);
      std::vector<int32_t> slots(all.begin(), all.begin() + tokens);
      for (size_t i = 1; i < slots.size(); i += 3) slots[i] = -1;
      const Pair slot_t = ints({tokens}, slots);
      Pair cache = floats({pages, 64, width}, std::vector<float>(static_cast<size_t>(pages) * 64 * width, 0.0f));
      check(cpu_->append_latent(AppendLatentArgs{latent.ref, rope.ref, slot_t.ref, cache.ref}));
      check(cuda_->append_latent(AppendLatentArgs{latent.dev, rope.dev, slot_t.dev, cache.dev}));
      expect_close(cache, 0.0, fmt::format("append_latent T={} Dl={} Dr={}", tokens, dims.latent, dims.rope));
    }
  }
}

double BackendOpsTest::run_latent_attention(const std::vector<LatentSeq>& seqs, int heads, int latent_dim,
                                            int rope_dim, int topk) {
  const int width = latent_dim + rope_dim, num_seqs = static_cast<int>(seqs.size());
  int max_q = 0, max_ctx = 0, rows = 0, used_pages = 0;
  for (const LatentSeq& s : seqs) {
    max_q = std::max(max_q, s.q_len);
    max_ctx = std::max(max_ctx, s.ctx);
    rows += s.q_len;
    used_pages += (s.ctx + 63) / 64;
  }
  // Every slot no sequence holds (the tail of each last page, two spare pages) is NaN on both
  // sides: a kernel that lets one reach the output fails.
  const int pool_pages = used_pages + 2, max_pages = (max_ctx + 63) / 64 + 1;
  std::vector<int32_t> page_ids(static_cast<size_t>(pool_pages));
  std::iota(page_ids.begin(), page_ids.end(), 0);
  std::shuffle(page_ids.begin(), page_ids.end(), rng_);
  std::vector<int32_t> table(static_cast<size_t>(num_seqs) * max_pages, -1);
  std::vector<float> pool(static_cast<size_t>(pool_pages) * 64 * width, std::nanf(""));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<int32_t> query_start{0}, ctx_lens, positions;
  size_t next_page = 0;
  for (int s = 0; s < num_seqs; ++s) {
    int32_t* row_table = table.data() + static_cast<size_t>(s) * max_pages;
    for (int b = 0; b < (seqs[s].ctx + 63) / 64; ++b) row_table[b] = page_ids[next_page++];
    for (int i = 0; i < seqs[s].ctx; ++i) {
      const size_t slot = static_cast<size_t>(row_table[i / 64]) * 64 + i % 64;
      for (int e = 0; e < width; ++e) pool[slot * width + e] = bf16_to_f32(f32_to_bf16(dist(rng_)));
    }
    for (int i = 0; i < seqs[s].q_len; ++i) positions.push_back(seqs[s].ctx - seqs[s].q_len + i);
    query_start.push_back(query_start.back() + seqs[s].q_len);
    ctx_lens.push_back(seqs[s].ctx);
  }
  // DSA selections: a random subset of the row's causal prefix in random order, −1 in the other
  // entries (scattered; some rows leave two entries free even when their prefix could fill them);
  // each sequence's second row and every padding row select nothing (output 0).
  std::vector<int32_t> selection;
  if (topk > 0) {
    selection.assign(static_cast<size_t>(rows) * topk, -1);
    std::vector<int32_t> prefix;
    for (int s = 0, r = 0; s < num_seqs; ++s) {
      for (int i = 0; i < seqs[s].q_len; ++i, ++r) {
        const int pos = positions[static_cast<size_t>(r)];
        if (pos < 0 || i == 1) continue;
        prefix.resize(static_cast<size_t>(pos) + 1);
        std::iota(prefix.begin(), prefix.end(), 0);
        std::shuffle(prefix.begin(), prefix.end(), rng_);
        int count = std::min(topk, pos + 1);
        if (count > 2 && r % 3 == 0) count -= 2;
        const auto row_begin = selection.begin() + static_cast<int64_t>(r) * topk;
        std::copy(prefix.begin(), prefix.begin() + count, row_begin);
        std::shuffle(row_begin, row_begin + topk, rng_);
      }
    }
  }
  // Queries in [-2, 2] and a scale of 2/sqrt(width): scores of standard deviation ~1.3, so that
  // softmax rows are far from uniform.
  const Pair q_latent = random_floats({rows, heads, latent_dim}, -2.0f, 2.0f);
  const Pair q_rope = random_floats({rows, heads, rope_dim}, -2.0f, 2.0f);
  const Pair cache = floats({pool_pages, 64, width}, pool);
  const Pair qs = ints({num_seqs + 1}, query_start);
  const Pair cl = ints({num_seqs}, ctx_lens);
  const Pair bt = ints({num_seqs, max_pages}, table);
  const Pair idx = topk > 0 ? ints({rows, topk}, selection) : Pair{};
  Pair out = outputs({rows, heads, latent_dim});
  auto args = [&](bool dev) {
    LatentAttentionArgs a;
    a.q_latent = dev ? q_latent.dev : q_latent.ref;
    a.q_rope = dev ? q_rope.dev : q_rope.ref;
    a.cache = dev ? cache.dev : cache.ref;
    a.query_start = dev ? qs.dev : qs.ref;
    a.context_lens = dev ? cl.dev : cl.ref;
    a.block_tables = dev ? bt.dev : bt.ref;
    a.indices = dev ? idx.dev : idx.ref;
    a.out = dev ? out.dev : out.ref;
    a.max_query_len = max_q;
    a.max_context_len = max_ctx;
    a.scale = 2.0f / std::sqrt(static_cast<float>(width));
    return a;
  };
  check(cpu_->latent_attention(args(false)));
  check(cuda_->latent_attention(args(true)));
  std::string label = fmt::format("latent_attention Dl={} Dr={} H={}{} seqs(q/ctx)=", latent_dim, rope_dim, heads,
                                  topk > 0 ? fmt::format(" topk={}", topk) : std::string());
  for (size_t i = 0; i < seqs.size() && i < 5; ++i) {
    label += fmt::format("{}{}/{}", i ? "," : "", seqs[i].q_len, seqs[i].ctx);
  }
  if (seqs.size() > 5) label += fmt::format(",...({})", seqs.size());
  // Budget: fp32 scores, softmax and sums against double, one bf16 rounding of the output.
  return expect_close(out, kAttentionBudget, label);
}

// Dense causal latent attention at the fixtures' sizes (latent 32 + rope 8, 64 + 16) in a mixed
// batch: a 97-row chunk behind a 203-token cached prefix (its rows cross page boundaries), a whole
// 63-token prompt, a short chunk, decode rows on and beside page edges and a padding row. 4 heads
// (one block, half its warps idle) and 40 heads (blocks of 32 heads on the H100's 132 SMs, the
// second block partial); then decode-only batches, where the launcher gives each warp one head.
TEST_F(BackendOpsTest, LatentAttentionDense) {
  struct Dims {
    int latent, rope, heads;
  };
  for (Dims d : {Dims{32, 8, 4}, Dims{64, 16, 4}, Dims{64, 16, 40}}) {
    run_latent_attention({{97, 300}, {1, 97}, {1, 0}, {63, 63}, {1, 1}, {5, 130}, {1, 64}, {1, 65}}, d.heads,
                         d.latent, d.rope);
    run_latent_attention({{1, 1}, {1, 63}, {1, 700}, {1, 0}, {1, 129}}, d.heads, d.latent, d.rope);
  }
}

// DSA selections (topk 40: a partial second key tile; 64: two whole tiles) over the same kinds of
// rows: indices in random order with −1 anywhere among them, rows that select nothing, a padding row.
TEST_F(BackendOpsTest, LatentAttentionSparse) {
  struct Dims {
    int latent, rope, heads;
  };
  for (Dims d : {Dims{32, 8, 4}, Dims{64, 16, 40}}) {
    for (int topk : {40, 64}) {
      run_latent_attention({{97, 300}, {1, 500}, {1, 0}, {3, 40}, {1, 1}, {2, 2}}, d.heads, d.latent, d.rope, topk);
      run_latent_attention({{1, 300}, {1, 0}, {1, 33}, {1, 4097}}, d.heads, d.latent, d.rope, topk);
    }
  }
}

// DeepSeek V3's row: latent 512 + rope 64. A prefill chunk of 140 rows over 64 heads (blocks of 32
// heads: the largest shared-memory layout, 72 KB), a decode batch over all 128 heads (one head per
// warp, 16 blocks a row), and a DSA step with topk 128.
TEST_F(BackendOpsTest, LatentAttentionDeepSeekShape) {
  run_latent_attention({{140, 330}, {1, 257}, {1, 0}, {1, 64}}, 64, 512, 64);
  run_latent_attention({{1, 300}, {1, 129}, {1, 0}, {1, 64}}, 128, 512, 64);
  run_latent_attention({{40, 300}, {1, 400}, {1, 0}, {1, 100}}, 16, 512, 64, 128);
}

// Decode steps of an MLA layer's ops (the absorb by head_matmul, append_latent, latent_attention)
// recorded once in a CUDA graph with fixed launch hints and replayed with new queries, latent rows,
// slots and context lengths uploaded between replays (a padding row included), against the CPU
// backend running the same ops eagerly. The cache must match exactly (the same bf16 values copied);
// the absorbed queries are rounded to bf16 on the device (kGemmBudget), which moves the attention
// output far less than its own rounding (kAttentionBudget).
TEST_F(BackendOpsTest, LatentAttentionInsideAGraph) {
  const int heads = 4, latent = 64, rope = 16, nope = 32, width = latent + rope, seqs = 4, max_pages = 4;
  const int pool_pages = 8;
  std::vector<int> ctx{40, 0, 7, 130};  // context after the step's token; 0: a padding row, stays 0
  std::vector<int32_t> page_ids(static_cast<size_t>(pool_pages));
  std::iota(page_ids.begin(), page_ids.end(), 0);
  std::shuffle(page_ids.begin(), page_ids.end(), rng_);
  // Pages: sequence 0 one, 2 one, 3 three (room for the steps below); the padding row none.
  const std::vector<int32_t> table{page_ids[0], -1, -1, -1,          -1,          -1, -1, -1,
                                   page_ids[1], -1, -1, -1,          page_ids[2], page_ids[3], page_ids[4], -1};
  // The whole pool random (finite), so that the caches compare element for element.
  Pair cache = random_floats({pool_pages, 64, width});
  const Pair kv_b = random_floats({heads, nope + 16, latent}, -0.2f, 0.2f);
  const Pair qs = ints({seqs + 1}, {0, 1, 2, 3, 4});
  const Pair bt = ints({seqs, max_pages}, table);
  Pair cl = ints({seqs}, std::vector<int32_t>(static_cast<size_t>(seqs), 0));
  Pair slots = ints({seqs}, std::vector<int32_t>(static_cast<size_t>(seqs), -1));
  Pair q_nope = random_floats({seqs, heads, nope});
  Pair q_rope = random_floats({seqs, heads, rope});
  Pair kv_latent = random_floats({seqs, latent});
  Pair k_rope = random_floats({seqs, rope});
  Pair q_latent = outputs({seqs, heads, latent});
  Pair out = outputs({seqs, heads, latent});

  auto set_floats = [&](Pair& p, float lo, float hi) {
    const std::vector<float> v = random_values(static_cast<size_t>(p.ref.numel()), lo, hi);
    check(cpu_->upload(v.data(), p.ref));
    check(cuda_->upload_converted(v.data(), DType::kF32, static_cast<int64_t>(v.size()), p.dev));
  };
  auto set_ints = [&](Pair& p, const std::vector<int32_t>& v) {
    check(cpu_->upload(v.data(), p.ref));
    check(cuda_->upload(v.data(), p.dev));
  };
  // The next step's inputs: every live sequence one token longer (the first step: as listed).
  auto advance = [&](bool first) {
    std::vector<int32_t> lens, slot_ids;
    for (int s = 0; s < seqs; ++s) {
      if (!first && ctx[static_cast<size_t>(s)] > 0) ++ctx[static_cast<size_t>(s)];
      const int c = ctx[static_cast<size_t>(s)];
      lens.push_back(c);
      slot_ids.push_back(c == 0 ? -1 : table[static_cast<size_t>(s * max_pages + (c - 1) / 64)] * 64 + (c - 1) % 64);
    }
    set_ints(cl, lens);
    set_ints(slots, slot_ids);
    set_floats(q_nope, -2.0f, 2.0f);
    set_floats(q_rope, -2.0f, 2.0f);
    set_floats(kv_latent, -1.0f, 1.0f);
    set_floats(k_rope, -1.0f, 1.0f);
    poison(q_latent.dev);
    poison(out.dev);
  };
  auto issue = [&](bool dev) -> Status {
    Backend& b = dev ? *cuda_ : *cpu_;
    auto side = [dev](const Pair& p) { return dev ? p.dev : p.ref; };
    HeadMatmulArgs absorb;
    absorb.x = side(q_nope);
    absorb.w = side(kv_b);
    absorb.row_begin = 0;
    absorb.num_rows = nope;
    absorb.transpose_w = true;
    absorb.out = side(q_latent);
    RETURN_IF_ERROR(b.head_matmul(absorb));
    RETURN_IF_ERROR(b.append_latent(AppendLatentArgs{side(kv_latent), side(k_rope), side(slots), side(cache)}));
    LatentAttentionArgs a;
    a.q_latent = side(q_latent);
    a.q_rope = side(q_rope);
    a.cache = side(cache);
    a.query_start = side(qs);
    a.context_lens = side(cl);
    a.block_tables = side(bt);
    a.out = side(out);
    a.max_query_len = 1;
    a.max_context_len = max_pages * 64;  // a bound for every step, as a captured graph keeps it
    a.scale = 0.3f;
    return b.latent_attention(a);
  };
  auto compare = [&](const std::string& what) {
    expect_close(q_latent, kGemmBudget, "mla graph " + what + " q_latent");
    expect_close(out, kAttentionBudget, "mla graph " + what + " out");
    expect_close(cache, 0.0, "mla graph " + what + " cache");
  };
  // An eager step first (as the runtime runs before capturing), then the graph.
  advance(true);
  check(issue(false));
  check(issue(true));
  compare("eager");
  auto graph = cuda_->capture_graph([&] { return issue(true); });
  ASSERT_TRUE(graph.ok()) << graph.status().to_string();
  for (int step = 0; step < 4; ++step) {
    advance(false);
    check(issue(false));
    check((*graph)->replay());
    compare(fmt::format("replay {}", step));
  }
}

// supports() answers by shape (head_dim = latent + rope dims, rotary_dim = rope dims); a wrong
// dtype or shape is INVALID_ARGUMENT naming the tensor.
TEST_F(BackendOpsTest, LatentAttentionSupportsAndRejects) {
  auto query = [](int latent, int rope, int heads) {
    OpQuery q;
    q.op = "latent_attention";
    q.head_dim = latent + rope;
    q.num_heads = heads;
    q.num_kv_heads = 1;
    q.rotary_dim = rope;
    return q;
  };
  EXPECT_TRUE(cuda_->supports(query(512, 64, 128)).ok());
  EXPECT_TRUE(cuda_->supports(query(32, 8, 4)).ok());
  EXPECT_TRUE(cuda_->supports(query(64, 16, 1)).ok());
  struct Refused {
    int latent, rope;
    const char* field;
  };
  for (Refused r : {Refused{1024, 64, "kv_lora_rank"}, Refused{31, 8, "kv_lora_rank"},
                    Refused{512, 128, "qk_rope_head_dim"}, Refused{512, 7, "qk_rope_head_dim"}}) {
    const Status s = cuda_->supports(query(r.latent, r.rope, 16));
    EXPECT_EQ(s.code(), StatusCode::kUnimplemented) << r.latent << "+" << r.rope << ": " << s.to_string();
    EXPECT_NE(s.message().find(r.field), std::string::npos) << s.message();
  }

  const Pair q_latent = random_floats({2, 4, 32});
  const Pair q_rope = random_floats({2, 4, 8});
  const Pair cache = random_floats({2, 64, 40});
  const Pair qs = ints({2}, {0, 2});
  const Pair cl = ints({1}, {2});
  const Pair bt = ints({1, 2}, {1, 0});
  Pair out = outputs({2, 4, 32});
  LatentAttentionArgs a;
  a.q_latent = q_latent.dev;
  a.q_rope = q_rope.dev;
  a.cache = cache.dev;
  a.query_start = qs.dev;
  a.context_lens = cl.dev;
  a.block_tables = bt.dev;
  a.out = out.dev;
  a.max_query_len = 2;
  a.max_context_len = 2;
  a.scale = 0.5f;
  check(cuda_->latent_attention(a));
  LatentAttentionArgs bad = a;
  bad.q_latent = must(cuda_->allocate(DType::kF32, {2, 4, 32}));
  Status s = cuda_->latent_attention(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("q_latent"), std::string::npos) << s.message();
  bad = a;
  bad.out = must(cuda_->allocate(DType::kBF16, {2, 4, 40}));
  s = cuda_->latent_attention(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("out"), std::string::npos) << s.message();
  bad = a;
  bad.cache = must(cuda_->allocate(DType::kBF16, {2, 64, 48}));
  s = cuda_->latent_attention(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find("cache"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace longbow
