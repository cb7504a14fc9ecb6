// How many KV pages fit in the memory a backend has left after weights and workspace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"
#include "model/config/model_config.h"
#include "model/kv_cache/cache_spec.h"

namespace longbow {

// Bytes one page (page_size tokens of every layer) occupies: K and V in `kv_dtype`, plus, when the
// config has a DSA indexer (config.dsa), the FP8 index cache of every layer (index_head_dim e4m3
// bytes + one fp32 scale per token, DESIGN §5). A checkpoint with indexer tensors on some layers
// only allocates less; this count is then an upper bound. The one page-cost function: the runtime's
// pool check and the server's pool sizing both use it.
size_t kv_page_bytes(const ModelConfig& config, DType kv_dtype, int page_size);

// Pages that fit in `memory_fraction` of `free_bytes`. RESOURCE_EXHAUSTED naming the numbers when
// not even one page fits; INVALID_ARGUMENT for a fraction outside (0, 1].
StatusOr<int> kv_pages_for_memory(const ModelConfig& config, DType kv_dtype, int page_size, size_t free_bytes,
                                  double memory_fraction);

// Pages needed to hold `num_tokens` tokens.
constexpr int pages_for_tokens(int64_t num_tokens, int page_size) {
  return static_cast<int>((num_tokens + page_size - 1) / page_size);
}

// What the engine will ask of the KV cache, the input of the per-group memory plan (DESIGN §5).
struct GroupDemand {
  int64_t max_model_len = 0;       // longest sequence (prompt + output), tokens
  int64_t max_batched_tokens = 0;  // most tokens one step computes (the chunked-prefill budget)
  int max_num_seqs = 0;            // most sequences running at once
  int page_size = 64;              // tokens per page (kPageSize)
};

// Tokens of one sequence a paged group must hold at most: every token for a full group
// (max_model_len); for a window group the whole pages that the window plus one step's new tokens can
// touch, window_live_pages_bound(W, max_batched_tokens) pages (what the engine's KV manager counts on,
// max_sequence_tokens), at most max_model_len.
int64_t group_demand_tokens(const CacheGroup& group, const GroupDemand& demand);

// Splits `budget_bytes` of KV memory between the groups, returning one pool size per group, in
// the order of `groups`:
// - a state group gets max_num_seqs slots (one per running sequence), taken from the budget first;
// - the paged groups share the rest in proportion to their per-sequence demand in bytes
//   (pages_for(group_demand_tokens) · bytes_per_page), so that they run out at the same number of
//   full-length sequences; each paged pool also holds its reserved null page (page id 0, never
//   handed out: model/kv_cache/window_pages.h), which is counted in its size.
// A paged size of 1 (only the null page) or a state size below max_num_seqs means the budget does
// not fit; check_group_plan() says so. Groups of 0 bytes per page or slot get 1 page / max_num_seqs
// slots, costing nothing.
std::vector<int> plan_group_pages(const std::vector<CacheGroup>& groups, size_t budget_bytes,
                                  const GroupDemand& demand);

// RESOURCE_EXHAUSTED naming the group when a paged pool of `pool_sizes` holds no page besides the
// null page, or a state pool has fewer than max_num_seqs slots; INVALID_ARGUMENT when the sizes do
// not match the groups.
Status check_group_plan(const std::vector<CacheGroup>& groups, const std::vector<int>& pool_sizes,
                        const GroupDemand& demand);

// One line per group for the load log, e.g.
//   "group 0 (window 512, layers 0-4,6-10): 1201 pages of 64 tokens (1.2 GiB), demand 2560 tokens per
//    sequence; group 1 (full, layers 5,11): 3001 pages ... ; group 2 (state, layers 3): 8 slots ..."
// joined with "; ". The token counts a full sequence can reach follow from the sizes.
std::string describe_group_plan(const std::vector<CacheGroup>& groups, const std::vector<int>& pool_sizes,
                                const GroupDemand& demand);

// "0-4,6-10,12": ascending layer indices as ranges.
std::string describe_layer_ranges(const std::vector<int>& layers);

}  // namespace longbow
