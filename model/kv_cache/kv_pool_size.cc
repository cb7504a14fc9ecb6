#include "model/kv_cache/kv_pool_size.h"

#include "model/kv_cache/window_pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace longbow {

size_t kv_page_bytes(const ModelConfig& config, DType kv_dtype, int page_size) {
  const auto layers = static_cast<size_t>(config.num_hidden_layers);
  const auto tokens = static_cast<size_t>(page_size);
  // K and V, each [page_size][num_kv_heads][head_dim] per layer.
  const size_t kv = size_t{2} * layers * tokens * static_cast<size_t>(config.num_key_value_heads) *
                    static_cast<size_t>(config.head_dim) * dtype_size(kv_dtype);
  // The index cache page of a DSA layer: [page_size × index_head_dim e4m3][page_size × fp32 scale].
  const size_t index = config.dsa ? layers * tokens * (static_cast<size_t>(config.dsa->head_dim) + 4) : 0;
  return kv + index;
}

StatusOr<int> kv_pages_for_memory(const ModelConfig& config, DType kv_dtype, int page_size, size_t free_bytes,
                                  double memory_fraction) {
  if (!(memory_fraction > 0.0 && memory_fraction <= 1.0)) {
    return invalid_argument("kv cache memory fraction " + std::to_string(memory_fraction) + " is not in (0, 1]");
  }
  size_t page_bytes = kv_page_bytes(config, kv_dtype, page_size);
  if (page_bytes == 0) return invalid_argument("kv cache: the model config gives pages of 0 bytes");
  auto budget = static_cast<size_t>(static_cast<double>(free_bytes) * memory_fraction);
  size_t pages = budget / page_bytes;
  if (pages == 0) {
    return resource_exhausted("kv cache: " + std::to_string(budget) + " bytes available hold no page of " +
                              std::to_string(page_bytes) + " bytes");
  }
  return static_cast<int>(std::min<size_t>(pages, static_cast<size_t>(std::numeric_limits<int>::max())));
}

int64_t group_demand_tokens(const CacheGroup& group, const GroupDemand& demand) {
  if (group.is_state) return 0;
  if (group.window <= 0) return demand.max_model_len;
  const int64_t page_size = std::max(1, demand.page_size);
  return std::min(window_live_pages_bound(group.window, demand.max_batched_tokens, page_size) * page_size,
                  int64_t{demand.max_model_len});
}

std::vector<int> plan_group_pages(const std::vector<CacheGroup>& groups, size_t budget_bytes,
                                  const GroupDemand& demand) {
  const int64_t page_size = std::max(1, demand.page_size);
  const int slots = std::max(0, demand.max_num_seqs);
  std::vector<int> sizes(groups.size(), 0);
  // State slots first: their demand is fixed (one per running sequence). Null pages next.
  size_t fixed = 0;
  for (const CacheGroup& g : groups) {
    fixed += g.is_state ? static_cast<size_t>(g.bytes_per_slot) * static_cast<size_t>(slots)
                        : static_cast<size_t>(g.bytes_per_page);
  }
  const size_t rest = budget_bytes > fixed ? budget_bytes - fixed : 0;
  // Bytes one full-length sequence costs in each paged group, and in all of them together.
  double per_sequence_bytes = 0.0;
  std::vector<double> group_pages_per_sequence(groups.size(), 0.0);
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].is_state) continue;
    const double pages = static_cast<double>((group_demand_tokens(groups[i], demand) + page_size - 1) / page_size);
    group_pages_per_sequence[i] = pages;
    per_sequence_bytes += pages * static_cast<double>(groups[i].bytes_per_page);
  }
  // Full-length sequences the rest holds (fractional), then each group's pages for that many.
  const double sequences = per_sequence_bytes > 0.0 ? static_cast<double>(rest) / per_sequence_bytes : 0.0;
  constexpr double kMaxPool = static_cast<double>(std::numeric_limits<int>::max() - 1);
  for (size_t i = 0; i < groups.size(); ++i) {
    if (groups[i].is_state) {
      // All slots, or as many as fit when even those do not.
      const auto slot_bytes = static_cast<size_t>(groups[i].bytes_per_slot);
      sizes[i] = slot_bytes == 0 || budget_bytes >= fixed
                     ? slots
                     : static_cast<int>(std::min<size_t>(static_cast<size_t>(slots), budget_bytes / slot_bytes));
      continue;
    }
    if (groups[i].bytes_per_page == 0) {
      sizes[i] = 1;
      continue;
    }
    const double pages = std::floor(std::min(kMaxPool, sequences * group_pages_per_sequence[i]));
    sizes[i] = 1 + static_cast<int>(pages);  // + the null page
  }
  return sizes;
}

std::string describe_layer_ranges(const std::vector<int>& layers) {
  std::string out;
  for (size_t i = 0; i < layers.size();) {
    size_t j = i;
    while (j + 1 < layers.size() && layers[j + 1] == layers[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += j == i ? fmt::format("{}", layers[i]) : fmt::format("{}-{}", layers[i], layers[j]);
    i = j + 1;
  }
  return out;
}

namespace {

std::string group_name(const CacheGroup& group, size_t index) {
  const std::string kind =
      group.is_state ? std::string("state") : group.window > 0 ? fmt::format("window {}", group.window) : "full";
  return fmt::format("group {} ({}, layers {})", index, kind, describe_layer_ranges(group.layers));
}

}  // namespace

Status check_group_plan(const std::vector<CacheGroup>& groups, const std::vector<int>& pool_sizes,
                        const GroupDemand& demand) {
  if (pool_sizes.size() != groups.size()) {
    return invalid_argument(
        fmt::format("kv cache plan: {} pool sizes for {} cache groups", pool_sizes.size(), groups.size()));
  }
  for (size_t i = 0; i < groups.size(); ++i) {
    const CacheGroup& g = groups[i];
    if (g.is_state && pool_sizes[i] < demand.max_num_seqs) {
      return resource_exhausted(fmt::format("kv cache plan: {} holds {} state slots of {} bytes, fewer than the {} "
                                            "running sequences (max_num_seqs)",
                                            group_name(g, i), pool_sizes[i], g.bytes_per_slot, demand.max_num_seqs));
    }
    if (!g.is_state && pool_sizes[i] < 2) {
      return resource_exhausted(fmt::format("kv cache plan: {} holds no page of {} bytes besides its null page",
                                            group_name(g, i), g.bytes_per_page));
    }
  }
  return Status::Ok();
}

std::string describe_group_plan(const std::vector<CacheGroup>& groups, const std::vector<int>& pool_sizes,
                                const GroupDemand& demand) {
  std::string out;
  for (size_t i = 0; i < groups.size() && i < pool_sizes.size(); ++i) {
    const CacheGroup& g = groups[i];
    if (!out.empty()) out += "; ";
    if (g.is_state) {
      const double gib = static_cast<double>(g.bytes_per_slot) * pool_sizes[i] / double(1 << 30);
      out += fmt::format("{}: {} slots of {} bytes ({:.2f} GiB)", group_name(g, i), pool_sizes[i], g.bytes_per_slot,
                         gib);
      continue;
    }
    const double gib = static_cast<double>(g.bytes_per_page) * pool_sizes[i] / double(1 << 30);
    out += fmt::format("{}: {} pages of {} tokens ({:.2f} GiB, null page included), demand {} tokens per sequence",
                       group_name(g, i), pool_sizes[i], demand.page_size, gib, group_demand_tokens(g, demand));
  }
  return out;
}

}  // namespace longbow
