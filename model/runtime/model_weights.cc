#include "model/runtime/model_weights.h"

#include <algorithm>
#include <map>

#include <cstring>

#include <fmt/ranges.h>

#include "common/half.h"
#include "common/logging.h"
#include "model/arch/architecture.h"
#include "model/runtime/dummy_weights.h"
#include "model/runtime/transformer.h"

namespace longbow {

std::vector<TensorSpec> expected_tensors(const ModelConfig& config) {
  const std::vector<bool> every_layer(static_cast<size_t>(config.num_hidden_layers), config.dsa.has_value());
  return expected_tensors(config, every_layer);
}

const std::vector<std::string>& dsa_indexer_suffixes(const ModelConfig& config) {
  static const std::vector<std::string> gqa = {
      "self_attn.indexer.wq.weight", "self_attn.indexer.wk.weight", "self_attn.indexer.weights_proj.weight",
      "self_attn.indexer.k_norm.weight", "self_attn.indexer.k_norm.bias"};
  static const std::vector<std::string> mla = {
      "self_attn.indexer.wq_b.weight", "self_attn.indexer.wk.weight", "self_attn.indexer.weights_proj.weight",
      "self_attn.indexer.k_norm.weight", "self_attn.indexer.k_norm.bias"};
  return config.mla && config.mla->q_lora_rank > 0 ? mla : gqa;
}

std::vector<TensorSpec> expected_tensors(const ModelConfig& config, const std::vector<bool>& dsa_layers) {
  StatusOr<ModelPlan> plan = make_model_plan(config, dsa_layers);
  return plan.ok() ? plan_tensors(*plan) : std::vector<TensorSpec>{};
}

StatusOr<std::vector<bool>> find_dsa_layers(const ModelConfig& config, const Checkpoint& checkpoint) {
  const std::vector<std::string> names = checkpoint.tensor_names();  // sorted
  auto has = [&](const std::string& name) { return std::binary_search(names.begin(), names.end(), name); };
  std::vector<bool> dsa(static_cast<size_t>(config.num_hidden_layers), false);
  for (int l = 0; l < config.num_hidden_layers; ++l) {
    std::string present, missing;
    for (const std::string& suffix : dsa_indexer_suffixes(config)) {
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
                     layer_tensor_name(0, dsa_indexer_suffixes(config)[0]) + " is missing)");
  }
  return dsa;
}

namespace {

bool listed(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

StatusOr<Tensor> allocate_tensor(const TensorSpec& spec, const WeightTransforms& transforms, Backend& backend) {
  const std::vector<int64_t>& s = spec.shape;
  if (s.empty() || s.size() > 3) {
    return unimplemented(fmt::format("loading {}: tensors of rank {} are not supported", spec.name, s.size()));
  }
  const DType dt = listed(transforms.keep_f32, spec.name) ? DType::kF32 : backend.compute_dtype();
  StatusOr<Tensor> allocated = s.size() == 1   ? backend.allocate(dt, {s[0]})
                               : s.size() == 2 ? backend.allocate(dt, {s[0], s[1]})
                                               : backend.allocate(dt, {s[0], s[1], s[2]});
  if (!allocated.ok()) return allocated.status().with_context("allocating " + spec.name);
  return allocated;
}

// F32 copy of a checkpoint tensor plus one (Gemma's 1 + w), computed in fp32.
StatusOr<std::vector<float>> plus_one(const TensorSpec& spec, const TensorView& view) {
  std::vector<float> out(static_cast<size_t>(view.num_elements()));
  for (size_t i = 0; i < out.size(); ++i) {
    float w = 0.0f;
    uint16_t half = 0;
    if (view.dtype != DType::kF32) std::memcpy(&half, view.data + i * 2, 2);
    switch (view.dtype) {
      case DType::kF32: std::memcpy(&w, view.data + i * 4, 4); break;
      case DType::kBF16: w = bf16_to_f32(half); break;
      case DType::kF16: w = f16_to_f32(half); break;
      default: return unimplemented(fmt::format("loading {}: a (1 + w) norm weight in {}", spec.name,
                                                dtype_name(view.dtype)));
    }
    out[i] = 1.0f + w;
  }
  return out;
}

// The name of the block scales of an FP8 tensor (transformers' "<name>_scale_inv").
std::string scale_name(const std::string& name) { return name + "_scale_inv"; }

// e4m3 `view` [.., N, K] with scales [.., ceil(N / br), ceil(K / bc)] (Fp8Config), dequantized in fp32.
StatusOr<std::vector<float>> dequantize_fp8(const TensorView& view, const Checkpoint& checkpoint,
                                            const std::optional<Fp8Config>& fp8) {
  if (!fp8) {
    return invalid_argument(fmt::format("loading {}: the tensor is F8_E4M3 but config.json has no quantization_config "
                                        "(quant_method fp8) saying how its scales are blocked", view.name));
  }
  StatusOr<TensorView> scale = checkpoint.tensor(scale_name(view.name));
  if (!scale.ok()) {
    return not_found(fmt::format("loading {}: an F8_E4M3 weight needs its block scales {}, which the checkpoint lacks",
                                 view.name, scale_name(view.name)));
  }
  const std::vector<int64_t>& shape = view.shape;
  const int64_t rows = shape.size() >= 2 ? shape[shape.size() - 2] : 1, cols = shape.empty() ? 1 : shape.back();
  const int64_t batch = cols * rows == 0 ? 0 : view.num_elements() / (rows * cols);
  const int64_t scale_rows = (rows + fp8->block_rows - 1) / fp8->block_rows;
  const int64_t scale_cols = (cols + fp8->block_cols - 1) / fp8->block_cols;
  std::vector<int64_t> want(shape.begin(), shape.end() - std::min<size_t>(shape.size(), 2));
  want.push_back(scale_rows);
  want.push_back(scale_cols);
  if (shape.size() < 2) want = {scale_cols};
  if (scale->shape != want || (scale->dtype != DType::kF32 && scale->dtype != DType::kBF16)) {
    return invalid_argument(fmt::format("loading {}: its scales {} are {} [{}], expected F32 [{}] for {}x{} blocks",
                                        view.name, scale->name, dtype_name(scale->dtype),
                                        fmt::join(scale->shape, ", "), fmt::join(want, ", "), fp8->block_rows,
                                        fp8->block_cols));
  }
  std::vector<float> values = to_float32(view);
  const std::vector<float> scales = to_float32(*scale);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t r = 0; r < rows; ++r) {
      const float* scale_row = scales.data() + (b * scale_rows + r / fp8->block_rows) * scale_cols;
      float* row = values.data() + (b * rows + r) * cols;
      for (int64_t c = 0; c < cols; ++c) row[c] *= scale_row[c / fp8->block_cols];
    }
  }
  return values;
}

// A checkpoint tensor's values as uploaded: its own bytes, or (FP8) dequantized fp32 ones.
struct HostTensor {
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t count = 0;
  std::vector<float> dequantized;
};

StatusOr<HostTensor> host_tensor(const TensorView& view, const Checkpoint& checkpoint,
                                 const WeightTransforms& transforms) {
  HostTensor host{view.data, view.dtype, view.num_elements(), {}};
  if (view.dtype != DType::kFP8E4M3) return host;
  ASSIGN_OR_RETURN(host.dequantized, dequantize_fp8(view, checkpoint, transforms.fp8));
  host.data = host.dequantized.data();
  host.dtype = DType::kF32;
  return host;
}

// The checkpoint bytes of `view` with its rows in `order` (row i is view row order[i]).
StatusOr<std::vector<uint8_t>> reorder_rows(const TensorSpec& spec, const HostTensor& view,
                                            const std::vector<int64_t>& order) {
  const int64_t rows = spec.shape[0];
  if (static_cast<int64_t>(order.size()) != rows) {
    return internal_error(fmt::format("loading {}: a row order of {} rows for {} rows", spec.name, order.size(), rows));
  }
  const size_t num_bytes = static_cast<size_t>(view.count) * dtype_size(view.dtype);
  const size_t row_bytes = num_bytes / static_cast<size_t>(rows);
  std::vector<uint8_t> out(num_bytes);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t from = order[static_cast<size_t>(i)];
    if (from < 0 || from >= rows) return internal_error(fmt::format("loading {}: row order entry {}", spec.name, from));
    std::memcpy(out.data() + static_cast<size_t>(i) * row_bytes,
                static_cast<const uint8_t*>(view.data) + static_cast<size_t>(from) * row_bytes, row_bytes);
  }
  return out;
}

const std::vector<int64_t>* row_order_of(const WeightTransforms& transforms, const std::string& name) {
  for (const RowOrder& order : transforms.row_orders) {
    if (order.name == name) return &order.rows;
  }
  return nullptr;
}

const TensorShard* shard_of(const WeightTransforms& transforms, const std::string& name) {
  for (const TensorShard& shard : transforms.shards) {
    if (shard.name == name) return &shard;
  }
  return nullptr;
}

// The checkpoint's shape of a plan tensor: a sharded one's full shape.
TensorSpec checkpoint_spec(const TensorSpec& spec, const WeightTransforms& transforms) {
  const TensorShard* shard = shard_of(transforms, spec.name);
  return shard == nullptr ? spec : TensorSpec{spec.name, shard->full_shape};
}

// A shard seen on the full tensor flattened to [R, C] (C its last dimension; a vector is one row): the
// kept rows (ascending) when the shard cuts an earlier axis, or the kept column ranges when it cuts the
// last one. take() slices any block of whole rows, so a tensor assembled from row blocks is sliced
// piece by piece.
struct FlatSelection {
  std::vector<int64_t> rows;     // empty: every row
  std::vector<IndexRange> cols;  // empty: every column

  int64_t num_cols(int64_t all) const {
    if (cols.empty()) return all;
    int64_t n = 0;
    for (const IndexRange& r : cols) n += r.size;
    return n;
  }
  // The kept elements of full rows [first, first + count) (host values, `element_bytes` each), and in
  // *out_row the shard row the first of them lands on.
  std::vector<uint8_t> take(const void* data, size_t element_bytes, int64_t first, int64_t count, int64_t num_cols_all,
                            int64_t* out_row) const {
    const auto* base = static_cast<const uint8_t*>(data);
    const size_t row_bytes = static_cast<size_t>(num_cols_all) * element_bytes;
    std::vector<int64_t> picked;
    if (rows.empty()) {
      for (int64_t r = first; r < first + count; ++r) picked.push_back(r);
      *out_row = first;
    } else {
      auto lo = std::lower_bound(rows.begin(), rows.end(), first);
      auto hi = std::lower_bound(rows.begin(), rows.end(), first + count);
      picked.assign(lo, hi);
      *out_row = lo - rows.begin();
    }
    std::vector<uint8_t> out;
    out.reserve(picked.size() * static_cast<size_t>(num_cols(num_cols_all)) * element_bytes);
    for (int64_t r : picked) {
      const uint8_t* row = base + static_cast<size_t>(r - first) * row_bytes;
      if (cols.empty()) {
        out.insert(out.end(), row, row + row_bytes);
        continue;
      }
      for (const IndexRange& c : cols) {
        out.insert(out.end(), row + static_cast<size_t>(c.begin) * element_bytes,
                   row + static_cast<size_t>(c.begin + c.size) * element_bytes);
      }
    }
    return out;
  }
};

// INTERNAL for an axis or range outside the shard's full shape.
StatusOr<FlatSelection> flat_selection(const TensorShard& shard) {
  FlatSelection s;
  const std::vector<int64_t>& shape = shard.full_shape;
  const auto axis = static_cast<size_t>(shard.axis);
  if (shard.axis < 0 || axis >= shape.size()) {
    return internal_error(fmt::format("loading {}: shard axis {} of a rank-{} tensor", shard.name, shard.axis,
                                      shape.size()));
  }
  const int64_t n = shape[axis];
  for (const IndexRange& r : shard.ranges) {
    if (r.begin < 0 || r.size < 0 || r.begin + r.size > n) {
      return internal_error(fmt::format("loading {}: slice [{}, {}) of {}", shard.name, r.begin, r.begin + r.size, n));
    }
  }
  if (axis + 1 == shape.size()) {
    s.cols = shard.ranges;
    return s;
  }
  int64_t outer = 1, inner_rows = 1;
  for (size_t i = 0; i < axis; ++i) outer *= shape[i];
  for (size_t i = axis + 1; i + 1 < shape.size(); ++i) inner_rows *= shape[i];
  for (int64_t o = 0; o < outer; ++o) {
    for (const IndexRange& r : shard.ranges) {
      for (int64_t j = r.begin; j < r.begin + r.size; ++j) {
        for (int64_t q = 0; q < inner_rows; ++q) s.rows.push_back((o * n + j) * inner_rows + q);
      }
    }
  }
  return s;
}

StatusOr<Tensor> upload_tensor(const TensorSpec& spec, const TensorView& view, const Checkpoint& checkpoint,
                               const WeightTransforms& transforms, Backend& backend) {
  ASSIGN_OR_RETURN(Tensor tensor, allocate_tensor(spec, transforms, backend));
  ASSIGN_OR_RETURN(HostTensor host, host_tensor(view, checkpoint, transforms));
  // The values as transformed on the host, then this rank's slice of them.
  std::vector<uint8_t> reordered;
  std::vector<float> offset;
  if (const std::vector<int64_t>* order = row_order_of(transforms, spec.name)) {
    ASSIGN_OR_RETURN(reordered, reorder_rows(checkpoint_spec(spec, transforms), host, *order));
    host.data = reordered.data();
  } else if (listed(transforms.unit_offset, spec.name)) {
    ASSIGN_OR_RETURN(offset, plus_one(spec, view));
    host.data = offset.data();
    host.dtype = DType::kF32;
  }
  std::vector<uint8_t> sliced;
  if (const TensorShard* shard = shard_of(transforms, spec.name)) {
    ASSIGN_OR_RETURN(const FlatSelection keep, flat_selection(*shard));
    const int64_t cols = shard->full_shape.back();
    int64_t first_row = 0;
    sliced = keep.take(host.data, dtype_size(host.dtype), 0, host.count / cols, cols, &first_row);
    host.data = sliced.data();
    host.count = static_cast<int64_t>(sliced.size() / dtype_size(host.dtype));
  }
  RETURN_IF_ERROR(
      backend.upload_converted(host.data, host.dtype, host.count, tensor).with_context("uploading " + spec.name));
  return tensor;
}

// The part specs of `spec` when the checkpoint lacks it and `legacy` assembles it: part i is the
// i-th of parts.size() equal row blocks of the flattened [rows, cols] tensor. Empty: load it directly.
std::vector<TensorSpec> legacy_part_specs(const TensorSpec& spec, const std::vector<std::string>& names,
                                          const std::vector<TensorParts>& legacy) {
  if (std::binary_search(names.begin(), names.end(), spec.name)) return {};
  for (const TensorParts& entry : legacy) {
    if (entry.name != spec.name || entry.parts.empty()) continue;
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < spec.shape.size(); ++i) rows *= spec.shape[i];
    const auto n = static_cast<int64_t>(entry.parts.size());
    if (rows % n != 0) return {};
    std::vector<TensorSpec> parts;
    for (const std::string& part : entry.parts) parts.push_back({part, {rows / n, spec.shape.back()}});
    // A checkpoint with none of the parts either: report the plan's own name as missing.
    if (!std::binary_search(names.begin(), names.end(), parts.front().name)) return {};
    return parts;
  }
  return {};
}

// Every tensor of `specs` from the checkpoint, by name.
StatusOr<std::map<std::string, Tensor>> upload_checkpoint(const std::vector<TensorSpec>& specs,
                                                          const Checkpoint& checkpoint, Backend& backend,
                                                          const WeightTransforms& transforms) {
  const std::vector<std::string> names = checkpoint.tensor_names();  // sorted
  std::vector<TensorSpec> direct;
  std::vector<std::pair<TensorSpec, std::vector<TensorSpec>>> assembled;
  for (const TensorSpec& spec : specs) {
    std::vector<TensorSpec> parts = legacy_part_specs(checkpoint_spec(spec, transforms), names, transforms.parts);
    if (parts.empty()) {
      direct.push_back(spec);
    } else {
      RETURN_IF_ERROR(checkpoint.check(parts).with_context("assembling " + spec.name));
      assembled.emplace_back(spec, std::move(parts));
    }
  }
  std::vector<TensorSpec> direct_full;
  for (const TensorSpec& spec : direct) direct_full.push_back(checkpoint_spec(spec, transforms));
  RETURN_IF_ERROR(checkpoint.check(direct_full));
  uint64_t total_bytes = 0;
  for (const TensorSpec& spec : direct_full) {
    ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(spec));
    total_bytes += view.num_bytes;
  }
  for (const auto& [spec, parts] : assembled) {
    for (const TensorSpec& part : parts) {
      ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(part));
      total_bytes += view.num_bytes;
    }
  }
  ProgressLog progress("uploading weights to " + std::string(backend.name()), total_bytes);
  std::map<std::string, Tensor> by_name;
  for (const auto& [spec, parts] : assembled) {
    ASSIGN_OR_RETURN(Tensor tensor, allocate_tensor(spec, transforms, backend));
    const int64_t part_rows = parts.front().shape[0], cols = parts.front().shape[1];
    const TensorShard* shard = shard_of(transforms, spec.name);
    FlatSelection keep;
    if (shard != nullptr) {
      ASSIGN_OR_RETURN(keep, flat_selection(*shard));
    }
    const int64_t kept_cols = shard ? keep.num_cols(cols) : cols;
    Tensor flat = tensor.reshape({tensor.numel() / kept_cols, kept_cols});
    for (size_t i = 0; i < parts.size(); ++i) {
      ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(parts[i]));
      ASSIGN_OR_RETURN(HostTensor host, host_tensor(view, checkpoint, transforms));
      const int64_t first_row = static_cast<int64_t>(i) * part_rows;
      if (shard == nullptr) {
        Tensor block = flat.rows(first_row, part_rows);
        RETURN_IF_ERROR(backend.upload_converted(host.data, host.dtype, host.count, block)
                            .with_context("uploading " + parts[i].name));
      } else {  // this rank's rows and columns of the part, at their places in the shard
        int64_t out_row = 0;
        const std::vector<uint8_t> bytes = keep.take(host.data, dtype_size(host.dtype), first_row, part_rows, cols,
                                                     &out_row);
        const size_t row_bytes = dtype_size(host.dtype) * static_cast<size_t>(kept_cols);
        const auto rows = static_cast<int64_t>(bytes.size() / row_bytes);
        if (rows > 0) {
          Tensor block = flat.rows(out_row, rows);
          RETURN_IF_ERROR(backend.upload_converted(bytes.data(), host.dtype, rows * kept_cols, block)
                              .with_context("uploading " + parts[i].name));
        }
      }
      progress.advance(view.num_bytes);
    }
    by_name.emplace(spec.name, std::move(tensor));
  }
  for (const TensorSpec& spec : direct) {
    ASSIGN_OR_RETURN(TensorView view, checkpoint.tensor(checkpoint_spec(spec, transforms)));
    ASSIGN_OR_RETURN(Tensor tensor, upload_tensor(spec, view, checkpoint, transforms, backend));
    progress.advance(view.num_bytes);
    by_name.emplace(spec.name, std::move(tensor));
  }
  progress.finish();
  return by_name;
}

// Every tensor of `specs` allocated and filled on the backend (dummy_weights.h has the distributions).
StatusOr<std::map<std::string, Tensor>> fill_dummy(const std::vector<TensorSpec>& specs, uint64_t seed,
                                                   const WeightTransforms& transforms, Backend& backend) {
  ProgressLog progress("filling dummy weights on " + std::string(backend.name()),
                       model_weight_bytes(specs, backend.compute_dtype()));
  std::map<std::string, Tensor> by_name;
  for (const TensorSpec& spec : specs) {
    ASSIGN_OR_RETURN(Tensor tensor, allocate_tensor(spec, transforms, backend));
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
                                                            const WeightSource& source, Backend& backend,
                                                            const WeightTransforms& transforms) {
  if (source.checkpoint() != nullptr) return upload_checkpoint(specs, *source.checkpoint(), backend, transforms);
  return fill_dummy(specs, source.dummy_seed(), transforms, backend);
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

}  // namespace longbow
