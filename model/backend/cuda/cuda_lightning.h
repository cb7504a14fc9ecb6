// The CUDA backend's lightning attention (contract in model/backend/backend.h): argument checks on
// the host, then kernels/linear_attention on the backend's stream. Nothing allocates, synchronises or
// reads a device tensor on the host, so the op can be captured in a CUDA graph. Called by CudaBackend
// (cuda_backend.cc).
#pragma once

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace longbow::cuda_lightning {

// qkv, out BF16; slopes, state F32; query_start, context_lens, slots I32.
Status lightning_attention(cudaStream_t stream, const LightningAttentionArgs& args);

// OK for head_dim in [1, 128] (the kernels' register and shared-memory tiles), else UNIMPLEMENTED.
Status supports_head_dim(int head_dim);

}  // namespace longbow::cuda_lightning
