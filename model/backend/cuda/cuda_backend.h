// CudaBackend: the Backend interface on one NVIDIA GPU (bf16 weights, activations and KV cache;
// fp32 accumulation). GEMMs of up to kernels::kSkinnyGemmMaxRows (2) rows (small decode steps) go
// to kernels/gemm's skinny GEMM, larger ones to cuBLAS; everything else to kernels/. The only header of this
// folder that the rest of model/ includes; it pulls in no CUDA headers.
#pragma once

#include <cstdint>
#include <memory>

#include "common/status.h"
#include "model/backend/backend.h"

namespace longbow {

struct CudaBackendOptions {
  int device = 0;
  // false: every GEMM goes to cuBLAS (the A/B switch of the decode benchmarks). The environment
  // variable LONGBOW_SKINNY_GEMM=0 sets it false for backends made by create_backend().
  bool skinny_gemm = true;
};

// UNAVAILABLE when no CUDA device is usable (no driver, no GPU, index out of range).
StatusOr<std::unique_ptr<Backend>> create_cuda_backend(const CudaBackendOptions& options = {});

}  // namespace longbow
