// create_backend: the one place in longbow that knows whether CUDA was built in.
#include <string>

#include "model/backend/backend.h"
#include "model/backend/cpu/cpu_backend.h"

#if defined(LONGBOW_WITH_CUDA)
#include "model/backend/cuda/cuda_backend.h"
#endif

namespace longbow {

StatusOr<std::unique_ptr<Backend>> create_backend(std::string_view name) {
  if (name == "cpu") return create_cpu_backend();
  if (name == "cuda") {
#if defined(LONGBOW_WITH_CUDA)
    return create_cuda_backend();
#else
    return unimplemented("backend 'cuda': this longbow was built without CUDA (configure with -DLONGBOW_CUDA=ON)");
#endif
  }
  if (name == "auto") {
#if defined(LONGBOW_WITH_CUDA)
    StatusOr<std::unique_ptr<Backend>> cuda = create_cuda_backend();
    if (cuda.ok()) return cuda;
    if (cuda.status().code() != StatusCode::kUnavailable) return cuda.status();
#endif
    return create_cpu_backend();
  }
  return invalid_argument("unknown backend '" + std::string(name) + "'; expected cpu, cuda or auto");
}

}  // namespace longbow
