// CUDA graph capture for CudaBackend: records the launches a callable makes on one stream into an
// instantiated graph (BackendGraph) that replays them on that stream.
//
// Host C++ only. The capture uses cudaStreamCaptureModeThreadLocal: an unsafe call (synchronize,
// cudaMalloc, a pageable copy) made by this thread inside the capture fails the capture instead of
// silently serialising, while other threads' CUDA calls are unaffected.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"

namespace longbow::cuda_graph {

// Captures the launches `issue` makes on `stream` (which must not be capturing already) and
// instantiates them. `keep_alive` holds device allocations the recorded kernels use but the caller
// may release later (the backend's scratch buffers); the graph owns a reference to each. On any
// failure (issue's own Status, a capture-invalidating call, instantiation) the capture is ended,
// partial graphs are destroyed and the stream is usable again.
StatusOr<std::unique_ptr<BackendGraph>> capture(cudaStream_t stream, const std::function<Status()>& issue,
                                                std::vector<std::shared_ptr<void>> keep_alive);

}  // namespace longbow::cuda_graph
