// The CUDA backend's DSA ops (contracts in model/backend/backend.h): argument checks, then launches
// of kernels/dsa on the backend's stream. Called by CudaBackend (cuda_backend.cc), which supplies the
// stream, its SM count and its grow-on-demand scratch buffer.
#pragma once

#include <cstddef>
#include <functional>

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace longbow::cuda_dsa {

struct Context {
  cudaStream_t stream = nullptr;
  int num_sms = 0;
  std::function<StatusOr<void*>(size_t)> workspace;  // scratch valid until the next op
};

Status index_keys(const Context& ctx, const DsaIndexKeysArgs& args);
Status index_scores(const Context& ctx, const DsaIndexScoresArgs& args);
Status topk(const Context& ctx, const DsaTopkArgs& args);
Status sparse_attention(const Context& ctx, const DsaSparseAttentionArgs& args);
// The most scratch any of the four ops asks ctx.workspace for on a block of this shape (index_keys
// needs none).
size_t workspace_bytes(const Context& ctx, const DsaWorkspaceShape& shape);

}  // namespace longbow::cuda_dsa
