// KV append: one block per token copies its K and V rows into their cache slot.
#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/common/device_utils.cuh"
#include "kernels/kv_append/params.h"

namespace longbow::kernels {
namespace {

constexpr int kThreads = 128;

template <bool kVec>
__global__ void __launch_bounds__(kThreads) kv_append_kernel(KvAppendParams p) {
  const int token = blockIdx.x;
  const int64_t slot = p.slots[token];
  if (slot < 0 || slot >= p.num_slots) return;
  const int64_t src = static_cast<int64_t>(token) * p.row_elems;
  const int64_t dst = slot * p.row_elems;
  if constexpr (kVec) {
    const int num_vec = p.row_elems / 8;
    for (int i = threadIdx.x; i < num_vec; i += kThreads) {
      reinterpret_cast<Bf16x8*>(static_cast<__nv_bfloat16*>(p.k_cache) + dst)[i] =
          reinterpret_cast<const Bf16x8*>(static_cast<const __nv_bfloat16*>(p.k) + src)[i];
      reinterpret_cast<Bf16x8*>(static_cast<__nv_bfloat16*>(p.v_cache) + dst)[i] =
          reinterpret_cast<const Bf16x8*>(static_cast<const __nv_bfloat16*>(p.v) + src)[i];
    }
  } else {
    for (int i = threadIdx.x; i < p.row_elems; i += kThreads) {
      static_cast<__nv_bfloat16*>(p.k_cache)[dst + i] = static_cast<const __nv_bfloat16*>(p.k)[src + i];
      static_cast<__nv_bfloat16*>(p.v_cache)[dst + i] = static_cast<const __nv_bfloat16*>(p.v)[src + i];
    }
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

cudaError_t launch_kv_append(const KvAppendParams& p, cudaStream_t stream) {
  if (p.tokens <= 0) return p.tokens == 0 ? cudaSuccess : cudaErrorInvalidValue;
  const bool vec = p.row_elems % 8 == 0 && aligned16(p.k) && aligned16(p.v) && aligned16(p.k_cache) &&
                   aligned16(p.v_cache);
  if (vec) {
    kv_append_kernel<true><<<p.tokens, kThreads, 0, stream>>>(p);
  } else {
    kv_append_kernel<false><<<p.tokens, kThreads, 0, stream>>>(p);
  }
  return cudaGetLastError();
}

}  // namespace longbow::kernels
