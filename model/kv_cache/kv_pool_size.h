// How many KV pages fit in the memory a backend has left after weights and workspace.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dtype.h"
#include "common/status.h"
#include "model/config/model_config.h"

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

}  // namespace longbow
