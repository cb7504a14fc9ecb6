// Multi-head latent attention (DeepSeek V3/V3.2, DESIGN §3; plan: MlaPlan), run absorbed:
//   q latent = RMSNorm(q_a(x))  (no q LoRA: x);  q_rope, q_nope = q_b row views of it  [T, H·r], [T, H·n]
//   c = RMSNorm(kv_a latent rows (x)) [T, Dl];  k_r = kv_a rope rows (x) [T, r];  RoPE on q_rope, k_r
//   [c ; k_r] appended to the layer's latent pool;  q_l,h = W_UK,hᵀ q_nope,h  (head_matmul)
//   o_l = latent_attention(q_l, q_rope) [T, H, Dl];  o_h = W_UV,h o_l,h  (head_matmul)  → o_proj
// with kv_b_proj = [W_UK,h ; W_UV,h] per head. A V3.2 layer's indexer (over the q latent and x)
// selects each row's tokens first; the latent attention then reads only those.
//
// Cache: the latent pool [P, kPageSize, Dl + r] in the compute dtype, plus on a DSA layer the FP8
// index cache under the same page ids: PagedSpec{those bytes per token, no window}.
#pragma once

#include <optional>

#include "model/kv_cache/cache_spec.h"
#include "model/layers/gqa_attention.h"
#include "model/layers/layer_context.h"
#include "model/layers/norm.h"

namespace longbow {

class MlaAttention {
 public:
  static StatusOr<MlaAttention> build(const MlaPlan& plan, const TensorMap& tensors, const RopeTensors& rope,
                                      const DsaLayerOptions& dsa, const Backend& backend);

  PagedSpec cache_spec(DType kv_dtype) const;
  // Allocates the layer's pools of `pages` pages in cache group `group`; returns the bytes.
  StatusOr<size_t> allocate_cache(Backend& backend, int64_t pages, int group);

  // out [T, hidden] from x [T, hidden], the normed input. Scratch (per token): q holds the absorbed
  // queries and then the per-head outputs, attn q_nope and then the latent outputs, k the latent c,
  // v k_r, gate the q latent, up q_rope (scratch_widths()).
  Status forward(Backend& backend, const StepTensors& step, LayerScratch& scratch, const Tensor& x, Tensor& out);

  // The per-token widths of scratch q (= attn), k (= v) and gate (= up) this layer needs.
  int64_t q_width() const;
  int64_t kv_width() const;
  int64_t gate_width() const;
  bool is_dsa() const { return indexer_.has_value(); }
  const Tensor& index_cache() const { return index_cache_; }

 private:
  int heads_ = 0, nope_ = 0, rope_dim_ = 0, v_ = 0, latent_ = 0, q_lora_ = 0;
  Linear q_a_, q_rope_, q_nope_, kv_latent_, kv_rope_, o_;
  Norm q_a_norm_, kv_norm_;
  Tensor kv_b_;  // [H, nope + v, Dl]
  RopeTensors rope_;
  float scale_ = 0.0f;
  std::optional<DsaIndexerWeights> indexer_;
  DsaLayerOptions dsa_;
  int group_ = 0;
  Tensor cache_, index_cache_;
};

}  // namespace longbow
