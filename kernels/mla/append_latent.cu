// Latent cache append (params.h): one block per token copies its latent and RoPE key rows, element
// by element, into the token's cache row. A few KB per step; the copy is not worth vectorising.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/mla/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads) append_latent_kernel(AppendLatentParams p) {
  const int token = blockIdx.x;
  const int64_t slot = p.slots[token];
  if (slot < 0 || slot >= p.num_slots) return;  // −1: a padding row, not stored
  const int width = p.latent_dim + p.rope_dim;
  const auto* latent = static_cast<const __nv_bfloat16*>(p.latent) + static_cast<int64_t>(token) * p.latent_dim;
  const auto* rope = static_cast<const __nv_bfloat16*>(p.rope_key) + static_cast<int64_t>(token) * p.rope_dim;
  auto* row = static_cast<__nv_bfloat16*>(p.cache) + slot * width;
  for (int i = threadIdx.x; i < width; i += kThreads) {
    row[i] = i < p.latent_dim ? latent[i] : rope[i - p.latent_dim];
  }
}

}  // namespace

cudaError_t launch_append_latent(const AppendLatentParams& p, cudaStream_t stream) {
  if (p.tokens < 0 || p.latent_dim < 0 || p.rope_dim < 0 || p.num_slots < 0) return cudaErrorInvalidValue;
  if (p.tokens == 0 || p.latent_dim + p.rope_dim == 0) return cudaSuccess;
  append_latent_kernel<<<static_cast<unsigned>(p.tokens), kThreads, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace longbow::kernels
