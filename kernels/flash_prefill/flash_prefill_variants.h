// The flash prefill implementations behind launch_flash_prefill (params.h), exposed for tests
// and benchmarks that compare them.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/flash_prefill/params.h"

namespace longbow::kernels {

// FlashAttention-2 style on mma.sync: any sm_80+ GPU.
cudaError_t launch_flash_prefill_sm80(const FlashPrefillParams& params, cudaStream_t stream);

// Hopper, FlashAttention-3 arrangement (TMA page loads, a producer warpgroup and two wgmma consumer
// warpgroups with register reallocation, 128-key tiles, intra- and inter-warpgroup overlap);
// sm_90a image only: cudaErrorNoKernelImageForDevice or similar elsewhere.
cudaError_t launch_flash_prefill_sm90(const FlashPrefillParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
