// ModelWeights: a Llama-style checkpoint's tensors, uploaded to a Backend under HF names.
//
// expected_tensors() (transformer.h) is the single list of names and shapes; loading walks that list,
// so a tensor the runtime uses can never be missing from the check.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/dsa_attention.h"
#include "model/runtime/weight_source.h"
#include "model/weights/safetensors.h"

namespace longbow {

// One decoder layer. Optional tensors (biases, q/k norms) have data == nullptr when the config has
// no such tensor; Backend::matmul reads an empty bias as "no bias".
struct LayerWeights {
  Tensor input_norm;      // [H]
  Tensor q_proj, q_bias;  // [Hq·D, H], [Hq·D]
  Tensor k_proj, k_bias;  // [Hkv·D, H], [Hkv·D]
  Tensor v_proj, v_bias;  // [Hkv·D, H], [Hkv·D]
  Tensor o_proj, o_bias;  // [H, Hq·D], [H]
  Tensor q_norm, k_norm;  // [D] (qwen3)
  Tensor post_norm;       // [H]
  Tensor gate_proj, gate_bias;  // [I, H], [I]
  Tensor up_proj, up_bias;      // [I, H], [I]
  Tensor down_proj, down_bias;  // [H, I], [H]
  std::optional<DsaIndexerWeights> indexer;  // set on DSA layers (self_attn.indexer.* present)
};

struct ModelWeights {
  Tensor embed_tokens;  // [V, H]
  std::vector<LayerWeights> layers;
  Tensor final_norm;  // [H]
  Tensor lm_head;     // [V, H]; shares embed_tokens' memory when tie_word_embeddings
  size_t num_bytes = 0;  // backend memory held by the tensors above
};

// "model.layers.<layer>.<suffix>"
std::string layer_tensor_name(int layer, const std::string& suffix);

// The suffixes (after "model.layers.N.") of a DSA layer's indexer tensors.
const std::vector<std::string>& dsa_indexer_suffixes();

// Which layers of `checkpoint` are DSA layers: those holding the self_attn.indexer.* tensors
// (DESIGN §3). NOT_FOUND naming the missing tensor when a layer holds only some of them, or when
// config.dsa is set and no layer holds any; INVALID_ARGUMENT naming index_n_heads when indexer
// tensors come without the index_* config keys.
StatusOr<std::vector<bool>> find_dsa_layers(const ModelConfig& config, const Checkpoint& checkpoint);

// The DSA layers of a weight source: a checkpoint's own (find_dsa_layers); with dummy weights every
// layer is a DSA layer when the config has the index_* keys.
StatusOr<std::vector<bool>> dsa_layers_of(const ModelConfig& config, const WeightSource& source);

// Every tensor of expected_tensors(config, dsa_layers_of(config, source)) on `backend` in its
// compute_dtype(). From a checkpoint: checked first (missing or misshapen tensors are errors naming
// the tensor), then uploaded and converted. Dummy: allocated and filled on the backend (dummy_weights.h).
StatusOr<ModelWeights> load_model_weights(const ModelConfig& config, const WeightSource& source, Backend& backend);

// The tensors of `specs` by name, as load_model_weights loads them (exposed for tests).
StatusOr<std::map<std::string, Tensor>> load_weight_tensors(const std::vector<TensorSpec>& specs,
                                                            const WeightSource& source, Backend& backend);

// Backend bytes the tensors of `specs` take in `dtype` (what load_model_weights will allocate).
uint64_t model_weight_bytes(const std::vector<TensorSpec>& specs, DType dtype);

}  // namespace longbow
