// create_backend: the one place in longbow that knows whether CUDA was built in.
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <string>

#include "model/backend/backend.h"
#include "model/backend/cpu/cpu_backend.h"

#if defined(LONGBOW_WITH_CUDA)
#include "model/backend/cuda/cuda_backend.h"
#endif

namespace longbow {
namespace {

#if defined(LONGBOW_WITH_CUDA)
// LONGBOW_SKINNY_GEMM=0 sends every GEMM to cuBLAS (CudaBackendOptions::skinny_gemm).
CudaBackendOptions cuda_options_from_environment() {
  CudaBackendOptions options;
  const char* skinny = std::getenv("LONGBOW_SKINNY_GEMM");
  options.skinny_gemm = skinny == nullptr || std::string_view(skinny) != "0";
  return options;
}
#endif

}  // namespace

StatusOr<std::unique_ptr<Backend>> create_backend(std::string_view name) {
  if (name == "cpu") return create_cpu_backend();
  if (name == "cuda") {
#if defined(LONGBOW_WITH_CUDA)
    return create_cuda_backend(cuda_options_from_environment());
#else
    return unimplemented("backend 'cuda': this longbow was built without CUDA (configure with -DLONGBOW_CUDA=ON)");
#endif
  }
  if (name == "auto") {
    // Says why CUDA is not used: a user who expected the GPU learns it from the first lines.
#if defined(LONGBOW_WITH_CUDA)
    StatusOr<std::unique_ptr<Backend>> cuda = create_cuda_backend(cuda_options_from_environment());
    if (cuda.ok()) return cuda;
    if (cuda.status().code() != StatusCode::kUnavailable) return cuda.status();
    spdlog::warn("backend auto: CUDA cannot be used ({}); running on the CPU backend", cuda.status().message());
#else
    spdlog::info("backend auto: this longbow was built without CUDA; running on the CPU backend");
#endif
    return create_cpu_backend();
  }
  return invalid_argument("unknown backend '" + std::string(name) + "'; expected cpu, cuda or auto");
}

}  // namespace longbow
