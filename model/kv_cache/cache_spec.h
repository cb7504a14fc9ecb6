// What a layer keeps between steps, and how layers share block tables (DESIGN §5).
//
// Every layer kind declares one CacheSpec when it is built (model/layers/). Layers whose specs
// have the same shape (paged with the same window, or state) form one CacheGroup: they share one
// block table per sequence (paged) or one slot per sequence (state), and the group's pool holds,
// for every page id, the bytes of all its layers. The runtime reports its groups
// (Transformer::cache_groups()); the engine's KV manager keeps one page group per paged group and
// one slot pool per state group, and hands the runtime one block table per paged group in each
// SequenceStep, in the order of cache_groups().
#pragma once

#include <cstdint>
#include <variant>
#include <vector>

namespace longbow {

// Per-token pages: a layer that reads cached tokens (GQA K+V, MLA latent, DSA index keys).
struct PagedSpec {
  int64_t bytes_per_token = 0;  // everything the layer stores per token
  // 0: every cached token may be read (full attention). W > 0: a query at position p reads only
  // positions > p − W, so pages wholly behind every query's window can go back to the pool.
  int window = 0;
};

// A fixed state per sequence, whatever its length (linear "lightning" attention).
struct StateSpec {
  int64_t bytes_per_sequence = 0;
};

using CacheSpec = std::variant<PagedSpec, StateSpec>;

// Layers sharing one block table (paged) or one slot (state).
struct CacheGroup {
  bool is_state = false;
  int window = 0;               // paged groups: the PagedSpec window shared by every layer
  int64_t bytes_per_page = 0;   // paged: Σ over layers of bytes_per_token · kPageSize
  int64_t bytes_per_slot = 0;   // state: Σ over layers of bytes_per_sequence
  std::vector<int> layers;      // ascending layer indices
};

// Groups the per-layer specs: paged layers by window, state layers into one group; groups appear
// in the order of their first layer.
std::vector<CacheGroup> group_cache_specs(const std::vector<CacheSpec>& per_layer, int page_size);

}  // namespace longbow
