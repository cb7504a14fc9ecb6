// Tensor parallelism at the plan level (DESIGN §10). One rank's plan is the full plan with its share
// of every split dimension, so the layers built from it need no other notion of parallelism than
// "all-reduce my output" and "all-gather my logits":
//   attention   by heads: q/k/v rows of the rank's heads (a KV head is replicated on W / Hkv ranks
//               when Hkv < W), o_proj by columns (partial sums, all-reduced by the decoder layer);
//   MLA         by heads: q_b's rope and nope rows and kv_b's rows of the rank's heads, o_proj by
//               columns; the LoRA down-projections, their norms and the latent cache are replicated;
//   MLP, MoE    by intermediate rows: gate/up rows, down by columns (all-reduced); every expert and
//               the shared experts alike; the router and its bias are replicated;
//   vocabulary  the embedding and the LM head by vocabulary rows, ceil(V / W) per rank (the last may
//               hold fewer): out-of-slice ids embed as zeros and the sum is all-reduced; each rank's
//               logits columns are all-gathered.
// Norms, q/k norms, the prediction head, the DSA indexer and lightning attention layers (their RMSNorm
// spans every head, MiniMax) are replicated. The indexer is replicated
// on purpose: its scores are summed over its heads before the top-k, so splitting heads would cost an
// all-reduce of [rows, context] fp32 scores per layer (1 GiB at a 2048-row chunk of a 128K context)
// against recomputing a 64-head, 128-dim projection; its index keys are one 132-byte row per token.
// A row-parallel projection's bias is kept by rank 0 only, so that the all-reduce adds it once.
#pragma once

#include "common/status.h"
#include "model/arch/model_plan.h"

namespace longbow {

struct ParallelRank {
  int rank = 0;
  int size = 1;
  // MoE experts spread over the ranks whole (E / size each, vLLM's --enable-expert-parallel) instead
  // of each expert split by intermediate rows; the router stays replicated, so every rank routes alike
  // and runs only the tokens' picks among its own experts (the all-reduce combines them).
  bool expert_parallel = false;
};

// The plan of `rank` with ModelPlan::shards naming the slice of every split checkpoint tensor.
// INVALID_ARGUMENT naming the dimension when heads, KV heads or intermediate sizes do not divide by
// the size. LayerPlan::mixer_partial / ffn_partial mark the outputs to all-reduce.
StatusOr<ModelPlan> shard_model_plan(const ModelPlan& full, const ParallelRank& rank);

}  // namespace longbow
