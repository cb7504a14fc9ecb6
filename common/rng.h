// Counter-based random numbers for sampling: draw i of a stream depends only on (stream, i), so a
// request given a seed produces the same tokens whatever it is batched with, and a preempted
// request resumes with the draws it would have made anyway.
//
// Shared by host and device code: compiled by nvcc (kernels/sampling) the functions are
// __host__ __device__, so a kernel draws exactly the numbers the host sampler draws. Integer
// arithmetic and one exact int→double conversion: the same bits on either side.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LONGBOW_HOST_DEVICE __host__ __device__
#else
#define LONGBOW_HOST_DEVICE
#endif

namespace longbow {

// splitmix64: state advances by the golden gamma, output is the finalizer of the state.
LONGBOW_HOST_DEVICE constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ull;

// The stream of choice `index` of a request seeded with `seed`.
LONGBOW_HOST_DEVICE constexpr uint64_t sampling_stream(uint64_t seed, uint64_t index) {
  return splitmix64_mix(seed ^ splitmix64_mix(index + 0x5851f42d4c957f2dull));
}

// Draw `counter` of `stream`, uniform in [0, 1) with 53 random bits.
LONGBOW_HOST_DEVICE constexpr double uniform_draw(uint64_t stream, uint64_t counter) {
  uint64_t bits = splitmix64_mix(stream + (counter + 1) * kGoldenGamma);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace longbow
