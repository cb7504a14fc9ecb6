// The CUDA backend's multi-head latent attention ops (contracts in model/backend/backend.h): argument
// checks on the host, then cuBLAS (head_matmul) or kernels/mla (append_latent, latent_attention) on
// the backend's stream. Nothing allocates, synchronises or reads a device tensor on the host, so all
// three can be captured in a CUDA graph (cuBLAS runs on the backend's fixed workspace). Called by
// CudaBackend (cuda_backend.cc).
#pragma once

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;
typedef struct cublasContext* cublasHandle_t;

namespace longbow::cuda_mla {

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;  // bound to `stream`, with a fixed workspace
  int num_sms = 0;
};

// x, w, out BF16: one strided-batched GEMM over the heads (fp32 accumulation).
Status head_matmul(const Context& ctx, const HeadMatmulArgs& args);
// latent, rope_key, cache BF16; slots I32.
Status append_latent(const Context& ctx, const AppendLatentArgs& args);
// q_latent, q_rope, cache, out BF16; index tensors I32. Shapes as supports_latent_attention takes.
Status latent_attention(const Context& ctx, const LatentAttentionArgs& args);

// OK for latent_dim (kv_lora_rank) even in [2, 512], rope_dim (qk_rope_head_dim) even in [0, 64]
// and num_heads >= 1, else UNIMPLEMENTED naming the value and the supported range.
Status supports_latent_attention(int latent_dim, int rope_dim, int num_heads);

}  // namespace longbow::cuda_mla
