// The demo model's DSA indexer: weights whose index scores have a wide gap between the tokens they
// select and the rest, so the bf16 CUDA backend and the fp32 CPU backend select the same tokens and
// decode the same greedy tokens (issue 6). Random indexer weights give nearly flat scores: bf16
// activation noise, amplified by the FP8 index keys, then swaps tokens at the top-k boundary, and
// one swapped token moves the prompt logits by 5e-2 to 1.4e-1 (measured on the H100, session 2).
//
// The layout. Two hidden dimensions of every token embedding are set instead of random:
//   kIndexBiasDim   = +kIndexBias for every token (a direction every query sees);
//   kIndexMarkerDim = +kIndexMarker for "marker" tokens (about one ordinary token in
//                     kMarkerOneIn), -kIndexMarker for every other token.
// Every index head's query carries +kQueryGain · x[kIndexBiasDim] along a fixed unit direction u of
// the unrotated index dims, the index key (before its LayerNorm) +kKeyGain · x[kIndexMarkerDim]
// along u, and every head weight +kWeightGain · x[kIndexBiasDim]. So for a marker key q·k is about
// +34 in every head and for any other key about -34 (the random parts of the weights add noise of
// standard deviation ~3): after the ReLU a non-marker scores exactly 0 on both backends, a marker
// scores far above 0. The top-k of a context therefore holds every marker (while there are fewer
// than index_topk of them) and then the non-markers of lowest position (exact ties go to the lower
// index), the same set on every backend. The indexer still has random parts, and the selection
// still drops tokens once a context passes index_topk.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace longbow::demo {

inline constexpr int kIndexBiasDim = 0;
inline constexpr int kIndexMarkerDim = 1;
inline constexpr double kIndexBias = 6.0;
inline constexpr double kIndexMarker = 6.0;
inline constexpr int kMarkerOneIn = 32;

// markers[t] for every token id; control tokens (ids below first_ordinary) are never markers.
std::vector<bool> index_markers(uint64_t seed, int64_t vocab, int64_t first_ordinary);

// Writes the two indexer dimensions of every row of `embedding` ([vocab, hidden] row-major).
void shape_embedding_for_indexer(std::span<float> embedding, int64_t hidden, const std::vector<bool>& markers);

struct IndexerShape {
  int64_t hidden = 0;
  int64_t heads = 0;
  int64_t head_dim = 0;
  int64_t rope_dim = 0;  // the leading rotated dims; u lives in [rope_dim, head_dim), which needs >= 2 dims
};

// One DSA layer's indexer tensors (DESIGN §3 shapes), from streams named after `prefix`.
struct IndexerTensors {
  std::vector<float> wq;             // [heads · head_dim, hidden]
  std::vector<float> wk;             // [head_dim, hidden]
  std::vector<float> weights_proj;   // [heads, hidden]
  std::vector<float> k_norm_weight;  // [head_dim]
  std::vector<float> k_norm_bias;    // [head_dim]
};
IndexerTensors make_indexer(uint64_t seed, const std::string& prefix, const IndexerShape& shape);

}  // namespace longbow::demo
