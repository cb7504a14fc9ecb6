#include "model/arch/model_plan.h"

#include <set>


namespace longbow {

std::string layer_tensor_name(int layer, const std::string& suffix) {
  return fmt::format("model.layers.{}.{}", layer, suffix);
}

std::vector<TensorSpec> dsa_indexer_tensors(const std::string& prefix, const DsaIndexerConfig& config,
                                            int64_t hidden_size, int64_t q_lora_rank) {
  const int64_t heads = config.n_heads, dim = config.head_dim;
  const TensorSpec wq = q_lora_rank > 0 ? TensorSpec{prefix + "wq_b.weight", {heads * dim, q_lora_rank}}
                                        : TensorSpec{prefix + "wq.weight", {heads * dim, hidden_size}};
  return {wq,
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
    if (layer.mla) {
      const MlaPlan& m = *layer.mla;
      list.add(m.q_a);
      list.add(m.q_a_norm);
      list.add(m.q_rope);
      list.add(m.q_nope);
      list.add(m.kv_latent);
      list.add(m.kv_rope);
      list.add(m.kv_norm);
      list.add(m.kv_b, {int64_t{m.num_heads} * (m.nope_dim + m.v_dim), m.kv_lora_rank});
      list.add(m.o);
      if (!m.indexer.empty() && plan.dsa) {
        for (const TensorSpec& spec : dsa_indexer_tensors(m.indexer, *plan.dsa, plan.hidden_size, m.q_lora_rank)) {
          list.add(spec.name, spec.shape);
        }
      }
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
      list.add(m.gate_up, {m.local_experts(), 2 * m.intermediate, m.hidden});
      list.add(m.down, {m.local_experts(), m.hidden, m.intermediate});
      list.add(m.correction_bias, {m.num_experts});
      if (m.shared) {
        for (const LinearPlan* linear : {&m.shared->gate, &m.shared->up, &m.shared->down}) list.add(*linear);
      }
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
    if (layer.mla) {
      add(layer.mla->q_a_norm);
      add(layer.mla->kv_norm);
    }
  }
  add(plan.head.final_norm);
  add(plan.head.dense_norm);
  return names;
}

WeightTransforms weight_transforms(const ModelPlan& plan) {
  WeightTransforms t;
  t.unit_offset = unit_offset_tensors(plan);
  t.parts = plan.legacy_parts;
  t.row_orders = plan.row_orders;
  t.fp8 = plan.fp8;
  t.shards = plan.shards;
  for (const LayerPlan& layer : plan.layers) {
    if (layer.moe && !layer.moe->correction_bias.empty()) t.keep_f32.push_back(layer.moe->correction_bias);
  }
  return t;
}

}  // namespace longbow
