// The flash prefill implementations behind launch_flash_prefill (params.h), exposed for tests
// and benchmarks that compare them.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/flash_prefill/params.h"

namespace longbow::kernels {

// FlashAttention-2 style on mma.sync: any sm_80+ GPU.
cudaError_t launch_flash_prefill_sm80(const FlashPrefillParams& params, cudaStream_t stream);

// Hopper, FlashAttention-3 arrangement (TMA page loads, a producer warpgroup and two wgmma consumer
// warpgroups with register reallocation, 128-key tiles, intra- and inter-warpgroup overlap);
// sm_90a image only: cudaErrorNoKernelImageForDevice or similar elsewhere.
cudaError_t launch_flash_prefill_sm90(const FlashPrefillParams& params, cudaStream_t stream);

// Per-row key bitmaps for the *_selected launchers: row r (a row of q) sees key j iff bit
// j % 32 of bits[r · words_per_row + j / 32] is set; last[r] is the largest such j (-1: none).
struct PrefillSelection {
  const uint32_t* bits = nullptr;
  const int* last = nullptr;
  int words_per_row = 0;  // a multiple of 4 (128-key tiles read four words), covering every tile read
};

// The same Hopper kernel with the causal mask replaced by the rows' bitmaps (DSA sparse prefill,
// kernels/dsa/params.h): each row attends to exactly its set bits, softmax over them, 0 for a row
// with none. A block's keys run over [0, 1 + the largest last[] of its rows); those tokens must be
// in the caches. context_lens and sliding_window are not read; max_query_len sizes the grid.
cudaError_t launch_flash_prefill_sm90_selected(const FlashPrefillParams& params, const PrefillSelection& selection,
                                               cudaStream_t stream);
// The same contract on the mma.sync kernel (any sm_80+ GPU).
cudaError_t launch_flash_prefill_sm80_selected(const FlashPrefillParams& params, const PrefillSelection& selection,
                                               cudaStream_t stream);

}  // namespace longbow::kernels
