// The architecture registry: model_type → the family file (model/arch/<family>.cc, about a page each)
// that names a checkpoint's tensors and lays out its layers as a ModelPlan (DESIGN §3).
//
// Adding an architecture: write model/arch/<family>.cc with a make_<family>_plan(config, dsa_layers)
// that fills a ModelPlan from the layer kinds model/layers/ has (or a new kind there), list it in
// kArchitectures (architecture.cc), and teach model/config its config.json fields and defaults.
#pragma once

#include <fmt/format.h>

#include <string_view>
#include <vector>

#include "common/status.h"
#include "model/arch/model_plan.h"
#include "model/config/model_config.h"

namespace longbow {

using MakePlanFn = StatusOr<ModelPlan> (*)(const ModelConfig& config, const std::vector<bool>& dsa_layers);

struct Architecture {
  std::string_view name;                     // the family file's name
  std::vector<std::string_view> model_types;  // config.json model_type values it serves
  MakePlanFn make_plan;
};

// The architecture serving `model_type`; nullptr when none does.
const Architecture* find_architecture(std::string_view model_type);

// The plan of `config`. dsa_layers[l]: layer l has DSA indexer tensors (a checkpoint's own layout,
// find_dsa_layers in model/runtime/model_weights.h); empty: none. Empty config.layer_types (a config
// built in code) means every layer is sliding when sliding_window is set, else full. UNIMPLEMENTED naming model_type when
// no architecture serves it, INVALID_ARGUMENT for settings the family does not allow.
StatusOr<ModelPlan> make_model_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);

// The families (one file each).
StatusOr<ModelPlan> make_llama_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);
StatusOr<ModelPlan> make_gemma_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);
StatusOr<ModelPlan> make_modernbert_decoder_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);
StatusOr<ModelPlan> make_minimax_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);
StatusOr<ModelPlan> make_deepseek_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers);

// Shared by the family files.
namespace plan {
// A linear layer "<name>.weight" [out, in] (+ "<name>.bias" [out] when bias).
LinearPlan linear(const std::string& name, int64_t out, int64_t in, bool bias);
NormPlan rms_norm(const std::string& weight, int64_t size, double eps, bool unit_offset = false);
NormPlan layer_norm(const std::string& name, int64_t size, double eps, bool bias);
// "silu", "gelu_pytorch_tanh", "gelu".
StatusOr<Activation> activation(const std::string& name);
// The softmax scale x^-0.5 as transformers computes it (a Python float, rounded once to fp32).
float inverse_sqrt(double x);
// The window of layer l (0 for a full layer).
int layer_window(const ModelConfig& config, int layer);
}  // namespace plan

}  // namespace longbow
