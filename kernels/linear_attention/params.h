// Lightning attention (MiniMax's linear attention with a per-head decay; DESIGN §4): the state-slot
// recurrence for one-token rows and the blockwise prefill for multi-token rows. The contract is
// model/backend/backend.h's LightningAttentionArgs; model/backend/cpu/cpu_lightning.cc is the reference.
//
// Per sequence s and head h, with λ = exp(−slopes[h]) and q, k, v = SiLU of the qkv projection:
//   S ← λ·S + kᵀv per token, o = q·S (the state includes the current token with weight λ⁰).
// Sequence s owns rows [query_start[s], query_start[s+1]); its state is state[slots[s]] ([H, D, D]
// fp32), read unless context_lens[s] == q_len (fresh: taken as zero, never read) and rewritten after
// its last row. slot −1 (a graph batch's padding row) writes zeros to its output and touches no state.
//
// Both launchers take device pointers only: no host read of the index tensors, no allocation, no
// synchronisation, so a step can be captured in a CUDA graph. head_dim 1..kLightningMaxHeadDim.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace longbow::kernels {

constexpr int kLightningMaxHeadDim = 128;

struct LightningParams {
  const void* qkv = nullptr;           // [tokens, heads·3·head_dim] bf16, [q_h k_h v_h] per head
  const float* slopes = nullptr;       // [heads]
  float* state = nullptr;              // [num_slots, heads, head_dim, head_dim]
  const int* query_start = nullptr;    // [seqs + 1]
  const int* context_lens = nullptr;   // [seqs]
  const int* slots = nullptr;          // [seqs], −1: padding row
  void* out = nullptr;                 // [tokens, heads·head_dim] bf16
  int seqs = 0;
  int heads = 0;
  int head_dim = 0;
  int num_slots = 0;                   // slots outside [0, num_slots) are treated as −1
  int max_query_len = 0;               // host-side upper bound on every q_len: picks the launches
};

// One launch covering every sequence: max_query_len == 1 runs the decode kernel alone (grid seqs ×
// heads × head_dim/32 column slices); otherwise the decode kernel takes the one-token rows and the
// prefill kernel (grid seqs × heads × column slices, each walking its sequence in 64-token blocks) the
// multi-token rows of the same batch.
cudaError_t launch_lightning_attention(const LightningParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
