// Hopper (sm_90a) copy and synchronisation primitives used by the TMA flash prefill kernel: tensor
// copies (TMA) that complete on an mbarrier's transaction count, per-warpgroup register
// reallocation, and named barriers between warpgroups. Device code only compiles them under
// __CUDA_ARCH_FEAT_SM90_ALL (the caller guards).
#pragma once

#include <cstdint>

namespace longbow::kernels::hopper {

// One arrival on the mbarrier plus `bytes` of expected transaction count: the phase completes once
// every arrival happened and the copies charged to it delivered `bytes`.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}

// Copies the box at coordinates (c0, c1, c2) (innermost first, in elements) of the 3-D tensor
// described by `tensor_map` (a __grid_constant__ kernel parameter) into shared memory at `dst`
// (its alignment must suit the map's swizzle: 1024 bytes for 128-byte swizzle) and charges the
// bytes to `bar`. Without a cluster launch a CTA's shared::cta addresses are valid shared::cluster ones.
__device__ __forceinline__ void tma_load_3d(uint32_t dst, const void* tensor_map, uint32_t bar, int c0, int c1,
                                            int c2) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(tensor_map)), "r"(c0), "r"(c1), "r"(c2), "r"(bar)
      : "memory");
}

// Per-warpgroup register budget (every thread of the warpgroup executes it; the kernel needs a
// register cap at entry, i.e. __launch_bounds__(threads, 1)).
template <int kRegs>
__device__ __forceinline__ void release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

// Named barriers (ids 1..15; 0 is __syncthreads): `threads` counts every participant, the ones that
// wait and the ones that only arrive.
__device__ __forceinline__ void named_barrier_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_barrier_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace longbow::kernels::hopper
