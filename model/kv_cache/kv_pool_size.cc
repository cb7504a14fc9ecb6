#include "model/kv_cache/kv_pool_size.h"

#include <algorithm>
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

}  // namespace longbow
