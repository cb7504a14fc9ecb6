// Tiny random Llama-family checkpoints for runtime tests, and a dense fp64 reference forward pass
// written independently of the runtime (no Backend, no paging, no fused ops).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"

namespace longbow::testing {

enum class TinyFamily { kLlama, kQwen2, kQwen3, kMistral, kLlamaDsa };

// A config with GQA (4 query / 2 kv heads), head_dim 24 (so Hq·D != hidden) and the family's
// features: llama o/mlp biases + llama3 RoPE, qwen2 qkv biases + yarn, qwen3 q/k norm + tied
// embeddings, mistral a 16-token sliding window; llama-dsa is llama with a DSA indexer (4 index heads
// of 32 dims, 16 of them rotated, index_topk 16) on every layer.
ModelConfig tiny_config(TinyFamily family);

// A lightning hybrid (model_type minimax): 4 layers (linear, linear, full, linear), 4 heads of 16
// (2 KV heads), hidden 48, block size 16, partial RoPE, residual factors away from 1, 4 experts of 40
// with top-2, vocabulary 97.
ModelConfig tiny_minimax_config();

// A DeepSeek-V3 MLA + MoE model (model_type deepseek_v3): 3 layers (the first dense), 4 heads with
// q LoRA 24, kv LoRA 32, nope 16 + rope 8 (interleaved) q/k dims and 12 v dims, YaRN (factor 4 over
// 64 positions, mscale_all_dim 1: the softmax scale carries mscale²), 8 routed experts of 20 in 4
// groups (top-2 groups, top-3 experts, scaling 2.5) plus one shared expert, hidden 48, vocabulary 97.
// `overrides` replaces config.json keys (e.g. q_lora_rank null, rope_interleave false).
ModelConfig tiny_deepseek_config(const nlohmann::json& overrides = nlohmann::json::object());

// `config` with a DSA indexer of index_topk `topk` (4 heads, head_dim 32, rope_dim 16).
ModelConfig with_dsa(ModelConfig config, int topk);

// Writes random weights for `config` to `<dir>/model.safetensors` (bf16 or fp32). Norm weights are
// 1 ± 0.1 and biases non-zero, so a skipped norm weight or bias changes the output.
// The tensors are drawn in expected_tensors order with the DSA indexer tensors last, so a config with
// and one without a DSA indexer give the same non-indexer weights for the same seed.
void write_tiny_checkpoint(const ModelConfig& config, const std::string& dir, DType dtype, uint32_t seed);
// The same for an explicit tensor list (e.g. indexer tensors on some layers only).
void write_tiny_tensors(const std::vector<TensorSpec>& specs, const std::string& dir, DType dtype, uint32_t seed);

// Logits [tokens.size()][vocab] for every position of one sequence, computed in double. A layer whose
// checkpoint has indexer tensors is a DSA layer: its index keys and scores come from the CPU DSA
// reference functions (model/backend/cpu/cpu_dsa.h, FP8 path, on fp32 copies of the double
// projections), each row keeps its exact top-k, and its attention runs in double over that set.
std::vector<std::vector<double>> reference_logits(const ModelConfig& config, const Checkpoint& checkpoint,
                                                  const std::vector<int32_t>& tokens);

// The same for a tiny_minimax_config() model (lightning layers in the quadratic form, the MoE token by
// token), from transformers' definitions, independently of the runtime.
std::vector<std::vector<double>> minimax_reference_logits(const ModelConfig& config, const Checkpoint& checkpoint,
                                                          const std::vector<int32_t>& tokens);

// The same for a tiny_deepseek_config() model, from transformers' DeepseekV3 definitions: per-head
// keys and values expanded by kv_b_proj (not absorbed), interleaved RoPE pairs (2i, 2i + 1), the
// sigmoid group-limited router token by token; a deepseek_v32 layer (indexer tensors in the
// checkpoint) attends to its rows' exact top-k of the FP8 index scores, as reference_logits does.
std::vector<std::vector<double>> deepseek_reference_logits(const ModelConfig& config, const Checkpoint& checkpoint,
                                                           const std::vector<int32_t>& tokens);

// Copies the fp32 checkpoint in `dir` to `out_dir` with its stacked DeepSeek experts
// (mlp.experts.gate_up_proj [E, 2I, H], down_proj [E, H, I]) written one tensor per expert and
// projection (mlp.experts.N.{gate,up,down}_proj.weight), as transformers 5 writes and the hub holds them.
void write_per_expert_checkpoint(const std::string& dir, const std::string& out_dir, int experts, int inter,
                                 int hidden);

// n token ids drawn uniformly from [0, vocab) by a seeded generator.
std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed);

// A checkpoint directory loaded on the CPU backend with num_kv_pages 12, max_batched_tokens 128 and
// `max_num_seqs` sequences (whose logits rows also bound a step's all-position logits); transformer
// is null (and the failure reported) when loading fails.
struct CpuModel {
  std::unique_ptr<Checkpoint> checkpoint;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Transformer> transformer;
};
CpuModel load_cpu_model(const ModelConfig& config, const std::string& dir, int max_num_seqs = 80);

// ‖a − b‖ / ‖b‖ in double; infinity when a holds a NaN.
double relative_l2(const std::vector<float>& a, const std::vector<float>& b);

// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace longbow::testing
