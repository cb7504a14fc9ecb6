#include "model/arch/plan_shard.h"

#include <algorithm>
#include <map>

namespace longbow {
namespace {

// Collects each split tensor's slices (views, in checkpoint coordinates) and, once every layer is
// registered, lays them out back to back: a fused tensor's views keep their order, and every
// LinearPlan reading a view gets the view's new first row.
class ShardBuilder {
 public:
  // Rows [offset, offset + size) of `linear`'s view (and of its bias).
  Status rows(LinearPlan& linear, int64_t offset, int64_t size) {
    const IndexRange range{linear.row_begin + offset, size};
    RETURN_IF_ERROR(add(linear.weight, 0, range, &linear));
    if (!linear.bias.empty()) RETURN_IF_ERROR(add(linear.bias, 0, range, nullptr));
    linear.out = size;
    return Status::Ok();
  }
  // Input columns [begin, begin + size) of `linear` (row parallel: the output is a partial sum).
  Status columns(LinearPlan& linear, int64_t begin, int64_t size, int rank) {
    if (linear.row_begin != 0 || linear.rows != linear.out) {
      return unimplemented(fmt::format("tensor parallelism: {} is a fused tensor split by columns", linear.weight));
    }
    RETURN_IF_ERROR(add(linear.weight, 1, IndexRange{begin, size}, nullptr));
    linear.in = size;
    if (rank != 0) linear.bias.clear();
    return Status::Ok();
  }
  Status slice(const std::string& name, int axis, IndexRange range) { return add(name, axis, range, nullptr); }

  Status finish(const std::vector<TensorSpec>& full_specs, ModelPlan& plan) {
    std::map<std::string, std::vector<int64_t>> shapes;
    for (const TensorSpec& spec : full_specs) shapes[spec.name] = spec.shape;
    for (auto& [name, split] : splits_) {
      auto shape = shapes.find(name);
      if (shape == shapes.end()) {
        return internal_error(fmt::format("tensor parallelism: {} is not a plan tensor", name));
      }
      std::sort(split.views.begin(), split.views.end(),
                [](const View& a, const View& b) { return a.range.begin < b.range.begin; });
      TensorShard shard{name, shape->second, split.axis, {}};
      int64_t total = 0;
      for (const View& view : split.views) total += view.range.size;
      int64_t offset = 0, end = 0;
      for (const View& view : split.views) {
        if (view.range.begin < end) {
          return internal_error(fmt::format("tensor parallelism: overlapping slices of {}", name));
        }
        end = view.range.begin + view.range.size;
        for (LinearPlan* linear : view.linears) {
          linear->row_begin = offset;
          linear->rows = total;
        }
        shard.ranges.push_back(view.range);
        offset += view.range.size;
      }
      plan.shards.push_back(std::move(shard));
    }
    return Status::Ok();
  }

 private:
  struct View {
    IndexRange range;
    std::vector<LinearPlan*> linears;
  };
  struct Split {
    int axis = 0;
    std::vector<View> views;
  };

  Status add(const std::string& name, int axis, IndexRange range, LinearPlan* linear) {
    auto [it, fresh] = splits_.try_emplace(name, Split{axis, {}});
    if (!fresh && it->second.axis != axis) {
      return internal_error(
          fmt::format("tensor parallelism: {} split along axes {} and {}", name, it->second.axis, axis));
    }
    for (View& view : it->second.views) {
      if (view.range.begin == range.begin && view.range.size == range.size) {  // a tied tensor's second reader
        if (linear != nullptr) view.linears.push_back(linear);
        return Status::Ok();
      }
    }
    it->second.views.push_back(View{range, {}});
    if (linear != nullptr) it->second.views.back().linears.push_back(linear);
    return Status::Ok();
  }

  std::map<std::string, Split> splits_;
};

Status divisible(int64_t value, int size, const char* what) {
  if (value % size == 0) return Status::Ok();
  return invalid_argument(
      fmt::format("tensor parallelism: {} {} is not divisible by tensor_parallel_size {}", what, value, size));
}

Status shard_attention(AttentionPlan& a, const ParallelRank& p, ShardBuilder& b) {
  RETURN_IF_ERROR(divisible(a.num_heads, p.size, "num_attention_heads"));
  const int64_t d = a.head_dim, hq = a.num_heads / p.size;
  int64_t kv_first = 0, hkv = 0;
  if (a.num_kv_heads >= p.size) {
    RETURN_IF_ERROR(divisible(a.num_kv_heads, p.size, "num_key_value_heads"));
    hkv = a.num_kv_heads / p.size;
    kv_first = p.rank * hkv;
  } else {  // fewer KV heads than ranks: each rank holds the one KV head its query heads read
    if (p.size % a.num_kv_heads != 0) {
      return invalid_argument(
          fmt::format("tensor parallelism: tensor_parallel_size {} is not a multiple of "
                      "num_key_value_heads {}",
                      p.size, a.num_kv_heads));
    }
    hkv = 1;
    kv_first = int64_t{p.rank} * a.num_kv_heads / p.size;
  }
  RETURN_IF_ERROR(b.rows(a.q, p.rank * hq * d, hq * d));
  RETURN_IF_ERROR(b.rows(a.k, kv_first * d, hkv * d));
  RETURN_IF_ERROR(b.rows(a.v, kv_first * d, hkv * d));
  RETURN_IF_ERROR(b.columns(a.o, p.rank * hq * d, hq * d, p.rank));
  a.num_heads = static_cast<int>(hq);
  a.num_kv_heads = static_cast<int>(hkv);
  return Status::Ok();
}

// MLA by heads: the rank's heads' rows of q_rope and q_nope (row views of q_b, already in the
// loaded [rope | nope] order), of kv_b, and o_proj's columns. The q and kv LoRA down-projections and
// norms are replicated, and so is the latent cache: every head reads the same latent row per token.
Status shard_mla(MlaPlan& m, const ParallelRank& p, ShardBuilder& b) {
  RETURN_IF_ERROR(divisible(m.num_heads, p.size, "num_attention_heads"));
  const int64_t h = m.num_heads / p.size, first = p.rank * h;
  RETURN_IF_ERROR(b.rows(m.q_rope, first * m.rope_dim, h * m.rope_dim));
  RETURN_IF_ERROR(b.rows(m.q_nope, first * m.nope_dim, h * m.nope_dim));
  const int64_t kv_b_rows = int64_t{m.nope_dim} + m.v_dim;
  RETURN_IF_ERROR(b.slice(m.kv_b, 0, IndexRange{first * kv_b_rows, h * kv_b_rows}));
  RETURN_IF_ERROR(b.columns(m.o, first * m.v_dim, h * m.v_dim, p.rank));
  m.num_heads = static_cast<int>(h);
  return Status::Ok();
}

Status shard_mlp(MlpPlan& m, const ParallelRank& p, ShardBuilder& b) {
  RETURN_IF_ERROR(divisible(m.gate.out, p.size, "intermediate_size"));
  const int64_t n = m.gate.out / p.size;
  RETURN_IF_ERROR(b.rows(m.gate, p.rank * n, n));
  RETURN_IF_ERROR(b.rows(m.up, p.rank * n, n));
  return b.columns(m.down, p.rank * n, n, p.rank);
}

Status shard_moe(MoePlan& m, const ParallelRank& p, ShardBuilder& b) {
  if (p.expert_parallel) {
    if (m.num_experts % p.size != 0) {
      return invalid_argument(fmt::format("expert parallelism: {} experts are not divisible by tensor_parallel_size {}",
                                          m.num_experts, p.size));
    }
    const int local = m.num_experts / p.size;
    m.expert_begin = p.rank * local;
    m.num_local_experts = local;
    RETURN_IF_ERROR(b.slice(m.gate_up, 0, IndexRange{m.expert_begin, local}));
    RETURN_IF_ERROR(b.slice(m.down, 0, IndexRange{m.expert_begin, local}));
    return m.shared ? shard_mlp(*m.shared, p, b) : Status::Ok();
  }
  RETURN_IF_ERROR(divisible(m.intermediate, p.size, "the experts' intermediate_size"));
  const int64_t n = m.intermediate / p.size;
  RETURN_IF_ERROR(b.slice(m.gate_up, 1, IndexRange{p.rank * n, n}));
  RETURN_IF_ERROR(b.slice(m.gate_up, 1, IndexRange{m.intermediate + p.rank * n, n}));
  RETURN_IF_ERROR(b.slice(m.down, 2, IndexRange{p.rank * n, n}));
  m.intermediate = n;
  return m.shared ? shard_mlp(*m.shared, p, b) : Status::Ok();
}

}  // namespace

StatusOr<ModelPlan> shard_model_plan(const ModelPlan& full, const ParallelRank& p) {
  if (p.size < 1 || p.rank < 0 || p.rank >= p.size) {
    return invalid_argument(fmt::format("tensor parallelism: rank {} of {}", p.rank, p.size));
  }
  if (p.size == 1) return full;
  ModelPlan plan = full;
  ShardBuilder b;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    LayerPlan& layer = plan.layers[l];
    // A lightning layer's RMSNorm spans every head, so it stays whole on every rank (replicated weights,
    // state and compute; its output needs no reduction).
    Status status = layer.lightning ? Status::Ok()
                    : layer.mla     ? shard_mla(*layer.mla, p, b)
                                    : shard_attention(layer.attention, p, b);
    if (status.ok()) status = layer.moe ? shard_moe(*layer.moe, p, b) : shard_mlp(layer.mlp, p, b);
    if (!status.ok()) return status.with_context(fmt::format("layer {}", l));
    layer.mixer_partial = !layer.lightning;
    layer.ffn_partial = true;
  }
  const int64_t vocab = full.vocab_size, per_rank = (vocab + p.size - 1) / p.size;
  plan.vocab_begin = p.rank * per_rank;
  plan.vocab_size = std::min(per_rank, vocab - plan.vocab_begin);
  if (plan.vocab_size < 1) {
    return invalid_argument(
        fmt::format("tensor parallelism: a vocabulary of {} leaves rank {} of {} no rows", vocab, p.rank, p.size));
  }
  RETURN_IF_ERROR(b.slice(plan.embed, 0, IndexRange{plan.vocab_begin, plan.vocab_size}));
  RETURN_IF_ERROR(b.rows(plan.head.lm_head, plan.vocab_begin, plan.vocab_size));
  RETURN_IF_ERROR(b.finish(plan_tensors(full), plan));
  return plan;
}

}  // namespace longbow
