// The DSA ops through the Backend interface: CudaBackend against CpuBackend on one decode step
// (index keys for a whole context, index scores, top-k, sparse attention), inputs rounded to bf16
// first so both backends see the same numbers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

#include "common/half.h"
#include "model/backend/backend.h"
#include "model/backend/cpu/cpu_dsa.h"

namespace longbow {
namespace {

std::vector<float> bf16_random(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = bf16_to_f32(f32_to_bf16(dist(rng)));
  return v;
}

// The same values on both backends: F32 on the CPU, compute dtype (BF16) on CUDA for floats.
struct Both {
  Tensor cpu, cuda;
};

class DsaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::unique_ptr<Backend>> cpu = create_backend("cpu");
    ASSERT_TRUE(cpu.ok()) << cpu.status().to_string();
    cpu_ = std::move(*cpu);
    StatusOr<std::unique_ptr<Backend>> cuda = create_backend("cuda");
    ASSERT_TRUE(cuda.ok()) << cuda.status().to_string();
    cuda_ = std::move(*cuda);
  }
  Both floats(std::initializer_list<int64_t> dims, const std::vector<float>& v, bool f32_on_cuda = false) {
    Both b;
    b.cpu = *cpu_->allocate(DType::kF32, dims);
    EXPECT_TRUE(cpu_->upload(v.data(), b.cpu).ok());
    b.cuda = *cuda_->allocate(f32_on_cuda ? DType::kF32 : DType::kBF16, dims);
    EXPECT_TRUE(cuda_->upload_converted(v.data(), DType::kF32, static_cast<int64_t>(v.size()), b.cuda).ok());
    return b;
  }
  Both ints(std::initializer_list<int64_t> dims, const std::vector<int32_t>& v) {
    Both b;
    b.cpu = *cpu_->allocate(DType::kI32, dims);
    b.cuda = *cuda_->allocate(DType::kI32, dims);
    EXPECT_TRUE(cpu_->upload(v.data(), b.cpu).ok());
    EXPECT_TRUE(cuda_->upload(v.data(), b.cuda).ok());
    return b;
  }
  Both raw(DType t, std::initializer_list<int64_t> dims) {
    Both b;
    b.cpu = *cpu_->allocate(t, dims);
    b.cuda = *cuda_->allocate(t == DType::kF32 ? DType::kF32 : t, dims);
    std::vector<uint8_t> poison(b.cpu.num_bytes(), 0xFF);
    EXPECT_TRUE(cpu_->upload(poison.data(), b.cpu).ok());
    EXPECT_TRUE(cuda_->upload(poison.data(), b.cuda).ok());
    return b;
  }
  std::vector<float> out_f(Backend& be, const Tensor& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    if (t.dtype == DType::kF32) {
      EXPECT_TRUE(be.download(t, v.data()).ok());
    } else {
      std::vector<uint16_t> bits(v.size());
      EXPECT_TRUE(be.download(t, bits.data()).ok());
      for (size_t i = 0; i < v.size(); ++i) v[i] = bf16_to_f32(bits[i]);
    }
    return v;
  }

  std::unique_ptr<Backend> cpu_, cuda_;
};

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    n += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(e / std::max(n, 1e-30));
}

TEST_F(DsaBackendTest, DecodeStepMatchesTheCpuBackend) {
  const int ctx = 3000, hq = 32, hkv = 8, d = 128, ih = 64, id = 128, pages = 50;
  std::vector<int32_t> table(pages);
  for (int i = 0; i < pages; ++i) table[i] = (i * 17) % pages;
  std::vector<int32_t> positions(ctx), slots(ctx);
  for (int j = 0; j < ctx; ++j) {
    positions[j] = j;
    slots[j] = table[j / 64] * 64 + j % 64;
  }
  std::vector<float> inv(32);
  for (int i = 0; i < 32; ++i) inv[i] = std::pow(10000.0f, -static_cast<float>(i) / 32.0f);
  Both inv_freq = floats({32}, inv, true);
  Both cache = raw(DType::kFP8E4M3, {pages, 64 * (id + 4)});
  Both k_raw = floats({ctx, id}, bf16_random(ctx * id, 1, -2, 2));
  Both gamma = floats({id}, bf16_random(id, 2, 0.5f, 1.5f));
  Both beta = floats({id}, bf16_random(id, 3, -0.1f, 0.1f));
  Both pos = ints({ctx}, positions), sl = ints({ctx}, slots);
  Both starts = ints({2}, {0, 1}), lens = ints({1}, {ctx}), tables = ints({1, pages}, table);
  Both q_idx = floats({1, ih, id}, bf16_random(ih * id, 4, -2, 2));
  Both w_idx = floats({1, ih}, bf16_random(ih, 5, -1, 1));
  Both q_pos = ints({1}, {ctx - 1});
  Both logits = raw(DType::kF32, {1, ctx});
  Both q = floats({1, hq, d}, bf16_random(hq * d, 6, -2, 2));
  Both kc = floats({pages, 64, hkv, d}, bf16_random(static_cast<size_t>(pages) * 64 * hkv * d, 7, -1, 1));
  Both vc = floats({pages, 64, hkv, d}, bf16_random(static_cast<size_t>(pages) * 64 * hkv * d, 8, -1, 1));

  auto step = [&](Backend& be, bool gpu, int topk, std::vector<float>* scores, std::vector<int32_t>* picked,
                  std::vector<float>* sparse, std::vector<float>* dense) {
    auto pick = [gpu](const Both& b) { return gpu ? b.cuda : b.cpu; };
    DsaIndexKeysArgs k{pick(k_raw), pick(gamma), pick(beta), pick(pos), pick(sl), pick(inv_freq), 1.0f, pick(cache)};
    ASSERT_TRUE(be.dsa_index_keys(k).ok());
    DsaIndexScoresArgs s;
    s.q = pick(q_idx);
    s.weights = pick(w_idx);
    s.positions = pick(q_pos);
    s.inv_freq = pick(inv_freq);
    s.index_cache = pick(cache);
    s.query_start = pick(starts);
    s.context_lens = pick(lens);
    s.block_tables = pick(tables);
    s.logits = pick(logits);
    s.max_context_len = ctx;
    ASSERT_TRUE(be.dsa_index_scores(s).ok());
    *scores = out_f(be, s.logits);
    Tensor idx = *be.allocate(DType::kI32, {1, topk});
    DsaTopkArgs t{s.logits, s.query_start, s.context_lens, idx};
    Status st = be.dsa_topk(t);
    ASSERT_TRUE(st.ok()) << st.to_string();
    picked->resize(topk);
    ASSERT_TRUE(be.download(idx, picked->data()).ok());
    Tensor out = *be.allocate(be.compute_dtype(), {1, hq, d});
    DsaSparseAttentionArgs a{pick(q), pick(kc), pick(vc), idx, s.query_start, s.block_tables, out,
                             1.0f / std::sqrt(static_cast<float>(d))};
    st = be.dsa_sparse_attention(a);
    ASSERT_TRUE(st.ok()) << st.to_string();
    *sparse = out_f(be, out);
    Tensor dense_out = *be.allocate(be.compute_dtype(), {1, hq, d});
    PagedAttentionArgs p;
    p.q = a.q;
    p.k_cache = a.k_cache;
    p.v_cache = a.v_cache;
    p.query_start = s.query_start;
    p.context_lens = s.context_lens;
    p.block_tables = s.block_tables;
    p.out = dense_out;
    p.max_query_len = 1;
    p.max_context_len = ctx;
    p.scale = a.scale;
    ASSERT_TRUE(be.paged_attention(p).ok());
    *dense = out_f(be, dense_out);
  };
  for (int topk : {256, 4096}) {
    std::vector<float> s_cpu, s_gpu, o_cpu, o_gpu, d_cpu, d_gpu;
    std::vector<int32_t> i_cpu, i_gpu;
    step(*cpu_, false, topk, &s_cpu, &i_cpu, &o_cpu, &d_cpu);
    step(*cuda_, true, topk, &s_gpu, &i_gpu, &o_gpu, &d_gpu);
    const double score_err = rel_l2(s_gpu, s_cpu);
    std::vector<int32_t> exact(topk);
    cpu::dsa_topk(s_gpu.data(), ctx, topk, exact.data());
    // Selected tokens common to both: each list is ascending, then -1 padding (left out here).
    std::vector<int32_t> both;
    std::set_intersection(i_cpu.begin(), std::find(i_cpu.begin(), i_cpu.end(), -1), i_gpu.begin(),
                          std::find(i_gpu.begin(), i_gpu.end(), -1), std::back_inserter(both));
    const double overlap = static_cast<double>(both.size()) / std::min(topk, ctx);
    const double attn_err = rel_l2(o_gpu, o_cpu);
    std::printf("[ error ] backend DSA topk=%d: scores rel_l2 %.3g, selection overlap CPU/CUDA %.4f, sparse attention "
                "rel_l2 %.3g (budget 1e-2)\n", topk, score_err, overlap, attn_err);
    EXPECT_LT(score_err, 1e-2);
    EXPECT_EQ(i_gpu, exact) << "CUDA top-k is not the exact top-k of the CUDA scores";
    EXPECT_GE(overlap, 0.98);
    EXPECT_LT(attn_err, 1e-2);
    if (topk >= ctx) {
      EXPECT_LT(rel_l2(o_gpu, d_gpu), 1e-2) << "index_topk >= context must equal dense attention";
    }
  }
}

}  // namespace
}  // namespace longbow
