// The demo model's indexer weights (layout and reasons in demo_indexer.h).
#include "tools/demo_model/demo_indexer.h"

#include <cmath>

#include "tools/demo_model/prng.h"

namespace longbow::demo {
namespace {

// Gains of the structured parts, and the standard deviations of the random parts in units of
// 1/sqrt(hidden) (so each random output has variance (std)² for a normed input of RMS 1).
constexpr double kQueryGain = 1.0;
constexpr double kQueryRandomStd = 0.3;
constexpr double kKeyGain = 4.0;
constexpr double kKeyRandomStd = 1.0;
constexpr double kWeightGain = 1.0;
constexpr double kWeightRandomStd = 0.3;

// The unit direction u over [rope_dim, head_dim): alternating signs, so it has mean 0 over the
// whole head and the key's LayerNorm keeps it (a constant offset would be subtracted).
std::vector<double> marker_direction(const IndexerShape& s) {
  std::vector<double> u(static_cast<size_t>(s.head_dim), 0.0);
  const int64_t span = (s.head_dim - s.rope_dim) / 2 * 2;  // an even count: the signs cancel
  const double value = 1.0 / std::sqrt(static_cast<double>(span));
  for (int64_t i = 0; i < span; ++i) u[static_cast<size_t>(s.rope_dim + i)] = i % 2 == 0 ? value : -value;
  return u;
}

}  // namespace

std::vector<bool> index_markers(uint64_t seed, int64_t vocab, int64_t first_ordinary) {
  Prng prng(seed, "indexer.markers");
  std::vector<bool> markers(static_cast<size_t>(vocab), false);
  for (int64_t t = 0; t < vocab; ++t) {
    const bool pick = prng.next() % kMarkerOneIn == 0;  // drawn for every id: the stream stays aligned
    markers[static_cast<size_t>(t)] = pick && t >= first_ordinary;
  }
  return markers;
}

void shape_embedding_for_indexer(std::span<float> embedding, int64_t hidden, const std::vector<bool>& markers) {
  const size_t h = static_cast<size_t>(hidden);
  for (size_t t = 0; t < markers.size(); ++t) {
    embedding[t * h + kIndexBiasDim] = static_cast<float>(kIndexBias);
    embedding[t * h + kIndexMarkerDim] = static_cast<float>(markers[t] ? kIndexMarker : -kIndexMarker);
  }
}

IndexerTensors make_indexer(uint64_t seed, const std::string& prefix, const IndexerShape& s) {
  const double unit = 1.0 / std::sqrt(static_cast<double>(s.hidden));
  const size_t hidden = static_cast<size_t>(s.hidden);
  const std::vector<double> u = marker_direction(s);
  IndexerTensors t;
  t.wq = normals(seed, prefix + "wq.weight", static_cast<size_t>(s.heads * s.head_dim) * hidden, 0.0,
                 kQueryRandomStd * unit);
  t.wk = normals(seed, prefix + "wk.weight", static_cast<size_t>(s.head_dim) * hidden, 0.0, kKeyRandomStd * unit);
  t.weights_proj =
      normals(seed, prefix + "weights_proj.weight", static_cast<size_t>(s.heads) * hidden, 0.0, kWeightRandomStd * unit);
  t.k_norm_weight = normals(seed, prefix + "k_norm.weight", static_cast<size_t>(s.head_dim), 1.0, 0.1);
  t.k_norm_bias = normals(seed, prefix + "k_norm.bias", static_cast<size_t>(s.head_dim), 0.0, 0.1);
  for (size_t i = 0; i < u.size(); ++i) {
    t.wk[i * hidden + kIndexMarkerDim] += static_cast<float>(kKeyGain * u[i]);
    for (size_t head = 0; head < static_cast<size_t>(s.heads); ++head) {
      t.wq[(head * u.size() + i) * hidden + kIndexBiasDim] += static_cast<float>(kQueryGain * u[i]);
    }
  }
  for (size_t head = 0; head < static_cast<size_t>(s.heads); ++head) {
    t.weights_proj[head * hidden + kIndexBiasDim] += static_cast<float>(kWeightGain);
  }
  return t;
}

}  // namespace longbow::demo
