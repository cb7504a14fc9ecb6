// Shared pieces of the standalone GPU benchmarks (dsa_bench.cu, dsa_prefill_bench.cu): a checked
// CUDA call, an owning device buffer, random bf16 fill, and the CUDA-event timer.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/elementwise/params.h"

namespace longbow::bench {

// A benchmark has no error path worth recovering: a failed CUDA call ends the process, naming it.
inline void check_cuda(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(err));
  std::exit(1);
}
#define CK(call) ::longbow::bench::check_cuda((call), #call)

// cudaMalloc'd bytes (at least 16), freed on destruction.
struct Buf {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Buf(size_t n) : bytes(n) { CK(cudaMalloc(&ptr, std::max<size_t>(n, 16))); }
  ~Buf() { cudaFree(ptr); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr); }
  template <typename T>
  void put(const std::vector<T>& v) { CK(cudaMemcpy(ptr, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice)); }
};

// Every bf16 of `b` uniform in [-scale, scale], from the FillRandom kernel.
inline void fill_bf16(Buf& b, uint64_t seed, float scale) {
  kernels::FillRandomParams p;
  p.out = b.ptr;
  p.count = static_cast<int64_t>(b.bytes / 2);
  p.seed = seed;
  p.low = -scale;
  p.high = scale;
  CK(kernels::launch_fill_random_bf16(p, nullptr));
}

// Milliseconds per call of fn: one warm-up call, then the median over `reps` samples of `inner`
// back-to-back calls each, timed with CUDA events on the default stream.
template <typename Fn>
double time_ms(Fn&& fn, int reps, int inner) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  fn();
  CK(cudaDeviceSynchronize());
  std::vector<double> samples;
  for (int r = 0; r < reps; ++r) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < inner; ++i) fn();
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, a, b));
    samples.push_back(ms / inner);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

}  // namespace longbow::bench
