// CudaBackend: the Backend interface on one NVIDIA GPU (bf16 weights, activations and KV cache;
// fp32 accumulation). GEMMs go to cuBLAS, everything else to kernels/. The only header of this
// folder that the rest of model/ includes; it pulls in no CUDA headers.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "model/backend/backend.h"

namespace longbow {

struct CudaBackendOptions {
  int device = 0;
};

// UNAVAILABLE when no CUDA device is usable (no driver, no GPU, index out of range).
StatusOr<std::unique_ptr<Backend>> create_cuda_backend(const CudaBackendOptions& options = {});

// Extras beyond Backend that only the CUDA side offers (e.g. `--load-format dummy` weights).
// `backend` must come from create_cuda_backend; INVALID_ARGUMENT otherwise.
// Fills a BF16 tensor with uniform values in [-scale, scale) from a counter-based hash of `seed`.
Status cuda_fill_random(Backend& backend, Tensor& tensor, uint64_t seed, float scale);

}  // namespace longbow
