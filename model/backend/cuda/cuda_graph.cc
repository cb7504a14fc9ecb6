#include "model/backend/cuda/cuda_graph.h"

#include <string>
#include <utility>

#include "model/backend/cuda/cuda_check.h"

namespace longbow::cuda_graph {
namespace {

class CudaGraph final : public BackendGraph {
 public:
  CudaGraph(cudaStream_t stream, cudaGraphExec_t exec, size_t bytes, std::vector<std::shared_ptr<void>> keep_alive)
      : stream_(stream), exec_(exec), bytes_(bytes), keep_alive_(std::move(keep_alive)) {}
  ~CudaGraph() override {
    // Nothing to report to at destruction; a failure here means the context is already gone.
    cudaGraphExecDestroy(exec_);
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  Status replay() override {
    CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec_, stream_));
    return Status::Ok();
  }
  size_t num_bytes() const override { return bytes_; }

 private:
  cudaStream_t stream_;
  cudaGraphExec_t exec_;
  size_t bytes_;
  std::vector<std::shared_ptr<void>> keep_alive_;
};

// Owns a cudaGraph_t until instantiation is done.
struct GraphHandle {
  cudaGraph_t graph = nullptr;
  ~GraphHandle() {
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
};

size_t free_device_bytes() {
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return 0;
  return free_bytes;
}

}  // namespace

StatusOr<std::unique_ptr<BackendGraph>> capture(cudaStream_t stream, const std::function<Status()>& issue,
                                                std::vector<std::shared_ptr<void>> keep_alive) {
  cudaStreamCaptureStatus already = cudaStreamCaptureStatusNone;
  CUDA_RETURN_IF_ERROR(cudaStreamIsCapturing(stream, &already));
  if (already != cudaStreamCaptureStatusNone) {
    return internal_error("graph capture: the stream is already capturing");
  }
  const size_t free_before = free_device_bytes();
  CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  // `issue` may fail on its own (an op's argument check) or because a call invalidated the capture;
  // either way the capture must be ended before anything else touches the stream.
  Status issued = issue();
  GraphHandle handle;
  const cudaError_t ended = cudaStreamEndCapture(stream, &handle.graph);
  if (!issued.ok()) {
    cudaGetLastError();  // an invalidated capture leaves its error in the last-error slot
    return issued.with_context("graph capture");
  }
  if (ended != cudaSuccess || handle.graph == nullptr) {
    cudaGetLastError();
    return cuda_status(ended == cudaSuccess ? cudaErrorStreamCaptureInvalidated : ended,
                       "graph capture: cudaStreamEndCapture");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, handle.graph, 0);
  if (instantiated != cudaSuccess) {
    cudaGetLastError();
    return cuda_status(instantiated, "graph capture: cudaGraphInstantiate");
  }
  // Upload the executable now, so the first replay costs what later ones do and its memory shows here.
  const cudaError_t uploaded = cudaGraphUpload(exec, stream);
  if (uploaded != cudaSuccess) {
    cudaGraphExecDestroy(exec);
    cudaGetLastError();
    return cuda_status(uploaded, "graph capture: cudaGraphUpload");
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  const size_t free_after = free_device_bytes();
  const size_t bytes = free_before > free_after ? free_before - free_after : 0;
  return std::unique_ptr<BackendGraph>(new CudaGraph(stream, exec, bytes, std::move(keep_alive)));
}

}  // namespace longbow::cuda_graph
