#include "model/runtime/model_weights.h"

#include <algorithm>
#include <map>

#include "common/logging.h"
#include "model/runtime/dummy_weights.h"
#include "model/runtime/transformer.h"

namespace longbow {

std::string layer_tensor_name(int layer, const std::string& suffix) {
  return "model.layers." + std::to_string(layer) + "." + suffix;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  const std::vector<bool> every_layer(static_cast<size_t>(config.num_hidden_layers), config.dsa.has_value());
  return expected_tensors(config, every_layer);
}

const std::vector<std::string>& dsa_indexer_suffixes() {
  static const std::vector<std::string> suffixes = {
      "self_attn.indexer.wq.weight", "self_attn.indexer.wk.weight", "self_attn.indexer.weights_proj.weight",
      "self_attn.indexer.k_norm.weight", "self_attn.indexer.k_norm.bias"};
  return suffixes;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const std::vector<bool>& dsa_layers) {
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
    if (config.dsa && static_cast<size_t>(l) < dsa_layers.size() && dsa_layers[static_cast<size_t>(l)]) {
      const int64_t heads = config.dsa->n_heads, dim = config.dsa->head_dim;
      const std::vector<std::string>& suffix = dsa_indexer_suffixes();
      add(suffix[0], {heads * dim, hidden});
      add(suffix[1], {dim, hidden});
      add(suffix[2], {heads, hidden});
      add(suffix[3], {dim});
      add(suffix[4], {dim});
    }
  }
  specs.push_back({"model.norm.weight", {hidden}});
  if (!config.tie_word_embeddings) specs.push_back({"lm_head.weight", {config.vocab_size, hidden}});
  return specs;
}

StatusOr<std::vector<bool>> find_dsa_layers(const ModelConfig& config, const Checkpoint& checkpoint) {
  const std::vector<std::string> names = checkpoint.tensor_names();  // sorted
  auto has = [&](const std::string& name) { return std::binary_search(names.begin(), names.end(), name); };
  std::vector<bool> dsa(static_cast<size_t>(config.num_hidden_layers), false);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    std::string present, missing;
    for (const std::string& suffix : dsa_indexer_suffixes()) {
      const std::string name = layer_tensor_name(l, suffix);
      (has(name) ? present : missing) = name;
    }
    if (present.empty()) continue;
    if (!missing.empty()) {
      return not_found("tensor " + missing + " is missing: layer " + std::to_string(l) +
                       " has some DSA indexer tensors (" + present + ") but not all");
    }
    if (!config.dsa) {
      return invalid_argument("the checkpoint has DSA indexer tensors (" + present +
                              ") but config.json has no index_n_heads (nor index_head_dim, index_topk)");
    }
    dsa[static_cast<size_t>(l)] = true;
  }
  if (config.dsa && std::none_of(dsa.begin(), dsa.end(), [](bool b) { return b; })) {
    return not_found("config.json has index_n_heads but no layer has DSA indexer tensors (" +
                     layer_tensor_name(0, dsa_indexer_suffixes()[0]) + " is missing)");
  }
  return dsa;
}

namespace {

// A DSA layer's indexer tensors out of the loaded set (present: expected_tensors listed them).
DsaIndexerWeights take_indexer_weights(int layer, const std::map<std::string, Tensor>& by_name) {
  auto take = [&](const std::string& suffix) { return by_name.at(layer_tensor_name(layer, suffix)); };
  const std::vector<std::string>& suffix = dsa_indexer_suffixes();
  return DsaIndexerWeights{take(suffix[0]), take(suffix[1]), take(suffix[2]), take(suffix[3]), take(suffix[4])};
}

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

StatusOr<std::vector<bool>> dsa_layers_of(const ModelConfig& config, const WeightSource& source) {
  if (source.checkpoint() != nullptr) return find_dsa_layers(config, *source.checkpoint());
  return std::vector<bool>(static_cast<size_t>(config.num_hidden_layers), config.dsa.has_value());
}

StatusOr<ModelWeights> load_model_weights(const ModelConfig& config, const WeightSource& source, Backend& backend) {
  ASSIGN_OR_RETURN(std::vector<bool> dsa_layers, dsa_layers_of(config, source));
  ASSIGN_OR_RETURN(auto by_name, load_weight_tensors(expected_tensors(config, dsa_layers), source, backend));
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
    if (dsa_layers[static_cast<size_t>(l)]) w.indexer = take_indexer_weights(l, by_name);
    weights.layers.push_back(std::move(w));
  }
  return weights;
}

}  // namespace longbow
