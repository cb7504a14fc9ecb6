// Mixture-of-experts kernels (MiniMax, Mixtral): softmax top-k routing and the routed experts as
// grouped GEMMs. Contracts: model/backend/backend.h's MoeRouteArgs and MoeExpertsArgs; reference:
// model/backend/cpu/cpu_moe.cc. Launchers take device pointers only and never read them on the
// host, allocate or synchronise, so both ops can be captured in a CUDA graph (moe_experts' scratch
// is the caller's, sized by moe_experts_workspace_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/activation/params.h"

namespace longbow::kernels {

constexpr int kMoeRouteMaxExperts = 256;
constexpr int kMoeRouteMaxTopk = 8;
constexpr int kMoeMaxExperts = 1024;  // moe_experts groups pairs in one block's shared memory

// ids[t] = the k experts of largest logit (= largest softmax probability), descending, ties to the
// lower id; weights[t][j] = p[ids[t][j]] / Σ_j' p[ids[t][j']] in fp32 (the softmax denominator
// cancels in the renormalisation). One warp per token; experts <= 256, 1 <= k <= min(8, experts).
struct MoeRouteParams {
  const float* logits = nullptr;  // [tokens, experts]
  int* ids = nullptr;             // [tokens, k]
  float* weights = nullptr;       // [tokens, k]
  int tokens = 0;
  int experts = 0;
  int k = 0;
};
cudaError_t launch_moe_route(const MoeRouteParams& params, cudaStream_t stream);

constexpr int kMoeRouteMaxGroups = 32;

// DeepSeek-V3's routing (DeepseekV3TopkRouter in transformers >= 5.15): s = sigmoid(logits), c = s +
// bias (the choice only); the experts form `groups` equal groups scored by the sum of their two
// largest c; the topk_groups best groups (ties to the lower group) stay, every other expert's c is
// −∞; ids[t] = the k largest c, descending, ties to the lower id; weights[t][j] = s[ids[t][j]],
// divided by (Σ_j' s + 1e-20) when renormalize, times scaling. In fp32 (the CPU reference: double),
// one warp per token; experts <= 256, groups <= 32, at least 2 experts per group.
struct MoeSigmoidRouteParams {
  const float* logits = nullptr;  // [tokens, experts]
  const float* bias = nullptr;    // [experts] e_score_correction_bias, or null
  int* ids = nullptr;             // [tokens, k]
  float* weights = nullptr;       // [tokens, k]
  int tokens = 0;
  int experts = 0;
  int k = 0;
  int groups = 1;
  int topk_groups = 1;
  bool renormalize = true;
  float scaling = 1.0f;
};
cudaError_t launch_moe_sigmoid_route(const MoeSigmoidRouteParams& params, cudaStream_t stream);

// out[t] = Σ_j weights[t][j] · down[e] · (act(gate[e] · x[t]) ⊙ up[e] · x[t]), e = ids[t][j]:
//  1. group the tokens·k (token, choice) pairs by expert (counts, prefix sums, scatter, and the list
//     of 64-row tiles of every expert's group) in one block;
//  2. grouped GEMM gate_up with the activation fused: h [tokens·k, inter] bf16, in grouped order;
//  3. grouped GEMM down, each row scaled by its route weight: y [tokens·k, hidden] fp32 by pair;
//  4. combine: out[t] = Σ_j y[t·k + j] in the order j = 0..k−1 (deterministic; no atomics).
// Ids outside [0, experts) are clamped (the CPU backend rejects them).
struct MoeExpertsParams {
  const void* x = nullptr;        // [tokens, hidden] bf16
  const int* ids = nullptr;       // [tokens, k]
  const float* weights = nullptr; // [tokens, k]
  const void* gate_up = nullptr;  // [experts, 2·inter, hidden] bf16
  const void* down = nullptr;     // [experts, hidden, inter] bf16
  void* out = nullptr;            // [tokens, hidden] bf16
  void* workspace = nullptr;      // moe_experts_workspace_bytes(...) bytes, 16-byte aligned
  int tokens = 0;
  int hidden = 0;
  int inter = 0;
  int experts = 0;
  int k = 0;
  GatedActivation act = GatedActivation::kSilu;
  bool accumulate = false;  // out += the experts' sum (out = when false)
};
size_t moe_experts_workspace_bytes(int tokens, int k, int experts, int hidden, int inter);
cudaError_t launch_moe_experts(const MoeExpertsParams& params, cudaStream_t stream);

}  // namespace longbow::kernels
