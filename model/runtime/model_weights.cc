#include "model/runtime/model_weights.h"

#include <map>

#include "common/logging.h"
#include "model/runtime/dummy_weights.h"
#include "model/runtime/transformer.h"

namespace longbow {

std::string layer_tensor_name(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  const int64_t hidden = config.hidden_size;
  const int64_t inter = config.intermediate_size;
  const int64_t q_dim = int64_t{config.num_attention_heads} * config.head_dim;
  const int64_t kv_dim = int64_t{config.num_key_value_heads} * config.head_dim;
  std::vector<TensorSpec> specs;
  specs.push_back({"model.embed_tokens.weight", {config.vocab_size, hidden}});
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    auto add = [&](const std::string& suffix, std::vector<int64_t> shape) {
      specs.push_back({layer_tensor_name(l, suffix), std::move(shape)});
    };
    add("input_layernorm.weight", {hidden});
    add("self_attn.q_proj.weight", {q_dim, hidden});
    add("self_attn.k_proj.weight", {kv_dim, hidden});
    add("self_attn.v_proj.weight", {kv_dim, hidden});
    if (config.qkv_bias) {
      add("self_attn.q_proj.bias", {q_dim});
      add("self_attn.k_proj.bias", {kv_dim});
      add("self_attn.v_proj.bias", {kv_dim});
    }
    add("self_attn.o_proj.weight", {hidden, q_dim});
    if (config.o_bias) add("self_attn.o_proj.bias", {hidden});
    if (config.qk_norm) {
      add("self_attn.q_norm.weight", {config.head_dim});
      add("self_attn.k_norm.weight", {config.head_dim});
    }
    add("post_attention_layernorm.weight", {hidden});
    add("mlp.gate_proj.weight", {inter, hidden});
    add("mlp.up_proj.weight", {inter, hidden});
    add("mlp.down_proj.weight", {hidden, inter});
    if (config.mlp_bias) {
      add("mlp.gate_proj.bias", {inter});
      add("mlp.up_proj.bias", {inter});
      add("mlp.down_proj.bias", {hidden});
    }
  }
  specs.push_back({"model.norm.weight", {hidden}});
  if (!config.tie_word_embeddings) specs.push_back({"lm_head.weight", {config.vocab_size, hidden}});
  return specs;
}

namespace {

StatusOr<Tensor> allocate_tensor(const TensorSpec& spec, Backend& backend) {
  if (spec.shape.empty() || spec.shape.size() > 2) {
    return unimplemented("loading " + spec.name + ": tensors of rank " + std::to_string(spec.shape.size()) +
                         " are not supported");
  }
  StatusOr<Tensor> allocated = spec.shape.size() == 1
                                   ? backend.allocate(backend.compute_dtype(), {spec.shape[0]})
                                   : backend.allocate(backend.compute_dtype(), {spec.shape[0], spec.shape[1]});
  if (!allocated.ok()) return allocated.status().with_context("allocating " + spec.name);
  return allocated;
}

StatusOr<Tensor> upload_tensor(const TensorSpec& spec, const TensorView& view, Backend& backend) {
  ASSIGN_OR_RETURN(Tensor tensor, allocate_tensor(spec, backend));
  RETURN_IF_ERROR(backend.upload_converted(view.data, view.dtype, view.num_elements(), tensor)
                      .with_context("uploading " + spec.name));
  return tensor;
}

// Every tensor of `specs` from the checkpoint, by name.
StatusOr<std::map<std::string, Tensor>> upload_checkpoint(const std::vector<TensorSpec>& specs,
                                                          const Checkpoint& checkpoint, Backend& backend) {
  RETURN_IF_ERROR(checkpoint.check(specs));
  uint64_t total_bytes = 0;
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(spec));
    total_bytes += view.num_bytes;
  }
  ProgressLog progress("uploading weights to " + std::string(backend.name()), total_bytes);
  std::map<std::string, Tensor> by_name;
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(spec));
    ASSIGN_OR_RETURN(Tensor tensor, upload_tensor(spec, view, backend));
    progress.advance(view.num_bytes);
    by_name.emplace(spec.name, std::move(tensor));
  }
  progress.finish();
  return by_name;
}

// Every tensor of `specs` allocated and filled on the backend (dummy_weights.h has the distributions).
StatusOr<std::map<std::string, Tensor>> fill_dummy(const std::vector<TensorSpec>& specs, uint64_t seed,
                                                   Backend& backend) {
  ProgressLog progress("filling dummy weights on " + std::string(backend.name()),
                       model_weight_bytes(specs, backend.compute_dtype()));
  std::map<std::string, Tensor> by_name;
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(Tensor tensor, allocate_tensor(spec, backend));
    const DummyInit init = dummy_init(spec);
    RETURN_IF_ERROR(backend.fill_random(tensor, dummy_tensor_seed(seed, spec.name), init.mean, init.std)
                        .with_context("filling " + spec.name));
    progress.advance(tensor.num_bytes());
    by_name.emplace(spec.name, std::move(tensor));
  }
  RETURN_IF_ERROR(backend.synchronize());
  progress.finish();
  return by_name;
}

}  // namespace

StatusOr<std::map<std::string, Tensor>> load_weight_tensors(const std::vector<TensorSpec>& specs,
                                                            const WeightSource& source, Backend& backend) {
  if (source.checkpoint() != nullptr) return upload_checkpoint(specs, *source.checkpoint(), backend);
  return fill_dummy(specs, source.dummy_seed(), backend);
}

uint64_t model_weight_bytes(const std::vector<TensorSpec>& specs, DType dtype) {
  uint64_t total = 0;
  for (const TensorSpec& spec : specs) {
    uint64_t n = 1;
    for (int64_t d : spec.shape) n *= static_cast<uint64_t>(d);
    total += n * dtype_size(dtype);
  }
  return total;
}

StatusOr<ModelWeights> load_model_weights(const ModelConfig& config, const WeightSource& source, Backend& backend) {
  ASSIGN_OR_RETURN(auto by_name, load_weight_tensors(expected_tensors(config), source, backend));
  ModelWeights weights;
  for (const auto& entry : by_name) weights.num_bytes += entry.second.num_bytes();

  // Every name below is in specs (or optional and absent), so find() cannot miss a required tensor.
  auto take = [&](const std::string& name) {
    auto it = by_name.find(name);
    return it == by_name.end() ? Tensor{} : it->second;
  };
  weights.embed_tokens = take("model.embed_tokens.weight");
  weights.final_norm = take("model.norm.weight");
  weights.lm_head = config.tie_word_embeddings ? weights.embed_tokens : take("lm_head.weight");
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    auto layer = [&](const std::string& suffix) { return take(layer_tensor_name(l, suffix)); };
    LayerWeights w;
    w.input_norm = layer("input_layernorm.weight");
    w.q_proj = layer("self_attn.q_proj.weight");
    w.q_bias = layer("self_attn.q_proj.bias");
    w.k_proj = layer("self_attn.k_proj.weight");
    w.k_bias = layer("self_attn.k_proj.bias");
    w.v_proj = layer("self_attn.v_proj.weight");
    w.v_bias = layer("self_attn.v_proj.bias");
    w.o_proj = layer("self_attn.o_proj.weight");
    w.o_bias = layer("self_attn.o_proj.bias");
    w.q_norm = layer("self_attn.q_norm.weight");
    w.k_norm = layer("self_attn.k_norm.weight");
    w.post_norm = layer("post_attention_layernorm.weight");
    w.gate_proj = layer("mlp.gate_proj.weight");
    w.gate_bias = layer("mlp.gate_proj.bias");
    w.up_proj = layer("mlp.up_proj.weight");
    w.up_bias = layer("mlp.up_proj.bias");
    w.down_proj = layer("mlp.down_proj.weight");
    w.down_bias = layer("mlp.down_proj.bias");
    weights.layers.push_back(std::move(w));
  }
  return weights;
}

}  // namespace longbow
