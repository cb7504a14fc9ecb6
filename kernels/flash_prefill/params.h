// Flash prefill: tiled causal attention with online softmax over the paged KV cache.
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/common/paged_kv.h"

namespace longbow::kernels {

using FlashPrefillParams = PagedAttentionParams;

// Any mix of query lengths (1 included). bf16 in and out, fp32 accumulation and statistics.
// Any head_dim with attention_padded_dim(head_dim) != 0 (kernels/common/paged_kv.h), softcap >= 0
// (cudaErrorInvalidValue otherwise). Uses the TMA/wgmma kernel on compute capability 9.x and the
// mma.sync kernel elsewhere (flash_prefill_variants.h; the environment variable
// LONGBOW_PREFILL_KERNEL=sm80|sm90 forces one). Both have instances for padded sizes 64, 128 and
// 256. The kernels need opt-in shared memory; the first call per padded size sets the attribute.
cudaError_t launch_flash_prefill(const FlashPrefillParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
