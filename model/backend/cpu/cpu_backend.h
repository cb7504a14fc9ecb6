// CpuBackend: the reference implementation of every Backend op.
//
// fp32 everywhere (compute_dtype() is F32), plain loops over host memory, no threads. Sums that
// decide accuracy (norms, softmax statistics) run in double; dot products use several fp32 partial
// sums. Every argument is validated (dtype, shape, index ranges, aliasing) before any write, so a
// bad call returns INVALID_ARGUMENT naming the op and the tensor and changes nothing.
//
// The ops live in several files: cpu_backend.cc (memory), cpu_ops.cc (embedding, norms, RoPE,
// activation, gather), cpu_matmul.cc, cpu_attention.cc (KV append and paged attention), cpu_dsa*.cc,
// cpu_lightning.cc, cpu_moe.cc, cpu_mla.cc and cpu_sampling.cc.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>

#include "model/backend/backend.h"

namespace longbow {

struct CpuBackendOptions {
  // > 0: the backend reports this much memory (memory_info: total = limit, free = limit − what its
  // live tensors hold) and allocate() fails with RESOURCE_EXHAUSTED beyond it. Lets tests run the
  // memory planner against a small "device"; 0: host memory as /proc/meminfo reports it.
  size_t memory_limit_bytes = 0;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options = {});

  std::string_view name() const override { return "cpu"; }
  DType compute_dtype() const override { return DType::kF32; }

  StatusOr<Tensor> allocate(DType dtype, std::initializer_list<int64_t> dims) override;
  StatusOr<MemoryInfo> memory_info() const override;
  Status upload(const void* host, Tensor& dst) override;
  Status upload_converted(const void* host, DType src_dtype, int64_t count, Tensor& dst) override;
  Status download(const Tensor& src, void* host) override;
  Status synchronize() override { return Status::Ok(); }

  Status embed(const Tensor& table, const Tensor& ids, Tensor& out) override;
  Status embed_shard(const Tensor& table, const Tensor& ids, int64_t vocab_begin, Tensor& out) override;
  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override;
  Status add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps,
                      Tensor& out) override;
  Status matmul(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) override;
  Status rope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
              float attention_scaling) override;
  Status gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) override;
  Status layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) override;
  Status add_layer_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, const Tensor& bias, float eps,
                        Tensor& out) override;
  Status scale(Tensor& x, float factor) override;
  Status softcap(Tensor& x, float cap) override;
  Status append_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                   Tensor& v_cache) override;
  Status paged_attention(const PagedAttentionArgs& args) override;
  Status gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override;
  Status fill_random(Tensor& tensor, uint64_t seed, float mean, float std) override;  // cpu_fill_random.cc

  // DSA ops (cpu_dsa_ops.cc, over the reference in cpu_dsa.h).
  Status dsa_index_keys(const DsaIndexKeysArgs& args) override;
  Status dsa_index_scores(const DsaIndexScoresArgs& args) override;
  Status dsa_topk(const DsaTopkArgs& args) override;
  Status dsa_sparse_attention(const DsaSparseAttentionArgs& args) override;

  // The lightning hybrid's ops: cpu_lightning.cc, cpu_moe.cc.
  Status lightning_attention(const LightningAttentionArgs& args) override;
  Status moe_route(const MoeRouteArgs& args) override;
  Status moe_experts(const MoeExpertsArgs& args) override;

  // Multi-head latent attention (cpu_mla.cc).
  Status head_matmul(const HeadMatmulArgs& args) override;
  Status append_latent(const AppendLatentArgs& args) override;
  Status latent_attention(const LatentAttentionArgs& args) override;

  // Sampling (cpu_sampling.cc): the reference sampler on each row; every row is supported.
  bool supports_sampling(const SamplingRow& row, int vocab_size) const override;
  Status sample(Tensor& logits, std::span<const SamplingRow> rows, std::span<RowSample> out) override;

 private:
  size_t memory_limit_bytes_ = 0;
  // Bytes held by live tensors of this backend; shared with their deleters, which may outlive it.
  std::shared_ptr<std::atomic<size_t>> allocated_bytes_;
};

std::unique_ptr<Backend> create_cpu_backend(const CpuBackendOptions& options = {});

}  // namespace longbow
