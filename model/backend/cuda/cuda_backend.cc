// CudaBackend: Backend on one GPU. Every op checks its arguments on the host, then launches on the
// backend's one stream; nothing here synchronises except download(), upload() and synchronize().
#include "model/backend/cuda/cuda_backend.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "common/half.h"
#include "kernels/moe/params.h"
#include "kernels/common/paged_kv.h"
#include "kernels/elementwise/params.h"
#include "kernels/flash_prefill/params.h"
#include "kernels/gather/params.h"
#include "kernels/gemm/params.h"
#include "kernels/kv_append/params.h"
#include "kernels/norm/params.h"
#include "kernels/paged_decode/params.h"
#include "kernels/rope/params.h"
#include "model/backend/cuda/cuda_check.h"
#include "model/backend/cuda/cuda_dsa.h"
#include "model/backend/cuda/cuda_graph.h"
#include "model/backend/cuda/cuda_lightning.h"
#include "model/backend/cuda/cuda_mla.h"
#include "model/backend/cuda/cuda_moe.h"
#include "model/backend/cuda/cuda_pointwise.h"
#include "model/backend/cuda/cuda_sampling.h"
#include "model/backend/cuda/cuda_support.h"
#include "model/backend/cuda/op_checks.h"

namespace longbow {
namespace {

static_assert(kernels::kKvPageSize == kPageSize, "kernels and model disagree on the KV page size");

using op_checks::dtype_is;
using op_checks::fits_int;
using op_checks::has_data;
using op_checks::shape_is;

constexpr size_t kCublasWorkspaceBytes = 32u << 20;  // fixed, so GEMMs can be captured in CUDA graphs

std::string mib(size_t bytes) { return std::to_string(bytes >> 20) + " MiB"; }

class CudaBackend final : public Backend {
 public:
  ~CudaBackend() override {
    // Errors here cannot be reported; the process is tearing the device state down anyway.
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  Status init(const CudaBackendOptions& options) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      return unavailable(std::string("no CUDA device: ") + (err == cudaSuccess ? "none found" : cudaGetErrorString(err)));
    }
    if (options.device < 0 || options.device >= count) {
      return unavailable("CUDA device " + std::to_string(options.device) + " does not exist (" + std::to_string(count) +
                         " found)");
    }
    device_ = options.device;
    skinny_gemm_ = options.skinny_gemm;
    CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
    if (prop.major < 8) {
      return unimplemented(std::string("CUDA device ") + prop.name + " has compute capability " +
                           std::to_string(prop.major) + "." + std::to_string(prop.minor) + "; longbow needs 8.0+");
    }
    num_sms_ = prop.multiProcessorCount;
    device_name_ = prop.name;
    CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUBLAS_RETURN_IF_ERROR(cublasCreate(&cublas_));
    CUBLAS_RETURN_IF_ERROR(cublasSetStream(cublas_, stream_));
    ASSIGN_OR_RETURN(cublas_workspace_, allocate(DType::kI32, {static_cast<int64_t>(kCublasWorkspaceBytes / 4)}));
    CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(cublas_, cublas_workspace_.data, kCublasWorkspaceBytes));
    spdlog::info("CUDA backend on device {} ({}, {} SMs, {} GiB){}", device_, device_name_, num_sms_,
                 prop.totalGlobalMem >> 30, skinny_gemm_ ? "" : "; skinny GEMM off: every GEMM on cuBLAS");
    return Status::Ok();
  }

  std::string_view name() const override { return "cuda"; }
  DType compute_dtype() const override { return DType::kBF16; }

  Status check_supported(const ModelConfig& config) const override { return check_cuda_supported(config); }

  Status supports(const OpQuery& query) const override {
    if (query.op == "embed_shard") {
      return unimplemented("cuda: vocabulary-parallel embedding (tensor parallelism runs on the cpu backend only; "
                           "the NCCL path is not built yet)");
    }
    if (query.op == "lightning_attention") return cuda_lightning::supports_head_dim(query.head_dim);
    if (query.op == "latent_attention") {  // head_dim = latent + rope dims, rotary_dim = rope dims
      return cuda_mla::supports_latent_attention(query.head_dim - query.rotary_dim, query.rotary_dim,
                                                 query.num_heads);
    }
    return Status::Ok();
  }

  // ---- memory ----
  StatusOr<Tensor> allocate(DType dtype, std::initializer_list<int64_t> dims) override {
    RETURN_IF_ERROR(not_capturing("allocate"));
    if (dims.size() > static_cast<size_t>(kMaxTensorRank)) {
      return invalid_argument("allocate: rank " + std::to_string(dims.size()) + " exceeds " +
                              std::to_string(kMaxTensorRank));
    }
    Tensor t;
    t.dtype = dtype;
    t.rank = static_cast<int>(dims.size());
    size_t i = 0;
    for (int64_t d : dims) {
      if (d < 0) return invalid_argument("allocate: negative dimension " + std::to_string(d));
      t.dims[i++] = d;
    }
    const size_t bytes = t.num_bytes();
    if (bytes == 0) return t;
    void* ptr = nullptr;
    cudaError_t err = cudaMalloc(&ptr, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();  // allocation failures are not sticky; clear the last-error slot anyway
      size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      return resource_exhausted("cudaMalloc of " + mib(bytes) + " for a " + std::string(dtype_name(dtype)) + " " +
                                t.shape_string() + " tensor failed (" + cudaGetErrorString(err) + "; " +
                                mib(free_bytes) + " free of " + mib(total_bytes) + ")");
    }
    t.storage = std::shared_ptr<void>(ptr, [](void* p) { cudaFree(p); });
    t.data = ptr;
    return t;
  }

  StatusOr<MemoryInfo> memory_info() const override {
    MemoryInfo info;
    CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&info.free_bytes, &info.total_bytes));
    return info;
  }

  Status upload(const void* host, Tensor& dst) override {
    RETURN_IF_ERROR(not_capturing("upload"));
    RETURN_IF_ERROR(has_data("upload", "dst", dst));
    if (dst.num_bytes() == 0) return Status::Ok();
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst.data, host, dst.num_bytes(), cudaMemcpyHostToDevice, stream_));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // the host buffer may die on return
    return Status::Ok();
  }

  Status upload_converted(const void* host, DType src_dtype, int64_t count, Tensor& dst) override {
    if (count != dst.numel()) {
      return invalid_argument("upload_converted: " + std::to_string(count) + " elements for a tensor of " +
                              std::to_string(dst.numel()));
    }
    if (src_dtype == dst.dtype) return upload(host, dst);
    auto read = [&](int64_t i) -> float {
      switch (src_dtype) {
        case DType::kF32: return static_cast<const float*>(host)[i];
        case DType::kF16: return f16_to_f32(static_cast<const uint16_t*>(host)[i]);
        case DType::kBF16: return bf16_to_f32(static_cast<const uint16_t*>(host)[i]);
        default: return 0.0f;
      }
    };
    if (src_dtype != DType::kF32 && src_dtype != DType::kF16 && src_dtype != DType::kBF16) {
      return unimplemented("upload_converted: source dtype " + std::string(dtype_name(src_dtype)));
    }
    const auto n = static_cast<size_t>(count);
    if (dst.dtype == DType::kBF16) {
      std::vector<uint16_t> staged(n);
      for (size_t i = 0; i < n; ++i) staged[i] = f32_to_bf16(read(static_cast<int64_t>(i)));
      return upload(staged.data(), dst);
    }
    if (dst.dtype == DType::kF32) {
      std::vector<float> staged(n);
      for (size_t i = 0; i < n; ++i) staged[i] = read(static_cast<int64_t>(i));
      return upload(staged.data(), dst);
    }
    return unimplemented("upload_converted: destination dtype " + std::string(dtype_name(dst.dtype)));
  }

  Status download(const Tensor& src, void* host) override {
    RETURN_IF_ERROR(not_capturing("download"));
    RETURN_IF_ERROR(has_data("download", "src", src));
    if (src.num_bytes() > 0) {
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, src.data, src.num_bytes(), cudaMemcpyDeviceToHost, stream_));
    }
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status synchronize() override {
    RETURN_IF_ERROR(not_capturing("synchronize"));
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  // ---- ops ----
  Status embed(const Tensor& table, const Tensor& ids, Tensor& out) override {
    constexpr std::string_view op = "embed";
    RETURN_IF_ERROR(shape_is(op, "table", table, {-1, -1}));
    RETURN_IF_ERROR(dtype_is(op, "ids", ids, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "ids", ids, {-1}));
    RETURN_IF_ERROR(shape_is(op, "out", out, {ids.dim(0), table.dim(1)}));
    RETURN_IF_ERROR(dtype_is(op, "out", out, table.dtype));
    return gather(op, table, ids, out);
  }

  Status gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) override {
    constexpr std::string_view op = "gather_rows";
    RETURN_IF_ERROR(shape_is(op, "x", x, {-1, -1}));
    RETURN_IF_ERROR(dtype_is(op, "rows", rows, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "rows", rows, {-1}));
    RETURN_IF_ERROR(shape_is(op, "out", out, {rows.dim(0), x.dim(1)}));
    RETURN_IF_ERROR(dtype_is(op, "out", out, x.dtype));
    return gather(op, x, rows, out);
  }

  Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) override {
    constexpr std::string_view op = "rms_norm";
    RETURN_IF_ERROR(check_bf16_matrix(op, "x", x));
    RETURN_IF_ERROR(check_bf16(op, "weight", weight, {x.dim(1)}));
    RETURN_IF_ERROR(check_bf16(op, "out", out, {x.dim(0), x.dim(1)}));
    kernels::RmsNormParams p;
    p.x = x.data;
    p.weight = weight.data;
    p.out = out.data;
    p.rows = static_cast<int>(x.dim(0));
    p.cols = static_cast<int>(x.dim(1));
    p.eps = eps;
    return cuda_status(kernels::launch_rms_norm(p, stream_), op);
  }

  Status add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps, Tensor& out) override {
    constexpr std::string_view op = "add_rms_norm";
    RETURN_IF_ERROR(check_bf16_matrix(op, "residual", residual));
    RETURN_IF_ERROR(check_bf16(op, "delta", delta, {residual.dim(0), residual.dim(1)}));
    RETURN_IF_ERROR(check_bf16(op, "weight", weight, {residual.dim(1)}));
    RETURN_IF_ERROR(check_bf16(op, "out", out, {residual.dim(0), residual.dim(1)}));
    kernels::RmsNormParams p;
    p.residual = residual.data;
    p.delta = delta.data;
    p.weight = weight.data;
    p.out = out.data;
    p.rows = static_cast<int>(residual.dim(0));
    p.cols = static_cast<int>(residual.dim(1));
    p.eps = eps;
    return cuda_status(kernels::launch_add_rms_norm(p, stream_), op);
  }

  Status matmul(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) override {
    constexpr std::string_view op = "matmul";
    RETURN_IF_ERROR(check_bf16_matrix(op, "x", x));
    RETURN_IF_ERROR(check_bf16(op, "w", w, {-1, x.dim(1)}));
    const int64_t m = x.dim(0), k = x.dim(1), n = w.dim(0);
    RETURN_IF_ERROR(shape_is(op, "out", out, {m, n}));
    if (out.dtype != DType::kBF16 && out.dtype != DType::kF32) {
      return invalid_argument("matmul: out has dtype " + std::string(dtype_name(out.dtype)) + ", expected BF16 or F32");
    }
    const bool has_bias = bias.data != nullptr;
    if (has_bias) RETURN_IF_ERROR(check_bf16(op, "bias", bias, {n}));
    RETURN_IF_ERROR(fits_int(op, "m", m));
    RETURN_IF_ERROR(fits_int(op, "n", n));
    RETURN_IF_ERROR(fits_int(op, "k", k));
    if (m == 0 || n == 0) return Status::Ok();
    if (skinny_gemm_ && m <= kernels::kSkinnyGemmMaxRows) {
      kernels::SkinnyGemmParams p;
      p.x = x.data;
      p.w = w.data;
      p.bias = has_bias ? bias.data : nullptr;
      p.out = out.data;
      p.m = static_cast<int>(m);
      p.n = static_cast<int>(n);
      p.k = static_cast<int>(k);
      p.out_f32 = out.dtype == DType::kF32;
      if (kernels::skinny_gemm_supported(p)) return cuda_status(kernels::launch_skinny_gemm(p, stream_), "matmul");
    }
    // Row-major out[m][n] = x[m][k] · w[n][k]ᵀ is column-major outᵀ[n][m] = w[n][k] · xᵀ: A = w
    // (stored k-major, transposed), B = xᵀ (k-major, as is).
    const float alpha = 1.0f, beta = 0.0f;
    const cudaDataType_t out_type = out.dtype == DType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
    CUBLAS_RETURN_IF_ERROR(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                                        static_cast<int>(k), &alpha, w.data, CUDA_R_16BF, static_cast<int>(k), x.data,
                                        CUDA_R_16BF, static_cast<int>(k), &beta, out.data, out_type,
                                        static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (!has_bias) return Status::Ok();
    kernels::BiasAddParams p;
    p.out = out.data;
    p.bias = bias.data;
    p.rows = m;
    p.cols = n;
    p.out_f32 = out.dtype == DType::kF32;
    return cuda_status(kernels::launch_bias_add(p, stream_), "matmul bias");
  }

  Status rope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
              float attention_scaling) override {
    constexpr std::string_view op = "rope";
    RETURN_IF_ERROR(check_bf16(op, "q", q, {-1, -1, -1}));
    RETURN_IF_ERROR(check_bf16(op, "k", k, {q.dim(0), -1, q.dim(2)}));
    RETURN_IF_ERROR(dtype_is(op, "positions", positions, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "positions", positions, {q.dim(0)}));
    RETURN_IF_ERROR(dtype_is(op, "inv_freq", inv_freq, DType::kF32));
    RETURN_IF_ERROR(shape_is(op, "inv_freq", inv_freq, {-1}));
    const int64_t rotary_dim = 2 * inv_freq.dim(0);
    if (rotary_dim > q.dim(2)) {
      return invalid_argument("rope: inv_freq " + inv_freq.shape_string() + " rotates more than head_dim " +
                              std::to_string(q.dim(2)));
    }
    kernels::RopeParams p;
    p.q = q.data;
    p.k = k.data;
    p.positions = positions.as<int>();
    p.inv_freq = inv_freq.as<float>();
    p.tokens = static_cast<int>(q.dim(0));
    p.num_q_heads = static_cast<int>(q.dim(1));
    p.num_kv_heads = static_cast<int>(k.dim(1));
    p.head_dim = static_cast<int>(q.dim(2));
    p.rotary_dim = static_cast<int>(rotary_dim);
    p.attention_scaling = attention_scaling;
    return cuda_status(kernels::launch_rope(p, stream_), op);
  }

  // Row-wise and element-wise ops of the local/global families: model/backend/cuda/cuda_pointwise.cc.
  Status gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) override {
    return cuda_pointwise::gated_activation(stream_, act, gate, up, out);
  }
  Status layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) override {
    return cuda_pointwise::layer_norm(stream_, x, weight, bias, eps, out);
  }
  Status add_layer_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, const Tensor& bias, float eps,
                        Tensor& out) override {
    return cuda_pointwise::add_layer_norm(stream_, residual, delta, weight, bias, eps, out);
  }
  Status scale(Tensor& x, float factor) override { return cuda_pointwise::scale(stream_, x, factor); }
  Status softcap(Tensor& x, float cap) override { return cuda_pointwise::softcap(stream_, x, cap); }

  Status append_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache, Tensor& v_cache) override {
    constexpr std::string_view op = "append_kv";
    RETURN_IF_ERROR(check_bf16(op, "k", k, {-1, -1, -1}));
    RETURN_IF_ERROR(check_bf16(op, "v", v, {k.dim(0), k.dim(1), k.dim(2)}));
    RETURN_IF_ERROR(dtype_is(op, "slots", slots, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "slots", slots, {k.dim(0)}));
    RETURN_IF_ERROR(check_bf16(op, "k_cache", k_cache, {-1, kPageSize, k.dim(1), k.dim(2)}));
    RETURN_IF_ERROR(check_bf16(op, "v_cache", v_cache, {k_cache.dim(0), kPageSize, k.dim(1), k.dim(2)}));
    kernels::KvAppendParams p;
    p.k = k.data;
    p.v = v.data;
    p.slots = slots.as<int>();
    p.k_cache = k_cache.data;
    p.v_cache = v_cache.data;
    p.tokens = static_cast<int>(k.dim(0));
    p.row_elems = static_cast<int>(k.dim(1) * k.dim(2));
    p.num_slots = k_cache.dim(0) * kPageSize;
    return cuda_status(kernels::launch_kv_append(p, stream_), op);
  }

  Status paged_attention(const PagedAttentionArgs& args) override {
    constexpr std::string_view op = "paged_attention";
    if (!(args.softcap >= 0.0f) || !std::isfinite(args.softcap)) {
      return invalid_argument(fmt::format("paged_attention: softcap {} must be finite and >= 0", args.softcap));
    }
    if (args.softcap > 0.0f && !(args.scale > 0.0f)) {  // the kernels cap raw scores in units of 1 / scale
      return invalid_argument(fmt::format("paged_attention: softcap needs scale > 0 (got {})", args.scale));
    }
    if (args.sliding_window < 0) {
      return invalid_argument(fmt::format("paged_attention: sliding_window {} is negative", args.sliding_window));
    }
    RETURN_IF_ERROR(check_bf16(op, "q", args.q, {-1, -1, -1}));
    const int64_t total_q = args.q.dim(0), num_q_heads = args.q.dim(1), head_dim = args.q.dim(2);
    RETURN_IF_ERROR(check_bf16(op, "k_cache", args.k_cache, {-1, kPageSize, -1, head_dim}));
    const int64_t num_kv_heads = args.k_cache.dim(2);
    RETURN_IF_ERROR(
        check_bf16(op, "v_cache", args.v_cache, {args.k_cache.dim(0), kPageSize, num_kv_heads, head_dim}));
    RETURN_IF_ERROR(check_bf16(op, "out", args.out, {total_q, num_q_heads, head_dim}));
    RETURN_IF_ERROR(dtype_is(op, "query_start", args.query_start, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "query_start", args.query_start, {-1}));
    const int64_t num_seqs = args.query_start.dim(0) - 1;
    if (num_seqs < 0) return invalid_argument("paged_attention: query_start is empty");
    RETURN_IF_ERROR(dtype_is(op, "context_lens", args.context_lens, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "context_lens", args.context_lens, {num_seqs}));
    RETURN_IF_ERROR(dtype_is(op, "block_tables", args.block_tables, DType::kI32));
    RETURN_IF_ERROR(shape_is(op, "block_tables", args.block_tables, {num_seqs, -1}));
    if (head_dim > 256 || kernels::attention_padded_dim(static_cast<int>(head_dim)) == 0) {
      return unimplemented(
          fmt::format("paged_attention: head_dim {} (supported: multiples of 8 from 8 to 256)", head_dim));
    }
    if (num_kv_heads <= 0 || num_q_heads % num_kv_heads != 0 || num_q_heads / num_kv_heads > 16) {
      return invalid_argument("paged_attention: " + std::to_string(num_q_heads) + " query heads over " +
                              std::to_string(num_kv_heads) + " KV heads (need a multiple, group <= 16)");
    }
    if (args.max_query_len < 0 || args.max_context_len < 0 || args.max_query_len > args.max_context_len) {
      return invalid_argument("paged_attention: max_query_len " + std::to_string(args.max_query_len) +
                              " / max_context_len " + std::to_string(args.max_context_len) + " are inconsistent");
    }
    if (args.block_tables.dim(1) * kPageSize < args.max_context_len) {
      return invalid_argument("paged_attention: block_tables " + args.block_tables.shape_string() +
                              " cannot cover max_context_len " + std::to_string(args.max_context_len));
    }
    if (num_seqs == 0 || total_q == 0) return Status::Ok();

    kernels::PagedAttentionParams p;
    p.q = args.q.data;
    p.k_cache = args.k_cache.data;
    p.v_cache = args.v_cache.data;
    p.query_start = args.query_start.as<int>();
    p.context_lens = args.context_lens.as<int>();
    p.block_tables = args.block_tables.as<int>();
    p.out = args.out.data;
    p.num_seqs = static_cast<int>(num_seqs);
    p.num_q_heads = static_cast<int>(num_q_heads);
    p.num_kv_heads = static_cast<int>(num_kv_heads);
    p.head_dim = static_cast<int>(head_dim);
    p.max_pages_per_seq = static_cast<int>(args.block_tables.dim(1));
    p.max_query_len = args.max_query_len;
    p.max_context_len = args.max_context_len;
    p.scale = args.scale;
    p.sliding_window = args.sliding_window;
    p.softcap = args.softcap;

    // One token per sequence: flash-decoding. Anything else (prefill chunks, mixed batches): flash prefill.
    if (args.max_query_len == 1 && total_q == num_seqs) {
      kernels::PagedDecodeParams d;
      d.attn = p;
      d.num_splits = kernels::choose_decode_splits(p.num_seqs, p.num_kv_heads, p.max_context_len, num_sms_);
      const size_t bytes = kernels::decode_workspace_bytes(p.num_seqs, p.num_q_heads, p.head_dim, d.num_splits);
      if (bytes > 0) {
        ASSIGN_OR_RETURN(d.workspace, workspace(bytes));
      }
      return cuda_status(kernels::launch_paged_decode(d, stream_), "paged_attention (decode)");
    }
    return cuda_status(kernels::launch_flash_prefill(p, stream_), "paged_attention (prefill)");
  }

  // Lightning hybrid ops: model/backend/cuda/cuda_lightning.cc and cuda_moe.cc.
  Status lightning_attention(const LightningAttentionArgs& args) override {
    return cuda_lightning::lightning_attention(stream_, args);
  }
  Status moe_route(const MoeRouteArgs& args) override { return cuda_moe::route(moe_context(), args); }
  Status moe_experts(const MoeExpertsArgs& args) override { return cuda_moe::experts(moe_context(), args); }

  // Multi-head latent attention ops: model/backend/cuda/cuda_mla.cc.
  Status head_matmul(const HeadMatmulArgs& args) override { return cuda_mla::head_matmul(mla_context(), args); }
  Status append_latent(const AppendLatentArgs& args) override {
    return cuda_mla::append_latent(mla_context(), args);
  }
  Status latent_attention(const LatentAttentionArgs& args) override {
    return cuda_mla::latent_attention(mla_context(), args);
  }

  // ---- graphs (model/backend/cuda/cuda_graph.cc) ----
  bool supports_graphs() const override { return true; }

  StatusOr<std::unique_ptr<BackendGraph>> capture_graph(const std::function<Status()>& issue) override {
    if (capturing_) return internal_error("capture_graph: a capture is already running");
    capturing_ = true;
    // The recorded kernels point into the current scratch buffers; the graph keeps them alive even
    // if a later eager op grows (replaces) them.
    StatusOr<std::unique_ptr<BackendGraph>> graph =
        cuda_graph::capture(stream_, issue, {workspace_.storage, cublas_workspace_.storage});
    capturing_ = false;
    return graph;
  }

  // DSA ops: model/backend/cuda/cuda_dsa.cc.
  Status dsa_index_keys(const DsaIndexKeysArgs& args) override { return cuda_dsa::index_keys(dsa_context(), args); }
  Status dsa_index_scores(const DsaIndexScoresArgs& args) override {
    return cuda_dsa::index_scores(dsa_context(), args);
  }
  Status dsa_topk(const DsaTopkArgs& args) override { return cuda_dsa::topk(dsa_context(), args); }
  Status dsa_sparse_attention(const DsaSparseAttentionArgs& args) override {
    return cuda_dsa::sparse_attention(dsa_context(), args);
  }
  StatusOr<size_t> reserve_moe_workspace(int64_t tokens, int top_k, int64_t experts, int64_t hidden,
                                         int64_t inter) override {
    RETURN_IF_ERROR(not_capturing("reserve_moe_workspace"));
    const size_t bytes = kernels::moe_experts_workspace_bytes(static_cast<int>(tokens), top_k, static_cast<int>(experts),
                                                              static_cast<int>(hidden), static_cast<int>(inter));
    if (bytes > 0) RETURN_IF_ERROR(workspace(bytes).status());
    return workspace_.num_bytes();
  }

  StatusOr<size_t> reserve_dsa_workspace(std::span<const DsaWorkspaceShape> shapes) override {
    RETURN_IF_ERROR(not_capturing("reserve_dsa_workspace"));
    size_t bytes = 0;
    for (const DsaWorkspaceShape& shape : shapes) {
      bytes = std::max(bytes, cuda_dsa::workspace_bytes(dsa_context(), shape));
    }
    if (bytes > 0) RETURN_IF_ERROR(workspace(bytes).status());
    return workspace_.num_bytes();
  }

  Status fill_random(Tensor& tensor, uint64_t seed, float mean, float std) override {
    if (tensor.dtype != DType::kBF16 && tensor.dtype != DType::kF32) {
      return invalid_argument("fill_random: tensor is " + std::string(dtype_name(tensor.dtype)) +
                              ", expected BF16 or F32");
    }
    if (!std::isfinite(mean) || !std::isfinite(std) || std < 0.0f) {
      return invalid_argument("fill_random: mean " + std::to_string(mean) + " and std " + std::to_string(std) +
                              " must be finite, std >= 0");
    }
    if (tensor.numel() == 0) return Status::Ok();
    RETURN_IF_ERROR(has_data("fill_random", "tensor", tensor));
    // The same fp32 expressions as CpuBackend::fill_random, so both derive identical bounds.
    const float half_width = std::sqrt(3.0f) * std;
    kernels::FillRandomParams p;
    p.out = tensor.data;
    p.count = tensor.numel();
    p.seed = seed;
    p.low = mean - half_width;
    p.high = mean + half_width;
    return cuda_status(tensor.dtype == DType::kBF16 ? kernels::launch_fill_random_bf16(p, stream_)
                                                    : kernels::launch_fill_random_f32(p, stream_),
                       "fill_random");
  }

  bool supports_sampling(const SamplingRow& row, int vocab_size) const override {
    return cuda_sampling::supports(row, vocab_size);
  }
  Status sample(Tensor& logits, std::span<const SamplingRow> rows, std::span<RowSample> out) override {
    RETURN_IF_ERROR(not_capturing("sample"));
    return sampler_.sample(
        stream_, [this](int64_t bytes) { return allocate(DType::kI32, {(bytes + 3) / 4}); }, logits, rows, out);
  }

 private:
  Status check_bf16(std::string_view op, std::string_view name, const Tensor& t, std::initializer_list<int64_t> dims) {
    RETURN_IF_ERROR(dtype_is(op, name, t, DType::kBF16));
    RETURN_IF_ERROR(shape_is(op, name, t, dims));
    return has_data(op, name, t);
  }

  Status check_bf16_matrix(std::string_view op, std::string_view name, const Tensor& t) {
    RETURN_IF_ERROR(check_bf16(op, name, t, {-1, -1}));
    RETURN_IF_ERROR(fits_int(op, name, t.dim(0)));
    return fits_int(op, name, t.dim(1));
  }

  Status gather(std::string_view op, const Tensor& src, const Tensor& rows, Tensor& out) {
    RETURN_IF_ERROR(fits_int(op, "rows", rows.dim(0)));
    if (rows.dim(0) == 0) return Status::Ok();
    if (src.dim(0) == 0) return invalid_argument(std::string(op) + ": the source has no rows");
    kernels::GatherRowsParams p;
    p.src = src.data;
    p.rows = rows.as<int>();
    p.out = out.data;
    p.src_rows = src.dim(0);
    p.out_rows = static_cast<int>(rows.dim(0));
    p.row_bytes = static_cast<int64_t>(src.dim(1) * static_cast<int64_t>(dtype_size(src.dtype)));
    return cuda_status(kernels::launch_gather_rows(p, stream_), op);
  }

  cuda_dsa::Context dsa_context() {
    return cuda_dsa::Context{stream_, num_sms_, [this](size_t bytes) { return workspace(bytes); }};
  }

  cuda_mla::Context mla_context() const { return cuda_mla::Context{stream_, cublas_, num_sms_}; }

  cuda_moe::Context moe_context() {
    return cuda_moe::Context{stream_, [this](size_t bytes) { return workspace(bytes); }};
  }

  // Host-synchronising calls would invalidate a graph capture; refuse them with a clear reason.
  Status not_capturing(std::string_view what) const {
    if (!capturing_) return Status::Ok();
    return internal_error(std::string(what) + " inside a graph capture (only launches may be captured)");
  }

  // Scratch that grows on demand and is reused; ops on the one stream never overlap, so one buffer
  // serves every op. Growing waits for the stream (the old buffer may still be in use), so it cannot
  // happen inside a graph capture: run the captured launches eagerly once first.
  StatusOr<void*> workspace(size_t bytes) {
    if (workspace_.num_bytes() < bytes) {
      if (capturing_) {
        return internal_error("graph capture: an op needs " + mib(bytes) + " of scratch but " +
                              mib(workspace_.num_bytes()) + " is allocated (growing it would synchronise)");
      }
      CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
      workspace_ = Tensor{};
      const size_t grown = std::max(bytes, size_t{4} << 20);
      ASSIGN_OR_RETURN(workspace_, allocate(DType::kF32, {static_cast<int64_t>((grown + 3) / 4)}));
    }
    return workspace_.data;
  }

  int device_ = 0;
  bool skinny_gemm_ = true;
  int num_sms_ = 0;
  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  Tensor cublas_workspace_;
  Tensor workspace_;
  cuda_sampling::DeviceSampler sampler_;  // its own buffers (graphs hold workspace_'s address)
  bool capturing_ = false;  // inside capture_graph: no synchronisation, allocation or growth
};

}  // namespace

StatusOr<std::unique_ptr<Backend>> create_cuda_backend(const CudaBackendOptions& options) {
  auto backend = std::make_unique<CudaBackend>();
  RETURN_IF_ERROR(backend->init(options));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace longbow
