// Turning CUDA runtime and cuBLAS results into Status. Device failures are INTERNAL (a bug or a
// hardware fault), except allocation failures, which are RESOURCE_EXHAUSTED.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <string>
#include <string_view>

#include "common/status.h"

namespace longbow {

inline Status cuda_status(cudaError_t err, std::string_view what) {
  if (err == cudaSuccess) return Status::Ok();
  std::string message = std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) return resource_exhausted(std::move(message));
  return internal_error(std::move(message));
}

inline Status cublas_status(cublasStatus_t err, std::string_view what) {
  if (err == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  std::string message = std::string(what) + ": cuBLAS " + cublasGetStatusName(err) + " (" +
                        cublasGetStatusString(err) + ")";
  if (err == CUBLAS_STATUS_ALLOC_FAILED) return resource_exhausted(std::move(message));
  return internal_error(std::move(message));
}

}  // namespace longbow

// Returns INTERNAL naming the call when a CUDA runtime call fails.
#define CUDA_RETURN_IF_ERROR(call) RETURN_IF_ERROR(::longbow::cuda_status((call), #call))
#define CUBLAS_RETURN_IF_ERROR(call) RETURN_IF_ERROR(::longbow::cublas_status((call), #call))
