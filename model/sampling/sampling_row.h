// What sampling one row of logits needs, as plain data: the parameters of the Backend's `sample` op
// (model/backend/backend.h) and of the reference implementation (reference_sampler.h), which the
// engine's host Sampler also runs. Built by the engine from a request's SamplingParams and history
// (server/engine/sampler.h: make_sampling_row); nothing here knows about requests.
//
// Order of operations on a row of F32 logits x[vocab] (the same as vLLM's, up to where min_p sits):
//   1. NaN → -inf; ids outside allow_mask (when given) → -inf. This is the row logprobs describe.
//   2. logprobs (num_logprobs >= 0): log-softmax of the row of step 1 (max, then a double sum of
//      exp(x - max)); the chosen token's and the num_logprobs best (value desc, id asc).
//   3. logit_bias: x[id] += value, in list order (an id may repeat).
//   4. masked_ids: x[id] = -inf (min_tokens: EOS and stop ids).
//   5. penalties, each id once: repetition (x > 0 ? x / r : x · r) when in_prompt or output_count > 0;
//      then x -= frequency · output_count + presence when output_count > 0.
//   6. temperature == 0 or top_k == 1: argmax, ties to the lowest id. Otherwise v = x / temperature
//      (in double), keep the top_k best (0 < top_k < finite count), softmax in double, drop weights
//      w < min_p · w_max, keep the shortest prefix (best first) whose mass reaches top_p · total, and
//      invert the CDF at u = uniform_draw(stream, counter) (common/rng.h): the first candidate whose
//      running probability exceeds u, else the last one.
// Candidates are in (value desc, id asc) order when top_k cut or top_p < 1, else in id order. Ids
// outside [0, vocab) in any list are ignored.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace longbow {

// One id's history for the penalties: generated output_count times so far, and/or in the prompt.
struct PenaltyEntry {
  int32_t id = 0;
  int32_t output_count = 0;
  bool in_prompt = false;
};

struct SamplingRow {
  float temperature = 1.0f;  // 0: greedy
  int top_k = 0;             // <= 0: off
  float top_p = 1.0f;        // 1: off
  float min_p = 0.0f;        // 0: off
  uint64_t stream = 0;       // the choice's random stream (sampling_stream in common/rng.h)
  uint64_t counter = 0;      // which draw of the stream (the choice's output index)
  int num_logprobs = -1;     // -1: no logprobs; n >= 0: the token's logprob and the n best
  std::vector<std::pair<int32_t, float>> logit_bias;
  std::vector<int32_t> masked_ids;
  float repetition_penalty = 1.0f;  // 1: off
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::vector<PenaltyEntry> penalties;  // distinct ids
  // Grammar: bit (id % 32) of word id / 32 set = id allowed; empty = every id allowed. Otherwise
  // (vocab + 31) / 32 words.
  std::vector<uint32_t> allow_mask;

  bool greedy() const { return temperature == 0.0f || top_k == 1; }
};

// What crosses back to the host for one row.
struct RowSample {
  int32_t token = -1;   // -1: every logit was -inf or NaN after step 5 (no token)
  float logprob = 0.0f;  // num_logprobs >= 0: log-softmax of the token (step 2)
  std::vector<std::pair<int32_t, float>> top;  // num_logprobs best (id, logprob), best first
};

}  // namespace longbow
