// The implementations behind launch_dsa_index_logits (kernels/dsa/params.h): a portable mma.sync
// kernel (any sm_80+ device) and a Hopper wgmma kernel built for sm_90a only. Both take the same
// grid: (ceil(pages of max_context_len / pages_per_block) page-run blocks, rows), 128 threads; each
// row spreads its own pages over its blocks (dsa::logits_page_run in dsa_device.cuh).
#pragma once

#include <cuda_runtime_api.h>

#include "kernels/dsa/params.h"

namespace longbow::kernels {

// Whether launch_dsa_index_logits_sm90 serves this shape (heads 16/32/64, head_dim 128).
bool dsa_index_logits_sm90_supports(int heads, int head_dim);
cudaError_t launch_dsa_index_logits_sm90(const DsaIndexLogitsParams& p, int pages_per_block, cudaStream_t stream);

}  // namespace longbow::kernels
