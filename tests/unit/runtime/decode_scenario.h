// A deterministic multi-step workload for comparing two runtimes step by step (decode graphs vs eager,
// padded vs plain): sequences are prefilled, then decoded in batches whose size and membership change
// every step, so a batch size's graph is replayed with different rows, block tables and contexts.
#pragma once

#include <cstdint>
#include <vector>

#include "common/status.h"
#include "model/runtime/transformer.h"

namespace longbow::testing {

struct DecodeScenario {
  std::vector<int> prompt_lens;  // one per sequence
  std::vector<int> batch_sizes;  // decode step i runs batch_sizes[i % size] sequences (<= prompt_lens.size())
  int decode_steps = 0;
  uint32_t seed = 1;
};

// Pages the scenario needs (every sequence's prompt plus the most decode tokens it can receive).
int decode_scenario_pages(const DecodeScenario& scenario);

struct ScenarioStep {
  int num_seqs = 0;           // sequences in the step
  bool decode = false;        // a decode step (else a prefill)
  std::vector<float> logits;  // [num_seqs][vocab]
};

// Runs the scenario: each prompt in one prefill step, then the decode steps. Sequence s owns pages
// scattered over the pool (a seeded permutation); decode step i takes batch_sizes[i % n] sequences
// starting at a rotating offset, in a rotating order, each fed its next random token.
StatusOr<std::vector<ScenarioStep>> run_decode_scenario(Transformer& transformer, const DecodeScenario& scenario);

}  // namespace longbow::testing
