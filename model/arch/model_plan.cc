#include "model/arch/model_plan.h"

#include <set>


namespace longbow {

std::string layer_tensor_name(int layer, const std::string& suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::vector<TensorSpec> dsa_indexer_tensors(const std::string& prefix, const DsaIndexerConfig& config,
                                            int64_t hidden_size) {
  const int64_t heads = config.n_heads, dim = config.head_dim;
  return {{prefix + "wq.weight", {heads * dim, hidden_size}},
          {prefix + "wk.weight", {dim, hidden_size}},
          {prefix + "weights_proj.weight", {heads, hidden_size}},
          {prefix + "k_norm.weight", {dim}},
          {prefix + "k_norm.bias", {dim}}};
}

namespace {

// Adds each tensor once, in first-use order (a tied or fused tensor is read by several plan entries).
class SpecList {
 public:
  void add(const std::string& name, std::vector<int64_t> shape) {
    if (name.empty() || !seen_.insert(name).second) return;
    specs_.push_back({name, std::move(shape)});
  }
  void add(const NormPlan& norm) {
    if (norm.kind == NormKind::kNone) return;
    add(norm.weight, {norm.size});
    add(norm.bias, {norm.size});
  }
  void add(const LinearPlan& linear) {
    add(linear.weight, {linear.rows, linear.in});
    add(linear.bias, {linear.rows});
  }
  std::vector<TensorSpec> take() { return std::move(specs_); }

 private:
  std::set<std::string> seen_;
  std::vector<TensorSpec> specs_;
};

}  // namespace

std::vector<TensorSpec> plan_tensors(const ModelPlan& plan) {
  SpecList list;
  list.add(plan.embed, {plan.vocab_size, plan.hidden_size});
  list.add(plan.embed_norm);
  for (const LayerPlan& layer : plan.layers) {
    list.add(layer.attn_norm);
    if (layer.lightning) {
      const LightningPlan& l = *layer.lightning;
      for (const LinearPlan* linear : {&l.qkv, &l.output_gate, &l.out}) list.add(*linear);
      list.add(l.norm);
    }
    const AttentionPlan& a = layer.attention;
    for (const LinearPlan* linear : {&a.q, &a.k, &a.v, &a.o}) list.add(*linear);
    list.add(a.q_norm);
    list.add(a.k_norm);
    if (!a.indexer.empty() && plan.dsa) {
      for (const TensorSpec& spec : dsa_indexer_tensors(a.indexer, *plan.dsa, plan.hidden_size)) {
        list.add(spec.name, spec.shape);
      }
    }
    list.add(layer.attn_post_norm);
    list.add(layer.mlp_norm);
    for (const LinearPlan* linear : {&layer.mlp.gate, &layer.mlp.up, &layer.mlp.down}) list.add(*linear);
    if (layer.moe) {
      const MoePlan& m = *layer.moe;
      list.add(m.router);
      list.add(m.gate_up, {m.num_experts, 2 * m.intermediate, m.hidden});
      list.add(m.down, {m.num_experts, m.hidden, m.intermediate});
    }
    list.add(layer.mlp_post_norm);
  }
  list.add(plan.head.final_norm);
  list.add(plan.head.dense);
  list.add(plan.head.dense_norm);
  list.add(plan.head.lm_head);
  return list.take();
}

std::vector<std::string> unit_offset_tensors(const ModelPlan& plan) {
  std::vector<std::string> names;
  auto add = [&names](const NormPlan& norm) {
    if (norm.kind != NormKind::kNone && norm.unit_offset) names.push_back(norm.weight);
  };
  add(plan.embed_norm);
  for (const LayerPlan& layer : plan.layers) {
    for (const NormPlan* norm : {&layer.attn_norm, &layer.attn_post_norm, &layer.mlp_norm, &layer.mlp_post_norm,
                                 &layer.attention.q_norm, &layer.attention.k_norm}) {
      add(*norm);
    }
    if (layer.lightning) add(layer.lightning->norm);
  }
  add(plan.head.final_norm);
  add(plan.head.dense_norm);
  return names;
}

}  // namespace longbow
