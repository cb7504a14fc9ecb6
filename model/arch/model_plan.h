// ModelPlan: what an architecture (model/arch/<family>.cc) makes of a config: per layer a token mixer
// with its settings and an FFN, plus the embedding and the head, each naming its checkpoint tensors
// (HF names) and their shapes. The runtime builds one layer object per entry (model/layers/) and runs
// them in order; it never looks at model_type (DESIGN §3).
//
// Every decoder layer runs
//   x = attn_norm(h)            (kNone: x = h, only before any residual add, ModernBERT's layer 0)
//   a = attention(x); a = attn_post_norm(a) if any (Gemma);   h += a
//   y = mlp_norm(h);  m = mlp(y);  m = mlp_post_norm(m) if any (Gemma);   h += m
// or, with scaled residuals (MiniMax): h = α₁·x + β₁·a, then y = mlp_norm(h), h = α₂·y + β₂·m.
// The token mixer is GQA attention or lightning attention; the FFN a gated MLP or a MoE.
// and the model: h = embed(ids) · embed_scale → embed_norm (ModernBERT) → layers → final_norm →
// head (ModernBERT's dense → activation → norm) → lm_head (+ bias) → final soft-cap.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/weights/safetensors.h"

namespace longbow {

enum class NormKind {
  kNone,   // identity (no tensor)
  kRms,    // x / rms(x) · w
  kLayer,  // (x − mean) / std · w (+ b): torch.nn.LayerNorm
};

struct NormPlan {
  NormKind kind = NormKind::kNone;
  float eps = 1e-6f;
  std::string weight;  // [C]
  std::string bias;    // [C]; empty: none
  int64_t size = 0;    // C
  // Gemma's RMSNorm multiplies by (1 + w): the loader adds 1 to a checkpoint's w once, so the op
  // stays x / rms(x) · w'. (Dummy weights are drawn as w' directly.)
  bool unit_offset = false;
};

// A linear layer out = x · Wᵀ (+ b). A fused projection (ModernBERT's Wi) is one checkpoint tensor
// whose rows [row_begin, row_begin + out) this view takes.
struct LinearPlan {
  std::string weight;  // checkpoint tensor [rows, in]
  std::string bias;    // [rows]; empty: none
  int64_t out = 0, in = 0;
  int64_t row_begin = 0;
  int64_t rows = 0;  // the checkpoint tensor's rows (== out unless fused)
};

// Grouped-query attention, full or over a sliding window, optionally with a DSA indexer choosing each
// query's keys (DESIGN §3-4).
struct AttentionPlan {
  int num_heads = 0, num_kv_heads = 0, head_dim = 0;
  LinearPlan q, k, v, o;
  NormPlan q_norm, k_norm;  // per head over head_dim (qwen3, gemma3); kNone: none
  int rope = 0;             // index into ModelPlan::ropes
  int window = 0;           // 0: the whole causal prefix; W: keys p − W + 1 .. p
  float scale = 0.0f;       // softmax scale
  float softcap = 0.0f;     // 0: none
  // A DSA layer: the prefix of its indexer tensors ("<prefix>wq.weight", wk, weights_proj, k_norm),
  // whose selection (ModelPlan::dsa) decides the attended keys; empty: a dense layer.
  std::string indexer;
};

// out = down(act(gate(x)) · up(x)).
struct MlpPlan {
  Activation activation = Activation::kSilu;
  LinearPlan gate, up, down;
};

// MiniMax's lightning attention (DESIGN §3-4): qkv = qkv_proj(x) [T, H·3·D] (SiLU and the per-head
// split happen in Backend::lightning_attention), o = the decayed linear attention, RMSNorm over all
// H·D channels, o ⊙ sigmoid(output_gate(x)), out_proj. Cache: an [H, D, D] fp32 state per sequence.
struct LightningPlan {
  int num_heads = 0, head_dim = 0;
  LinearPlan qkv, output_gate, out;
  NormPlan norm;              // [H·D]
  std::vector<float> slopes;  // [H] this layer's decay rate per head: λ = exp(−slope)
  int block_size = 256;
};

// Multi-head latent attention (DeepSeek V2/V3, DESIGN §3): per head a query of nope + rope dims from
// q_b(RMSNorm(q_a(x))) (or q_proj(x) without a q LoRA), one latent row per token [c ; k_r] from
// kv_a_proj_with_mqa(x) (c = RMSNorm of its first kv_lora_rank outputs, k_r its last rope_dim, RoPE'd
// and shared by every head), keys and values expanded per head by kv_b_proj [H·(nope + v), kv_lora]
// (absorbed at run time: model/layers/mla_attention.h), o_proj [hidden, H·v].
// The q projection's rows are reordered at load (ModelPlan::row_orders) to [every head's rope rows |
// every head's nope rows], so q_rope and q_nope are row views of it; `q_rope` and `q_nope` name them.
struct MlaPlan {
  int num_heads = 0, nope_dim = 0, rope_dim = 0, v_dim = 0, kv_lora_rank = 0;
  int q_lora_rank = 0;        // 0: no q LoRA (q_rope, q_nope read x directly)
  LinearPlan q_a;             // [q_lora_rank, hidden]; empty without a q LoRA
  NormPlan q_a_norm;          // [q_lora_rank]
  LinearPlan q_rope, q_nope;  // row views of q_b_proj (or q_proj): [H·rope_dim], [H·nope_dim]
  LinearPlan kv_latent, kv_rope;  // row views of kv_a_proj_with_mqa: [kv_lora_rank], [rope_dim]
  NormPlan kv_norm;           // [kv_lora_rank]
  std::string kv_b;           // [H·(nope_dim + v_dim), kv_lora_rank]
  LinearPlan o;               // [hidden, H·v_dim]
  int rope = 0;               // index into ModelPlan::ropes (rotary_dim = rope_dim)
  float scale = 0.0f;         // softmax scale: (nope + rope)^-0.5, times mscale² under YaRN
  // A DSA layer (V3.2): the prefix of its indexer tensors ("<prefix>wq_b.weight" over the q latent,
  // wk, weights_proj, k_norm); empty: dense.
  std::string indexer;
};

// A top-k mixture of experts: router logits, top-k routing (MoeRouteArgs: Mixtral's softmax, or
// DeepSeek's sigmoid scores with a selection bias and group-limited choice), the experts' gated MLPs
// stacked as transformers 5 holds them, plus DeepSeek's shared experts (a gated MLP every token runs).
struct MoePlan {
  LinearPlan router;      // [E, hidden]
  std::string gate_up;    // [E, 2I, hidden]: rows [0, I) gate, [I, 2I) up, per expert
  std::string down;       // [E, hidden, I]
  int num_experts = 0, top_k = 0;
  // Expert parallelism (plan_shard.h): gate_up and down hold experts [expert_begin, expert_begin +
  // local_experts()) only.
  int expert_begin = 0, num_local_experts = 0;  // 0: every expert
  int local_experts() const { return num_local_experts > 0 ? num_local_experts : num_experts; }
  int64_t intermediate = 0, hidden = 0;
  Activation activation = Activation::kSilu;
  MoeScoring scoring = MoeScoring::kSoftmax;
  std::string correction_bias;  // [E] (kSigmoid's e_score_correction_bias); empty: none
  int num_groups = 1, topk_groups = 1;
  bool renormalize = true;
  float scaling = 1.0f;
  std::optional<MlpPlan> shared;  // DeepSeek's shared experts: out += shared(x)
};

// MiniMax's residual around a block f with normed input x = norm(h): h' = alpha · x + beta · f(x).
struct ScaledResidual {
  float alpha = 1.0f, beta = 1.0f;
};

struct LayerPlan {
  NormPlan attn_norm, attn_post_norm;
  AttentionPlan attention;
  std::optional<LightningPlan> lightning;  // set: the token mixer is this instead of `attention`
  std::optional<MlaPlan> mla;              // set: the token mixer is this instead of `attention`
  NormPlan mlp_norm, mlp_post_norm;
  MlpPlan mlp;
  std::optional<MoePlan> moe;  // set: the FFN is this instead of `mlp`
  // Both set (MiniMax) or neither: the residuals are taken from the normed inputs, scaled.
  std::optional<ScaledResidual> attn_residual, mlp_residual;
  // A tensor-parallel rank's plan (plan_shard.h): the token mixer's / the FFN's output is this rank's
  // partial sum, to be all-reduced.
  bool mixer_partial = false, ffn_partial = false;
};

// A plan tensor that older checkpoints store in pieces (transformers' checkpoint conversion
// mapping, e.g. Mixtral-style block_sparse_moe.experts.N.w1/w3/w2): when the checkpoint lacks
// `name`, it is assembled from `parts`, each a [rows_i, cols] tensor, stacked along the first axis
// of the flattened [shape[0]·…, cols] tensor in order.
struct TensorParts {
  std::string name;
  std::vector<std::string> parts;
};

// A plan tensor whose rows are a permutation of the checkpoint tensor's of the same name: row i of
// the loaded tensor is checkpoint row rows[i] (MLA's q projection and RoPE rows, MlaPlan).
struct RowOrder {
  std::string name;
  std::vector<int64_t> rows;
};

// The head after the final norm: an optional transform (ModernBERT's prediction head), then the
// projection to the vocabulary, then an optional soft-cap of the logits.
struct HeadPlan {
  NormPlan final_norm;
  LinearPlan dense;  // weight empty: no transform
  Activation dense_activation = Activation::kGelu;
  NormPlan dense_norm;
  LinearPlan lm_head;  // weight may be the embedding table (tied)
  float final_softcap = 0.0f;
};

// One tensor-parallel rank's slice of a checkpoint tensor (plan_shard.h): the checkpoint tensor of
// `full_shape`, cut along `axis` into `ranges` [begin, begin + size), concatenated in order.
struct IndexRange {
  int64_t begin = 0, size = 0;
};
struct TensorShard {
  std::string name;
  std::vector<int64_t> full_shape;
  int axis = 0;
  std::vector<IndexRange> ranges;
};

struct ModelPlan {
  std::string embed;  // [vocab_size, hidden]: rows [vocab_begin, vocab_begin + vocab_size) of the vocabulary
  int64_t vocab_size = 0, hidden_size = 0;
  int64_t vocab_begin = 0;  // a tensor-parallel rank's first vocabulary row; 0 unsharded
  float embed_scale = 1.0f;  // Gemma: √hidden (rounded to fp32 as transformers does)
  NormPlan embed_norm;
  std::vector<RopeConfig> ropes;  // the RoPE tables the layers index
  std::vector<LayerPlan> layers;
  HeadPlan head;
  std::optional<DsaIndexerConfig> dsa;  // set when some layer has `dsa`
  std::vector<TensorParts> legacy_parts;  // alternative sources of some plan tensors
  std::vector<RowOrder> row_orders;       // tensors loaded with their rows reordered
  std::optional<Fp8Config> fp8;           // the checkpoint's FP8 block scales (config.fp8)
  std::vector<TensorShard> shards;        // a tensor-parallel rank's slices of checkpoint tensors
};

// How the loaded tensors differ from the checkpoint's, applied on the host at load (model_weights.h);
// dummy weights are drawn as the plan's tensors directly.
struct WeightTransforms {
  std::vector<std::string> unit_offset;  // norm weights stored as w where the op needs 1 + w
  std::vector<TensorParts> parts;        // ModelPlan::legacy_parts
  std::vector<RowOrder> row_orders;      // ModelPlan::row_orders
  std::vector<std::string> keep_f32;     // loaded in F32 whatever the compute dtype (router biases)
  std::optional<Fp8Config> fp8;          // e4m3 tensors are dequantized with their <name>_scale_inv
  std::vector<TensorShard> shards;       // sliced last, after every transform above (ModelPlan::shards)
};
WeightTransforms weight_transforms(const ModelPlan& plan);

// Every checkpoint tensor the plan reads, once each (tied and fused tensors once), with its shape.
std::vector<TensorSpec> plan_tensors(const ModelPlan& plan);

// Names of the norm weights stored as w where the op needs 1 + w (NormPlan::unit_offset).
std::vector<std::string> unit_offset_tensors(const ModelPlan& plan);

// The checkpoint tensors of one DSA indexer whose names start with `prefix` ("...self_attn.indexer."),
// in this order: wq [Hi·Di, hidden] (on MLA, q_lora_rank > 0: wq_b [Hi·Di, q_lora_rank], over the
// q latent), wk [Di, hidden], weights_proj [Hi, hidden], k_norm weight, bias [Di].
std::vector<TensorSpec> dsa_indexer_tensors(const std::string& prefix, const DsaIndexerConfig& config,
                                            int64_t hidden_size, int64_t q_lora_rank = 0);

// "model.layers.<layer>.<suffix>"
std::string layer_tensor_name(int layer, const std::string& suffix);

}  // namespace longbow
