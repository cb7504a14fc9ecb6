#include "model/runtime/decode_graphs.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "common/logging.h"

namespace longbow {

std::vector<int> decode_graph_buckets(int max_batch_size) {
  std::vector<int> buckets;
  for (int b : {1, 2, 4, 8}) {
    if (b <= max_batch_size) buckets.push_back(b);
  }
  for (int64_t p = 16; p <= max_batch_size; p *= 2) {
    buckets.push_back(static_cast<int>(p));
    if (p + p / 2 <= max_batch_size) buckets.push_back(static_cast<int>(p + p / 2));
  }
  if (max_batch_size >= 1 && buckets.back() != max_batch_size) buckets.push_back(max_batch_size);
  return buckets;
}

int decode_graph_bucket(std::span<const int> buckets, int num_seqs) {
  auto it = std::lower_bound(buckets.begin(), buckets.end(), num_seqs);
  return it == buckets.end() ? 0 : *it;
}

bool is_decode_step(std::span<const SequenceStep> steps) {
  if (steps.empty()) return false;
  return std::all_of(steps.begin(), steps.end(),
                     [](const SequenceStep& s) { return s.tokens.size() == 1 && s.want_logits; });
}

StatusOr<StepInputs> pad_decode_step(const StepInputs& in, int bucket, const DecodeShape& shape) {
  const int s = in.num_seqs();
  if (s < 1 || in.num_tokens() != s || in.max_query_len != 1 || static_cast<int>(in.logit_rows.size()) != s) {
    return invalid_argument("pad_decode_step: not a decode step (" + std::to_string(in.num_tokens()) +
                            " tokens, " + std::to_string(s) + " sequences, " +
                            std::to_string(in.logit_rows.size()) + " logit rows)");
  }
  if (bucket < s) {
    return invalid_argument("pad_decode_step: bucket " + std::to_string(bucket) + " < " + std::to_string(s) +
                            " sequences");
  }
  if (in.num_groups() != shape.num_groups) {
    return invalid_argument(fmt::format("pad_decode_step: the step has {} cache groups, the graph shape {}",
                                        in.num_groups(), shape.num_groups));
  }
  if (in.pages_per_seq > shape.table_width || in.max_context_len > shape.max_context_len) {
    return invalid_argument("pad_decode_step: the step needs " + std::to_string(in.pages_per_seq) + " pages and " +
                            std::to_string(in.max_context_len) + " tokens; the graph shape has " +
                            std::to_string(shape.table_width) + " and " + std::to_string(shape.max_context_len));
  }
  StepInputs out = padding_decode_step(bucket, shape);
  std::copy(in.token_ids.begin(), in.token_ids.end(), out.token_ids.begin());
  std::copy(in.positions.begin(), in.positions.end(), out.positions.begin());
  std::copy(in.context_lens.begin(), in.context_lens.end(), out.context_lens.begin());
  std::copy(in.state_slots.begin(), in.state_slots.end(), out.state_slots.begin());
  const auto w = static_cast<size_t>(shape.table_width);
  const auto in_w = static_cast<size_t>(in.pages_per_seq);
  for (size_t g = 0; g < in.slots.size() && g < out.slots.size(); ++g) {
    std::copy(in.slots[g].begin(), in.slots[g].end(), out.slots[g].begin());
    for (size_t row = 0; row < static_cast<size_t>(s); ++row) {
      std::copy_n(in.block_tables[g].begin() + static_cast<std::ptrdiff_t>(row * in_w), in_w,
                  out.block_tables[g].begin() + static_cast<std::ptrdiff_t>(row * w));
    }
  }
  return out;
}

StepInputs padding_decode_step(int bucket, const DecodeShape& shape) {
  StepInputs out;
  const auto b = static_cast<size_t>(bucket);
  out.token_ids.assign(b, 0);
  out.positions.assign(b, 0);
  out.slots.assign(static_cast<size_t>(shape.num_groups), std::vector<int32_t>(b, -1));
  out.context_lens.assign(b, 0);
  out.state_slots.assign(b, -1);
  out.query_start.resize(b + 1);
  out.logit_rows.resize(b);
  for (size_t i = 0; i <= b; ++i) out.query_start[i] = static_cast<int32_t>(i);
  for (size_t i = 0; i < b; ++i) out.logit_rows[i] = static_cast<int32_t>(i);
  out.block_tables.assign(static_cast<size_t>(shape.num_groups),
                          std::vector<int32_t>(b * static_cast<size_t>(shape.table_width), -1));
  out.pages_per_seq = shape.table_width;
  out.max_query_len = 1;
  out.max_context_len = shape.max_context_len;
  return out;
}

DecodeGraphCache::DecodeGraphCache(Backend& backend, std::vector<int> buckets, bool capture)
    : backend_(backend), buckets_(std::move(buckets)), capture_(capture) {
  for (int b : buckets_) entries_.push_back(Entry{b, nullptr, false});
}

int DecodeGraphCache::bucket_for(int num_seqs) const {
  const int bucket = decode_graph_bucket(buckets_, num_seqs);
  if (bucket == 0) return 0;
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), bucket);
  return entries_[static_cast<size_t>(it - buckets_.begin())].failed ? 0 : bucket;
}

int DecodeGraphCache::num_captured() const {
  return static_cast<int>(std::count_if(entries_.begin(), entries_.end(), [](const Entry& e) { return e.graph != nullptr; }));
}

Status DecodeGraphCache::run(int bucket, const std::function<Status()>& issue) {
  auto it = std::lower_bound(buckets_.begin(), buckets_.end(), bucket);
  if (it == buckets_.end() || *it != bucket) {
    return internal_error("decode graphs: " + std::to_string(bucket) + " is not a bucket");
  }
  Entry& entry = entries_[static_cast<size_t>(it - buckets_.begin())];
  if (entry.graph) return entry.graph->replay();
  // First step of this bucket (or no capture): eagerly, which also sizes the backend's scratch
  // buffers for these exact launches so that the capture below allocates nothing.
  RETURN_IF_ERROR(issue());
  if (!capture_ || entry.failed) return Status::Ok();
  RETURN_IF_ERROR(backend_.synchronize());  // the eager step's errors surface here, not in the capture
  const auto start = std::chrono::steady_clock::now();
  StatusOr<std::unique_ptr<BackendGraph>> graph = backend_.capture_graph(issue);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!graph.ok()) {
    entry.failed = true;
    spdlog::warn("decode graphs: capturing batch size {} failed after {:.1f} ms; that size runs eagerly: {}", bucket,
                 ms, graph.status().to_string());
    return Status::Ok();
  }
  entry.graph = std::move(graph).value();
  spdlog::info("decode graphs: captured batch size {} in {:.1f} ms ({:.2f} MiB of graph memory; {} captured)", bucket,
               ms, static_cast<double>(entry.graph->num_bytes()) / 1048576.0, num_captured());
  return Status::Ok();
}

size_t DecodeGraphCache::graph_bytes() const {
  size_t bytes = 0;
  for (const Entry& e : entries_) bytes += e.graph ? e.graph->num_bytes() : 0;
  return bytes;
}

}  // namespace longbow
