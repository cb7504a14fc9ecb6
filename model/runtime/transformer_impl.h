// Decoder: the one Transformer implementation (transformer.cc runs steps, transformer_load.cc loads).
// Internal to model/runtime.
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "model/arch/model_plan.h"
#include "model/arch/plan_shard.h"
#include "model/layers/decoder_layer.h"
#include "model/layers/dsa_row_blocks.h"
#include "model/layers/lm_head.h"
#include "model/runtime/decode_graphs.h"
#include "model/runtime/step_inputs.h"
#include "model/runtime/transformer.h"
#include "model/runtime/workspace.h"

namespace longbow {

// A tensor-parallel rank's place in its group (tensor_parallel.h); comm null for a single rank.
struct RankContext {
  ParallelRank rank;
  Communicator* comm = nullptr;
};

class Decoder final : public Transformer {
 public:
  Decoder(const ModelConfig& config, Backend& backend, const RuntimeOptions& options, const RankContext& rank = {})
      : config_(config), backend_(backend), options_(options), rank_(rank) {}

  Status init(const WeightSource& source);
  // logits may be null (a tensor-parallel rank other than 0: every rank computes the same rows).
  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override;
  bool supports_sampling(const SamplingRow& row) const override {
    return backend_.supports_sampling(row, config_.vocab_size);
  }
  Status forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                        std::vector<RowSample>* samples) override;
  const ModelConfig& config() const override { return config_; }
  const std::vector<CacheGroup>& cache_groups() const override { return groups_; }
  int num_pages(int group) const override;
  int num_decode_graphs() const override { return graphs_ ? graphs_->num_captured() : 0; }
  Status read_index_cache(int layer, std::vector<uint8_t>* bytes) override;
  Status read_dsa_selection(std::vector<int32_t>* selection) override;

 private:
  // Loading (transformer_load.cc), in this order.
  Status load_weights(const WeightSource& source);
  Status build_layers();
  Status init_workspace();
  Status init_dsa();
  Status reserve_dsa_graph_workspace(int64_t rows_per_block);
  Status allocate_kv_pools();
  std::vector<int> decode_batch_sizes() const;
  bool captures_decode_graphs() const;
  void init_decode_graphs();
  Status capture_decode_graphs();

  // Running (transformer.cc).
  StatusOr<StepViews> prepare_step(const StepInputs& in);
  Status plan_dsa_blocks(const StepInputs& in, StepViews& v);
  // Every launch of a step whose inputs are on the device, up to the logits (no host synchronisation).
  Status run_model(StepViews& s);
  // Runs a non-empty step; returns the device logits of its rows that want them ([rows, vocab] F32,
  // in step order; a view of the workspace, valid until the next step).
  StatusOr<Tensor> run_step(std::span<const SequenceStep> steps);
  StatusOr<Tensor> run_padded_decode(const StepInputs& in, int bucket);

  ModelConfig config_;
  Backend& backend_;
  RuntimeOptions options_;
  RankContext rank_;
  ModelPlan plan_;
  TensorMap tensors_;        // every checkpoint tensor on the backend, by name
  size_t weights_bytes_ = 0;
  std::vector<RopeTensors> ropes_;  // plan_.ropes on the backend
  RopeTensors dsa_rope_;            // the indexer's table (index_rope_dim dims of ropes_[0]'s RoPE)
  Tensor embed_;
  float embed_scale_ = 1.0f;
  Norm embed_norm_, final_norm_;
  std::vector<DecoderLayer> layers_;
  LmHead head_;
  std::vector<CacheGroup> groups_;
  std::vector<int> layer_group_;  // cache group of each layer
  std::vector<int> paged_index_;  // per cache group: its index among the paged groups (the step's
                                  // slots and block tables), or -1 for the state group
  std::vector<int> group_pages_;  // pool size of each group (pages, or a state group's slots)
  int num_paged_groups() const {
    return static_cast<int>(std::count_if(paged_index_.begin(), paged_index_.end(), [](int i) { return i >= 0; }));
  }
  StepLimits limits_;
  Workspace ws_;
  std::vector<int32_t> index_staging_;        // host image of ws_.indices, reused every step
  DecodeShape decode_shape_;                  // the workspace's table width and context bound
  std::unique_ptr<DecodeGraphCache> graphs_;  // null: decode steps run eagerly; after ws_ (uses it)
  int num_dsa_layers_ = 0;
  int selection_rows_ = 0;  // rows of the DSA selection the last forward() wrote; 0: it attended densely
};

}  // namespace longbow
