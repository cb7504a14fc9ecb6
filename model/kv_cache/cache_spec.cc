#include "model/kv_cache/cache_spec.h"

#include <cstddef>

namespace longbow {

std::vector<CacheGroup> group_cache_specs(const std::vector<CacheSpec>& per_layer, int page_size) {
  std::vector<CacheGroup> groups;
  auto find_or_add = [&groups](bool is_state, int window) -> CacheGroup& {
    for (CacheGroup& g : groups) {
      if (g.is_state == is_state && (is_state || g.window == window)) return g;
    }
    CacheGroup& g = groups.emplace_back();
    g.is_state = is_state;
    g.window = is_state ? 0 : window;
    return g;
  };
  for (size_t layer = 0; layer < per_layer.size(); ++layer) {
    if (const auto* paged = std::get_if<PagedSpec>(&per_layer[layer])) {
      CacheGroup& g = find_or_add(false, paged->window);
      g.bytes_per_page += paged->bytes_per_token * page_size;
      g.layers.push_back(static_cast<int>(layer));
    } else {
      CacheGroup& g = find_or_add(true, 0);
      g.bytes_per_slot += std::get<StateSpec>(per_layer[layer]).bytes_per_sequence;
      g.layers.push_back(static_cast<int>(layer));
    }
  }
  return groups;
}

}  // namespace longbow
