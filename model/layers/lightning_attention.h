// Lightning attention (MiniMax's linear-attention layers, DESIGN §3-4): qkv_proj → the decayed
// linear attention over each sequence's state (Backend::lightning_attention: SiLU, per-head split,
// blockwise prefill, recurrent decode) → RMSNorm over all heads → ⊙ sigmoid(output_gate(x)) →
// out_proj.
//
// Cache: StateSpec{H·D·D fp32 bytes}: the layer's pool state [slots, H, D, D] F32, one slot per
// running sequence (the step's state_slots), whatever its length.
#pragma once

#include "model/kv_cache/cache_spec.h"
#include "model/layers/layer_context.h"
#include "model/layers/norm.h"

namespace longbow {

class LightningAttention {
 public:
  static StatusOr<LightningAttention> build(const LightningPlan& plan, const TensorMap& tensors, Backend& backend);

  StateSpec cache_spec() const;
  // Allocates the state pool of `slots` slots. Returns the bytes allocated.
  StatusOr<size_t> allocate_cache(Backend& backend, int64_t slots);

  // out [T, hidden] from x [T, hidden], the normed input; qkv in scratch.q, the attention in
  // scratch.attn, the gate in scratch.gate.
  Status forward(Backend& backend, const StepTensors& step, LayerScratch& scratch, const Tensor& x, Tensor& out);

  int qkv_dim() const { return 3 * num_heads_ * head_dim_; }
  int attn_dim() const { return num_heads_ * head_dim_; }
  const Tensor& state() const { return state_; }

 private:
  int num_heads_ = 0, head_dim_ = 0, block_size_ = 0;
  Linear qkv_, gate_, out_;
  Norm norm_;
  Tensor slopes_;  // [H] F32
  Tensor state_;   // [slots, H, D, D] F32
};

}  // namespace longbow
