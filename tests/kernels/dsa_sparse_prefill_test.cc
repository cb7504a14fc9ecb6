// The prefill path of DSA sparse attention (launch_dsa_sparse_prefill_attention, kernels/dsa/params.h)
// against the CPU reference cpu::dsa_sparse_attention, on the GPU machine.
//
// Both kernels of that path (the mma.sync one and the Hopper TMA/wgmma one). Steps of several sequences, each a prefill chunk of q_len rows (1, 63, 97, 300) at the end of its
// context (row i at position ctx - q_len + i, selecting only within [0, position]); contexts below
// and above topk; GQA groups 1 and 4; head_dim 64 and 128. Selections: distinct random indices in
// random order (the top-k's set, unsorted on purpose), the whole context when it is shorter than
// topk, -1-padded tails of random length, and rows that select nothing (output 0). K/V pages are
// shuffled across the pool; the output and the workspace are poisoned (NaN / all ones) before every
// launch. Budget: relative L2 1e-2 over the whole output (bf16 inputs and output, P rounded to
// bf16 for P·V as in flash prefill; the gather kernel's test has the same budget).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numeric>
#include <random>
#include <vector>

#include "common/half.h"
#include "kernels/dsa/params.h"
#include "model/backend/backend.h"
#include "model/backend/cpu/cpu_dsa.h"

namespace longbow {
namespace {

constexpr int kPage = kernels::kDsaPageSize;

// A device copy of a host vector, or `bytes` of poison (0xFF: NaN as bf16, -1 as int).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes) : bytes_(std::max<size_t>(bytes, 16)) {
    EXPECT_EQ(cudaMalloc(&ptr_, bytes_), cudaSuccess);
    EXPECT_EQ(cudaMemset(ptr_, 0xFF, bytes_), cudaSuccess);
  }
  template <typename T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    EXPECT_EQ(cudaMemcpy(ptr_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_ = nullptr;
  size_t bytes_;
};

// v rounded to bf16 in place; returns the bf16 bits (CPU and GPU then see the same numbers).
std::vector<uint16_t> round_to_bf16(std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = f32_to_bf16(v[i]);
    v[i] = bf16_to_f32(bits[i]);
  }
  return bits;
}

std::vector<float> uniform(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  double err = 0.0, norm = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    err += d * d;
    norm += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(err / std::max(norm, 1e-30));
}

struct SeqSpec {
  int q_len, ctx;
};

enum class Selection { kRandom, kPaddedTails };

// One step: sequences' pages shuffled over one pool, their rows' selections, and the inputs.
struct PrefillCase {
  int q_heads, kv_heads, d, topk, rows = 0, max_pages = 0, max_q_len = 0;
  std::vector<SeqSpec> seqs;
  std::vector<int32_t> tables, starts, indices;
  std::vector<float> q, k, v;
  std::vector<uint16_t> qb, kb, vb;

  PrefillCase(int qh, int kvh, int dim, int top, std::vector<SeqSpec> specs, Selection selection, uint32_t seed)
      : q_heads(qh), kv_heads(kvh), d(dim), topk(top), seqs(std::move(specs)) {
    std::mt19937 rng(seed);
    int pages = 0;
    for (const SeqSpec& s : seqs) {
      max_pages = std::max(max_pages, (s.ctx + kPage - 1) / kPage);
      max_q_len = std::max(max_q_len, s.q_len);
      pages += (s.ctx + kPage - 1) / kPage;
    }
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    tables.assign(seqs.size() * max_pages, -1);
    int next = 0;
    starts.push_back(0);
    for (size_t s = 0; s < seqs.size(); ++s) {
      for (int b = 0; b < (seqs[s].ctx + kPage - 1) / kPage; ++b) tables[s * max_pages + b] = perm[next++];
      rows += seqs[s].q_len;
      starts.push_back(rows);
    }
    indices.assign(static_cast<size_t>(rows) * topk, -1);
    int row = 0;
    for (const SeqSpec& s : seqs) {
      for (int i = 0; i < s.q_len; ++i, ++row) {
        const int len = s.ctx - s.q_len + i + 1;  // the row's causal context
        std::vector<int32_t> all(len);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), rng);
        int n = std::min(topk, len);
        if (selection == Selection::kPaddedTails) n = static_cast<int>(rng() % (n + 1));  // 0 included
        std::copy(all.begin(), all.begin() + n, indices.begin() + static_cast<size_t>(row) * topk);
      }
    }
    const size_t pool = static_cast<size_t>(pages) * kPage * kv_heads * d;
    k = uniform(pool, rng, -1.0f, 1.0f);
    v = uniform(pool, rng, -1.0f, 1.0f);
    q = uniform(static_cast<size_t>(rows) * q_heads * d, rng, -2.0f, 2.0f);
    kb = round_to_bf16(k);
    vb = round_to_bf16(v);
    qb = round_to_bf16(q);
  }

  std::vector<float> run_gpu(kernels::SparsePrefillKernel kernel, cudaError_t* launch) const {
    DeviceBuffer dq(qb), dk(kb), dv(vb), didx(indices), dstart(starts), dtab(tables);
    DeviceBuffer dout(static_cast<size_t>(rows) * q_heads * d * 2);
    DeviceBuffer ws(kernels::dsa_sparse_prefill_workspace_bytes(rows, max_pages));
    kernels::DsaSparseAttentionParams p;
    p.q = dq.get();
    p.k_cache = dk.get();
    p.v_cache = dv.get();
    p.indices = didx.as<int>();
    p.query_start = dstart.as<int>();
    p.block_tables = dtab.as<int>();
    p.out = dout.get();
    p.workspace = ws.get();
    p.scale = 1.0f / std::sqrt(static_cast<float>(d));
    p.seqs = static_cast<int>(seqs.size());
    p.rows = rows;
    p.max_pages = max_pages;
    p.topk = topk;
    p.q_heads = q_heads;
    p.kv_heads = kv_heads;
    p.head_dim = d;
    *launch = kernels::launch_dsa_sparse_prefill_attention(p, max_q_len, nullptr, kernel);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    std::vector<uint16_t> bits(static_cast<size_t>(rows) * q_heads * d);
    EXPECT_EQ(cudaMemcpy(bits.data(), dout.get(), bits.size() * 2, cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<float> out(bits.size());
    for (size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_f32(bits[i]);
    return out;
  }

  std::vector<float> run_cpu() const {
    std::vector<float> out(static_cast<size_t>(rows) * q_heads * d, 0.0f);
    cpu::DsaSparseAttentionArgs a;
    a.q = q.data();
    a.k_cache = k.data();
    a.v_cache = v.data();
    a.indices = indices.data();
    a.query_start = starts.data();
    a.block_tables = tables.data();
    a.seqs = static_cast<int>(seqs.size());
    a.max_pages = max_pages;
    a.topk = topk;
    a.q_heads = q_heads;
    a.kv_heads = kv_heads;
    a.head_dim = d;
    a.scale = 1.0f / std::sqrt(static_cast<float>(d));
    a.out = out.data();
    cpu::dsa_sparse_attention(a);
    return out;
  }

  // Rows whose selection is empty: their outputs must be exactly 0.
  std::vector<int> empty_rows() const {
    std::vector<int> out;
    for (int r = 0; r < rows; ++r) {
      const auto begin = indices.begin() + static_cast<size_t>(r) * topk;
      if (std::all_of(begin, begin + topk, [](int32_t j) { return j < 0; })) out.push_back(r);
    }
    return out;
  }
};

// Both kernels behind the prefill path: mma.sync (any sm_80+) and the Hopper TMA/wgmma one.
void expect_matches_cpu(const PrefillCase& c, const char* label) {
  const std::vector<float> ref = c.run_cpu();
  const size_t row_size = static_cast<size_t>(c.q_heads) * c.d;
  for (auto kernel : {kernels::SparsePrefillKernel::kMmaSync, kernels::SparsePrefillKernel::kHopper}) {
    const char* name = kernel == kernels::SparsePrefillKernel::kMmaSync ? "mma.sync" : "hopper";
    cudaError_t launch = cudaErrorUnknown;
    const std::vector<float> got = c.run_gpu(kernel, &launch);
    ASSERT_EQ(launch, cudaSuccess) << label << " " << name;
    const double err = relative_l2(got, ref);
    std::printf("[ error ] sparse prefill %s %s Hq=%d Hkv=%d d=%d topk=%d rows=%d rel_l2 %.3g (budget 1e-2)\n", name,
                label, c.q_heads, c.kv_heads, c.d, c.topk, c.rows, err);
    EXPECT_LT(err, 1e-2) << label << " " << name;
    for (int r : c.empty_rows()) {
      for (size_t i = 0; i < row_size; ++i) {
        ASSERT_EQ(got[r * row_size + i], 0.0f) << label << " " << name << " empty row " << r;
      }
    }
  }
}

struct Shape {
  int q_heads, kv_heads, d;
};
constexpr Shape kShapes[] = {{4, 4, 64}, {16, 4, 128}, {8, 2, 64}, {8, 8, 128}};

TEST(DsaSparsePrefill, SingleChunksMatchTheCpu) {
  // One sequence per step: chunk sizes 1, 63, 97, 300; contexts below and above topk 512.
  const SeqSpec chunks[] = {{1, 1}, {1, 1337}, {63, 63}, {63, 700}, {97, 97}, {97, 2100}, {300, 300}, {300, 1800}};
  uint32_t seed = 100;
  for (const Shape& sh : kShapes) {
    for (const SeqSpec& s : chunks) {
      PrefillCase c(sh.q_heads, sh.kv_heads, sh.d, 512, {s}, Selection::kRandom, ++seed);
      char label[64];
      std::snprintf(label, sizeof(label), "chunk %d at ctx %d", s.q_len, s.ctx);
      expect_matches_cpu(c, label);
    }
  }
}

TEST(DsaSparsePrefill, SeveralSequencesInOneStepMatchTheCpu) {
  // Mixed chunks in one step (the grid covers the longest; shorter sequences' extra tiles exit).
  const std::vector<SeqSpec> step = {{97, 1000}, {1, 40}, {300, 300}, {63, 2500}, {1, 3000}};
  uint32_t seed = 200;
  for (const Shape& sh : kShapes) {
    PrefillCase random(sh.q_heads, sh.kv_heads, sh.d, 512, step, Selection::kRandom, ++seed);
    expect_matches_cpu(random, "mixed step");
    PrefillCase padded(sh.q_heads, sh.kv_heads, sh.d, 512, step, Selection::kPaddedTails, ++seed);
    ASSERT_FALSE(padded.empty_rows().empty()) << "the padded case should hold a row that selects nothing";
    expect_matches_cpu(padded, "mixed step, -1 tails");
  }
}

TEST(DsaSparsePrefill, TilesThatSelectNothingGiveZeros) {
  // 200 rows whose first 130 select nothing: the first 128-row tile has no key at all (the Hopper
  // kernel's early exit); an odd page count (the bitmap's padding words).
  PrefillCase c(8, 2, 128, 64, {{200, 2450}}, Selection::kRandom, 500);
  std::fill(c.indices.begin(), c.indices.begin() + 130 * c.topk, -1);
  ASSERT_EQ(c.max_pages % 2, 1);
  expect_matches_cpu(c, "empty tile");
}

TEST(DsaSparsePrefill, ModelShapeTopk2048MatchesTheCpu) {
  // The 8B DSA layer's head layout and top-k, a 300-row chunk past topk and one whose rows all fit it.
  PrefillCase past(32, 8, 128, 2048, {{300, 4000}}, Selection::kRandom, 300);
  expect_matches_cpu(past, "8B shape ctx 4000");
  PrefillCase within(32, 8, 128, 2048, {{97, 1900}, {63, 2100}}, Selection::kPaddedTails, 301);
  expect_matches_cpu(within, "8B shape, -1 tails");
}

// CudaBackend vs CpuBackend on the same inputs (bf16-exact values): a prefill step (the masked
// flash path) and a decode-like step of one row per sequence (the gather path); same budget.
double backend_error(const PrefillCase& c) {
  StatusOr<std::unique_ptr<Backend>> cpu = create_backend("cpu");
  StatusOr<std::unique_ptr<Backend>> cuda = create_backend("cuda");
  EXPECT_TRUE(cpu.ok() && cuda.ok());
  if (!cpu.ok() || !cuda.ok()) return 1.0;
  Backend& be_cpu = **cpu;
  Backend& be_cuda = **cuda;
  const int64_t rows = c.rows, seqs = static_cast<int64_t>(c.seqs.size());
  const int64_t pages = static_cast<int64_t>(c.k.size()) / (int64_t{kPage} * c.kv_heads * c.d);
  auto args_on = [&](Backend& be, DType float_type) -> StatusOr<DsaSparseAttentionArgs> {
    DsaSparseAttentionArgs a;
    auto floats = [&](const std::vector<float>& v, std::initializer_list<int64_t> dims) -> StatusOr<Tensor> {
      ASSIGN_OR_RETURN(Tensor t, be.allocate(float_type, dims));
      if (float_type == DType::kF32) {
        RETURN_IF_ERROR(be.upload(v.data(), t));
      } else {
        RETURN_IF_ERROR(be.upload_converted(v.data(), DType::kF32, static_cast<int64_t>(v.size()), t));
      }
      return t;
    };
    auto ints = [&](const std::vector<int32_t>& v, std::initializer_list<int64_t> dims) -> StatusOr<Tensor> {
      ASSIGN_OR_RETURN(Tensor t, be.allocate(DType::kI32, dims));
      RETURN_IF_ERROR(be.upload(v.data(), t));
      return t;
    };
    ASSIGN_OR_RETURN(a.q, floats(c.q, {rows, c.q_heads, c.d}));
    ASSIGN_OR_RETURN(a.k_cache, floats(c.k, {pages, kPage, c.kv_heads, c.d}));
    ASSIGN_OR_RETURN(a.v_cache, floats(c.v, {pages, kPage, c.kv_heads, c.d}));
    ASSIGN_OR_RETURN(a.indices, ints(c.indices, {rows, c.topk}));
    ASSIGN_OR_RETURN(a.query_start, ints(c.starts, {seqs + 1}));
    ASSIGN_OR_RETURN(a.block_tables, ints(c.tables, {seqs, c.max_pages}));
    ASSIGN_OR_RETURN(a.out, be.allocate(float_type, {rows, c.q_heads, c.d}));
    std::vector<uint8_t> poison(a.out.num_bytes(), 0xFF);
    RETURN_IF_ERROR(be.upload(poison.data(), a.out));
    a.scale = 1.0f / std::sqrt(static_cast<float>(c.d));
    return a;
  };
  StatusOr<DsaSparseAttentionArgs> on_cpu = args_on(be_cpu, DType::kF32);
  StatusOr<DsaSparseAttentionArgs> on_cuda = args_on(be_cuda, DType::kBF16);
  EXPECT_TRUE(on_cpu.ok() && on_cuda.ok());
  if (!on_cpu.ok() || !on_cuda.ok()) return 1.0;
  Status st = be_cpu.dsa_sparse_attention(*on_cpu);
  EXPECT_TRUE(st.ok()) << st.to_string();
  st = be_cuda.dsa_sparse_attention(*on_cuda);
  EXPECT_TRUE(st.ok()) << st.to_string();
  std::vector<float> ref(static_cast<size_t>(rows) * c.q_heads * c.d);
  std::vector<uint16_t> bits(ref.size());
  EXPECT_TRUE(be_cpu.download(on_cpu->out, ref.data()).ok());
  EXPECT_TRUE(be_cuda.download(on_cuda->out, bits.data()).ok());
  std::vector<float> got(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) got[i] = bf16_to_f32(bits[i]);
  return relative_l2(got, ref);
}

TEST(DsaSparsePrefill, CudaBackendMatchesTheCpuBackendOnPrefillAndDecodeSteps) {
  PrefillCase prefill(32, 8, 128, 256, {{200, 900}}, Selection::kRandom, 400);
  const double prefill_err = backend_error(prefill);
  PrefillCase decode(32, 8, 128, 256, {{1, 900}, {1, 100}, {1, 2000}}, Selection::kPaddedTails, 401);
  const double decode_err = backend_error(decode);
  std::printf("[ error ] sparse prefill backend: prefill step rel_l2 %.3g, decode step rel_l2 %.3g (budget 1e-2)\n",
              prefill_err, decode_err);
  EXPECT_LT(prefill_err, 1e-2);
  EXPECT_LT(decode_err, 1e-2);
}

TEST(DsaSparsePrefill, RejectsAMissingWorkspace) {
  kernels::DsaSparseAttentionParams p;
  p.rows = 4;
  p.seqs = 1;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 64;
  p.topk = 8;
  p.max_pages = 1;
  EXPECT_EQ(kernels::launch_dsa_sparse_prefill_attention(p, 4, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace longbow
