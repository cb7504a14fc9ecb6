// The CUDA backend's mixture-of-experts ops (contracts in model/backend/backend.h): argument checks on
// the host, then kernels/moe on the backend's stream. moe_experts takes its scratch (the pairs grouped
// by expert, the intermediate activations, the weighted expert outputs) from the backend's
// grow-on-demand workspace, so as with the DSA ops a graph capture needs one eager run of the same
// shape first. Called by CudaBackend (cuda_backend.cc).
#pragma once

#include <cstddef>
#include <functional>

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace longbow::cuda_moe {

struct Context {
  cudaStream_t stream = nullptr;
  std::function<StatusOr<void*>(size_t)> workspace;  // scratch valid until the next op
};

// logits, weights F32; ids I32; experts <= 256, top-k <= 8.
Status route(const Context& ctx, const MoeRouteArgs& args);
// x, gate_up, down, out BF16; ids I32; weights F32; experts <= 1024.
Status experts(const Context& ctx, const MoeExpertsArgs& args);

}  // namespace longbow::cuda_moe
