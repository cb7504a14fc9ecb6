// The CUDA backend's `sample` op (contract in model/backend/backend.h, semantics in
// model/sampling/sampling_row.h): packs every row's parameters and lists into one upload, launches
// kernels/sampling on the backend's stream, and downloads only the tokens and the asked logprobs.
// Its buffers are its own (never the backend's shared scratch, whose address captured graphs hold).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"

typedef struct CUstream_st* cudaStream_t;

namespace longbow::cuda_sampling {

// Whether the kernel takes `row` (num_logprobs up to kernels::kMaxTopLogprobs; an allow mask of the
// vocabulary's size).
bool supports(const SamplingRow& row, int vocab_size);

class DeviceSampler {
 public:
  using Allocate = std::function<StatusOr<Tensor>(int64_t bytes)>;

  // logits: [R, vocab] F32 on the device. Waits for the result.
  Status sample(cudaStream_t stream, const Allocate& allocate, Tensor& logits, std::span<const SamplingRow> rows,
                std::span<RowSample> out);

 private:
  Tensor device_;              // grows on demand
  std::vector<uint8_t> host_;  // the packed inputs, then the downloaded outputs
};

}  // namespace longbow::cuda_sampling
