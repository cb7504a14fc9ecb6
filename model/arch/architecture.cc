#include "model/arch/architecture.h"

#include <cmath>

namespace longbow {
namespace {

const std::vector<Architecture>& architectures() {
  static const std::vector<Architecture> kArchitectures = {
      {"llama", {"llama", "mistral", "qwen2", "qwen3"}, make_llama_plan},
      {"gemma", {"gemma2", "gemma3_text"}, make_gemma_plan},
      {"modernbert_decoder", {"modernbert-decoder"}, make_modernbert_decoder_plan},
      {"minimax", {"minimax"}, make_minimax_plan},
      {"deepseek", {"deepseek_v3", "deepseek_v32"}, make_deepseek_plan},
  };
  return kArchitectures;
}

}  // namespace

const Architecture* find_architecture(std::string_view model_type) {
  for (const Architecture& arch : architectures()) {
    for (std::string_view type : arch.model_types) {
      if (type == model_type) return &arch;
    }
  }
  return nullptr;
}

StatusOr<ModelPlan> make_model_plan(const ModelConfig& config, const std::vector<bool>& dsa_layers) {
  const Architecture* arch = find_architecture(config.model_type);
  if (arch == nullptr) return unimplemented(fmt::format("model_type \"{}\" has no architecture", config.model_type));
  if (config.layer_types.empty()) {
    // A config built in code without per-layer types: sliding_window, when set, is every layer's.
    ModelConfig uniform = config;
    uniform.layer_types.assign(static_cast<size_t>(config.num_hidden_layers),
                               config.sliding_window ? LayerAttention::kSliding : LayerAttention::kFull);
    StatusOr<ModelPlan> plan = arch->make_plan(uniform, dsa_layers);
    if (plan.ok()) plan->fp8 = config.fp8;
    return plan;
  }
  if (config.layer_types.size() != static_cast<size_t>(config.num_hidden_layers)) {
    return invalid_argument(fmt::format("{}: layer_types has {} entries for {} layers", config.model_type,
                                        config.layer_types.size(), config.num_hidden_layers));
  }
  StatusOr<ModelPlan> plan = arch->make_plan(config, dsa_layers);
  if (plan.ok()) plan->fp8 = config.fp8;
  return plan;
}

namespace plan {

LinearPlan linear(const std::string& name, int64_t out, int64_t in, bool bias) {
  LinearPlan p;
  p.weight = name + ".weight";
  if (bias) p.bias = name + ".bias";
  p.out = out;
  p.in = in;
  p.rows = out;
  return p;
}

NormPlan rms_norm(const std::string& weight, int64_t size, double eps, bool unit_offset) {
  NormPlan p;
  p.kind = NormKind::kRms;
  p.eps = static_cast<float>(eps);
  p.weight = weight;
  p.size = size;
  p.unit_offset = unit_offset;
  return p;
}

NormPlan layer_norm(const std::string& name, int64_t size, double eps, bool bias) {
  NormPlan p;
  p.kind = NormKind::kLayer;
  p.eps = static_cast<float>(eps);
  p.weight = name + ".weight";
  if (bias) p.bias = name + ".bias";
  p.size = size;
  return p;
}

StatusOr<Activation> activation(const std::string& name) {
  if (name == "silu") return Activation::kSilu;
  if (name == "gelu_pytorch_tanh") return Activation::kGeluTanh;
  if (name == "gelu") return Activation::kGelu;
  return unimplemented(fmt::format("activation \"{}\" is not supported (supported: silu, gelu_pytorch_tanh, gelu)",
                                   name));
}

float inverse_sqrt(double x) { return static_cast<float>(1.0 / std::sqrt(x)); }

int layer_window(const ModelConfig& config, int layer) {
  const bool sliding = config.layer_types[static_cast<size_t>(layer)] == LayerAttention::kSliding;
  return sliding ? config.sliding_window.value_or(0) : 0;
}

}  // namespace plan
}  // namespace longbow
