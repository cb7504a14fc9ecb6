// Decode steps as replayed graphs: bucket sizes, padding a decode step to its bucket, and the cache
// of captured graphs (one per bucket, captured on the bucket's first step: the runtime runs a
// padding-only step of every bucket at load).
//
// A decode step (every sequence one new token, logits wanted) of S sequences runs with the launches
// of the smallest bucket B >= S. A graph's launches have fixed arguments, so the padded step has a
// fixed shape: B rows, block tables of the workspace's full width W, and one max_context_len bound
// (kernel grids derive from these, never from the step's real contexts). Padding rows S..B-1 are
// harmless by contract (backend.h): token 0 at position 0, KV slot -1 (append_kv skips it), context
// length 0 (attention reads nothing and writes 0); the runtime drops their logits.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/runtime/step_inputs.h"
#include "model/runtime/transformer.h"

namespace longbow {

// 1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, ... up to max_batch_size, plus max_batch_size
// itself. Every power of two up to the largest bucket is a bucket: the paged-decode split policy plans
// for the batch rounded up to a power of two, so a padded batch splits like its eager original.
std::vector<int> decode_graph_buckets(int max_batch_size);

// The smallest bucket >= num_seqs; 0 when num_seqs exceeds them all (the step runs eagerly).
int decode_graph_bucket(std::span<const int> buckets, int num_seqs);

// True when every step is one new token that wants logits (and there is at least one step).
bool is_decode_step(std::span<const SequenceStep> steps);

// The fixed launch shape of padded decode steps.
struct DecodeShape {
  int table_width = 0;      // W: block-table columns of every row (the workspace's width)
  int max_context_len = 0;  // the bound passed as max_context_len (>= any real context)
  int num_groups = 1;       // cache groups: one slot array and one block table each
};

// A decode step of `bucket` padding rows only, with the shape above: what capturing a bucket's graph
// before any request arrives runs (every launch of a real step, no K/V written, no context read).
StepInputs padding_decode_step(int bucket, const DecodeShape& shape);

// `in` (a decode step of S <= bucket sequences from build_step_inputs) padded to `bucket` rows with
// the shape above; every row wants logits (rows >= S are padding). INVALID_ARGUMENT when `in` is not a
// decode step or does not fit the shape.
StatusOr<StepInputs> pad_decode_step(const StepInputs& in, int bucket, const DecodeShape& shape);

// One graph per bucket. Not thread-safe (the engine thread owns the runtime).
class DecodeGraphCache {
 public:
  // capture = false pads and runs steps eagerly with the same launches (a test of the padding, and
  // the fallback where the backend has no graphs).
  DecodeGraphCache(Backend& backend, std::vector<int> buckets, bool capture);

  const std::vector<int>& buckets() const { return buckets_; }
  // The bucket a decode step of num_seqs sequences runs in; 0: run it eagerly, unpadded.
  int bucket_for(int num_seqs) const;

  // Runs one step whose padded inputs are already on the device: `issue` makes every launch of the
  // step (no upload, download or synchronisation). Replays the bucket's graph; on a bucket's first
  // step runs `issue` eagerly, then captures it for the next steps (logging time and memory). A
  // failed capture is logged once and the bucket runs eagerly from then on; the step's results are
  // complete on return either way.
  Status run(int bucket, const std::function<Status()>& issue);

  bool captures() const { return capture_; }
  size_t graph_bytes() const;  // device memory held by the captured graphs

  int num_captured() const;

 private:
  struct Entry {
    int bucket = 0;
    std::unique_ptr<BackendGraph> graph;
    bool failed = false;
  };

  Backend& backend_;
  std::vector<int> buckets_;
  std::vector<Entry> entries_;  // parallel to buckets_
  bool capture_;
};

}  // namespace longbow
