// Grouped-query attention, full or over a sliding window, optionally a DSA layer (its indexer selects
// each query's keys): q/k/v projections → (per-head q/k norm) → RoPE → K/V appended to the layer's
// paged pools → paged attention (window, scale, soft-cap) or sparse attention over the DSA selection
// → o projection.
//
// Cache: K and V [P, kPageSize, Hkv, D] in the compute dtype, plus on a DSA layer the FP8 index cache
// [P, kPageSize·(index_head_dim + 4)] under the same page ids: PagedSpec{those bytes per token,
// window}. P is the layer's cache group's pool size.
#pragma once

#include <optional>

#include "model/kv_cache/cache_spec.h"
#include "model/layers/layer_context.h"
#include "model/layers/norm.h"

namespace longbow {

// A RoPE table on the backend: inv_freq [rotary_dim / 2] F32 and the cos/sin scaling.
struct RopeTensors {
  Tensor inv_freq;
  float attention_scaling = 1.0f;
};

// The DSA settings a DSA layer is built with (the model's indexer, its RoPE table, the prefill mode).
struct DsaLayerOptions {
  const DsaIndexerConfig* config = nullptr;
  RopeTensors rope;
  DsaPrefillMode prefill = DsaPrefillMode::kSparse;
};

class GqaAttention {
 public:
  // Asks the backend whether it runs this attention (Backend::supports) and takes the plan's tensors.
  // `dsa` is read only when plan.indexer is set.
  static StatusOr<GqaAttention> build(const AttentionPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                      const DsaLayerOptions& dsa, const Backend& backend);

  PagedSpec cache_spec(DType kv_dtype) const;
  // Allocates this layer's pools of `pages` pages; `group` is its cache group (which of the step's
  // slots and block tables it reads). Returns the bytes allocated.
  StatusOr<size_t> allocate_cache(Backend& backend, int64_t pages, int group);

  // out [T, hidden] = attention of the step's tokens, x [T, hidden] its normed input.
  Status forward(Backend& backend, const StepTensors& step, LayerScratch& scratch, const Tensor& x, Tensor& out);

  bool is_dsa() const { return indexer_.has_value(); }
  const Tensor& index_cache() const { return index_cache_; }
  int q_dim() const { return num_heads_ * head_dim_; }
  int kv_dim() const { return num_kv_heads_ * head_dim_; }

 private:
  int num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
  Linear q_, k_, v_, o_;
  Norm q_norm_, k_norm_;
  RopeTensors rope_;
  int window_ = 0;
  float scale_ = 0.0f, softcap_ = 0.0f;
  std::optional<DsaIndexerWeights> indexer_;
  DsaLayerOptions dsa_;
  int group_ = 0;
  Tensor k_cache_, v_cache_, index_cache_;
};

}  // namespace longbow
