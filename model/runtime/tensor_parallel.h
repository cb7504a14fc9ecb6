// Tensor parallelism over the ranks of one process (DESIGN §10): one Decoder per rank, each on its own
// backend with its shard of the weights (model/arch/plan_shard.h) and its own KV pools for its heads,
// driven in lockstep by one thread per rank. The scheduler and its block tables stay single: every rank
// runs the same steps, and every rank's cache groups have the same pages (checked at load). forward()
// returns rank 0's logits, which the LM head's all-gather made whole on every rank.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/parallel/communicator.h"
#include "model/runtime/transformer.h"

namespace longbow {

// The collectives for ranks on `backends`: threads over host memory when every backend is the CPU
// reference (or there is one rank, which calls none); UNIMPLEMENTED otherwise (the NCCL communicator
// for CUDA devices is not built yet).
StatusOr<std::unique_ptr<CollectiveGroup>> make_collectives(const std::vector<std::unique_ptr<Backend>>& backends);

// Loads `config` on backends.size() ranks (one: unsharded, no collectives called), MoE experts split
// by rows or, with expert_parallel, spread whole (ParallelRank). The result owns the backends and the
// collectives. Errors of any rank's load are returned with the rank named.
StatusOr<std::unique_ptr<Transformer>> load_tensor_parallel(const ModelConfig& config, const WeightSource& weights,
                                                            std::vector<std::unique_ptr<Backend>> backends,
                                                            const RuntimeOptions& options,
                                                            bool expert_parallel = false);

// What `longbow serve` and `generate` load: on one device a Transformer over `backend` (kept here),
// or over tensor_parallel_size backends of that name, which the ranks own (backend null).
struct LoadedRuntime {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> transformer;
};
StatusOr<LoadedRuntime> load_runtime(const ModelConfig& config, const WeightSource& weights,
                                     std::string_view backend_name, int tensor_parallel_size,
                                     const RuntimeOptions& options, bool expert_parallel = false);

}  // namespace longbow
