// The reference implementation of sampling one row (the order of operations is in sampling_row.h):
// plain loops on the host, doubles where sums decide the result. The engine's host Sampler and the
// CPU backend's `sample` op both run this, so there is one reference; the CUDA op is tested
// against it.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/sampling/sampling_row.h"

namespace longbow {

class ReferenceSampler {
 public:
  explicit ReferenceSampler(int vocab_size);

  int vocab_size() const { return vocab_size_; }

  // Samples `logits` ([vocab_size]) under `row`. INVALID_ARGUMENT when the logits or the allow mask
  // have the wrong size. A row with no finite logit after the penalties gives token -1 (and OK).
  Status sample(std::span<const float> logits, const SamplingRow& row, RowSample* out);

  // The distribution sample() draws from, as (token, probability) in draw order; probabilities sum
  // to 1. Empty for greedy parameters and for a row with no finite logit. Exposed for tests.
  Status distribution(std::span<const float> logits, const SamplingRow& row,
                      std::vector<std::pair<int32_t, double>>* out);

 private:
  // Steps 1 and 3-5: the processed logits of `row` into work_, the step-1 row into raw_.
  Status process(std::span<const float> logits, const SamplingRow& row);
  int32_t argmax_work() const;  // -1 when nothing is finite
  void fill_distribution(const SamplingRow& row);
  void fill_logprobs(int32_t token, int num_top, RowSample* out) const;

  int vocab_size_;
  std::vector<float> raw_;   // [vocab] step 1: NaN and disallowed ids as -inf
  std::vector<float> work_;  // [vocab] after steps 3-5
  std::vector<std::pair<int32_t, double>> candidates_;  // the distribution, reused across calls
};

}  // namespace longbow
