// Sampling launch parameters: one block per row of F32 logits; the semantics and order of operations
// are model/sampling/sampling_row.h's (the reference is model/sampling/reference_sampler.cc).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

// The most top logprobs one row may ask for.
constexpr int kMaxTopLogprobs = 64;

struct SamplingBias {
  int id;
  float value;
};

struct SamplingPenalty {
  int id;
  int output_count;
  int in_prompt;  // 0 or 1
};

// One row's parameters; the lists are ranges of SampleParams' arrays.
struct SamplingRowParams {
  float temperature;  // 0: greedy
  int top_k;          // <= 0: off
  float top_p;        // 1: off
  float min_p;        // 0: off
  unsigned long long stream, counter;
  int num_logprobs;   // -1: none; else <= kMaxTopLogprobs
  int bias_begin, bias_count;
  int mask_begin, mask_count;
  int penalty_begin, penalty_count;
  float repetition_penalty, presence_penalty, frequency_penalty;
  long long allow_begin;  // first word of the row's allow mask in allow_words; -1: every id allowed
};

struct SampleParams {
  float* logits = nullptr;  // [rows, vocab], rewritten in place (masks, bias, penalties)
  int rows = 0;
  int vocab = 0;
  const SamplingRowParams* row_params = nullptr;  // [rows]
  const SamplingBias* bias = nullptr;
  const int* mask_ids = nullptr;
  const SamplingPenalty* penalties = nullptr;
  const uint32_t* allow_words = nullptr;
  // Scratch: the step-1 value of each list entry's id, saved before the edits (the sampled token's
  // logprob is of the unedited row). Same lengths as bias, mask_ids, penalties.
  float* bias_raw = nullptr;
  float* mask_raw = nullptr;
  float* penalty_raw = nullptr;
  // Outputs: the token (-1: nothing finite) and, for rows with num_logprobs >= 0, its logprob and the
  // num_logprobs best (id, logprob) at row * top_stride.
  int* out_tokens = nullptr;     // [rows]
  float* out_logprobs = nullptr;  // [rows]
  int* out_top_ids = nullptr;     // [rows, top_stride]
  float* out_top_logprobs = nullptr;  // [rows, top_stride]
  int top_stride = 0;             // >= every row's num_logprobs
};

// Samples every row (one block each). Rows whose every logit ends -inf get token -1.
cudaError_t launch_sample(const SampleParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
