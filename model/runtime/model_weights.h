// Loading a checkpoint's tensors (or dummy ones) onto a Backend under their HF names.
//
// The architecture's plan (model/arch/) is the single list of names and shapes (plan_tensors, which
// expected_tensors() in transformer.h returns); loading walks that list and the layers take their
// tensors from the result by name, so a tensor the runtime uses can never be missing from the check.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/arch/model_plan.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/runtime/weight_source.h"
#include "model/weights/safetensors.h"

namespace longbow {

// The suffixes (after "model.layers.N.") of a DSA layer's indexer tensors (wq, or wq_b on an MLA
// model with a q LoRA).
const std::vector<std::string>& dsa_indexer_suffixes(const ModelConfig& config);

// Which layers of `checkpoint` are DSA layers: those holding the self_attn.indexer.* tensors
// (DESIGN §3). NOT_FOUND naming the missing tensor when a layer holds only some of them, or when
// config.dsa is set and no layer holds any; INVALID_ARGUMENT naming index_n_heads when indexer
// tensors come without the index_* config keys.
StatusOr<std::vector<bool>> find_dsa_layers(const ModelConfig& config, const Checkpoint& checkpoint);

// The DSA layers of a weight source: a checkpoint's own (find_dsa_layers); with dummy weights every
// layer is a DSA layer when the config has the index_* keys.
StatusOr<std::vector<bool>> dsa_layers_of(const ModelConfig& config, const WeightSource& source);

// Every tensor of `specs` on `backend` in its compute_dtype() (F32 for those in transforms.keep_f32),
// by name. From a checkpoint: checked first (missing or misshapen tensors are errors naming the
// tensor), then uploaded and converted, with the plan's transforms applied on the host: a
// unit_offset tensor (Gemma's (1 + w) norm weights) gets 1 added in fp32 first, as transformers
// computes 1 + w; a row_orders tensor is uploaded with its rows reordered; a spec the checkpoint
// lacks is assembled from its `parts` when it has some (TensorParts: equal row blocks, in order).
// Last, a tensor-parallel rank's shard (TensorShard) takes its slices of the result; the checkpoint is
// checked against the full shape, `specs` hold the rank's.
// Dummy: allocated and filled on the backend (dummy_weights.h; a unit-offset norm is drawn like any
// norm gain, mean 1).
StatusOr<std::map<std::string, Tensor>> load_weight_tensors(const std::vector<TensorSpec>& specs,
                                                            const WeightSource& source, Backend& backend,
                                                            const WeightTransforms& transforms = {});

// Backend bytes the tensors of `specs` take in `dtype` (what load_model_weights will allocate).
uint64_t model_weight_bytes(const std::vector<TensorSpec>& specs, DType dtype);

}  // namespace longbow
