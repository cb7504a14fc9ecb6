#include "model/backend/cuda/cuda_support.h"

#include <algorithm>
#include <initializer_list>
#include <string>

#include "kernels/common/paged_kv.h"

namespace longbow {
namespace {

bool one_of(int value, std::initializer_list<int> allowed) {
  return std::find(allowed.begin(), allowed.end(), value) != allowed.end();
}

std::string set_string(std::initializer_list<int> allowed) {
  std::string out;
  for (int v : allowed) out += (out.empty() ? "" : ", ") + std::to_string(v);
  return out;
}

Status unsupported(const std::string& field, int value, const std::string& why, std::initializer_list<int> allowed) {
  return unimplemented(field + " " + std::to_string(value) + " " + why + " (supported: " + set_string(allowed) + ")");
}

// Dense attention: flash prefill and paged decode take every head_dim that is a multiple of 8 from 8
// to 256 (kernels/common/paged_kv.h: instances for 64, 128 and 256, smaller sizes zero-padded to the
// next) and rope any even rotary_dim <= head_dim (kernels/flash_prefill, kernels/paged_decode,
// kernels/rope); paged decode rounds a query group up to 1, 2, 4, 8 or 16 heads per KV head.
Status check_dense(const ModelConfig& config) {
  if (kernels::attention_padded_dim(config.head_dim) == 0) {
    return unimplemented("head_dim " + std::to_string(config.head_dim) +
                         " has no CUDA attention kernel (supported: multiples of 8 from 8 to 256)");
  }
  if (config.num_key_value_heads <= 0 || config.num_attention_heads % config.num_key_value_heads != 0) {
    return invalid_argument("num_attention_heads " + std::to_string(config.num_attention_heads) +
                            " is not a multiple of num_key_value_heads " + std::to_string(config.num_key_value_heads));
  }
  if (config.num_query_groups() > 16) {
    return unimplemented("num_attention_heads / num_key_value_heads = " + std::to_string(config.num_query_groups()) +
                         " exceeds the CUDA decode kernel's limit of 16");
  }
  if (config.rope.rotary_dim % 2 != 0 || config.rope.rotary_dim > config.head_dim) {
    return unimplemented("rotary_dim " + std::to_string(config.rope.rotary_dim) + " must be even and <= head_dim");
  }
  return Status::Ok();
}

// DSA layers (kernels/dsa/params.h):
//  - index keys / queries (index_quant.cu): index_head_dim 64 or 128, one warp per vector, so the
//    rotated dims index_rope_dim must be a multiple of 2 · index_head_dim / 32 (4 or 8);
//  - index logits (index_logits.cu): the Hopper wgmma kernel takes 16, 32 or 64 heads at
//    index_head_dim 128; the portable mma.sync kernel takes 16, 32, 64 at 128 and 16, 64 at 64;
//  - top-k (topk.cu): 1 <= index_topk <= 4096;
//  - sparse attention (sparse_attention.cu) and sparse prefill (the selected flash prefill): head_dim
//    64 or 128 and exactly 1, 2, 4 or 8 query heads per KV head (no rounding up, unlike paged decode).
// (An MLA model's attention is latent attention over the indexer's selection, which the latent
// attention op checks per layer: only the indexer's limits apply to it.)
Status check_dsa(const ModelConfig& config, const DsaIndexerConfig& dsa) {
  if (!config.mla && !one_of(config.head_dim, {64, 128})) {
    return unsupported("head_dim", config.head_dim, "has no CUDA DSA sparse-attention kernel", {64, 128});
  }
  if (!one_of(dsa.head_dim, {64, 128})) {
    return unsupported("index_head_dim", dsa.head_dim, "has no CUDA indexer kernel", {64, 128});
  }
  if (dsa.head_dim == 128 && !one_of(dsa.n_heads, {16, 32, 64})) {
    return unsupported("index_n_heads", dsa.n_heads, "has no CUDA index-logits kernel at index_head_dim 128",
                       {16, 32, 64});
  }
  if (dsa.head_dim == 64 && !one_of(dsa.n_heads, {16, 64})) {
    return unsupported("index_n_heads", dsa.n_heads, "has no CUDA index-logits kernel at index_head_dim 64", {16, 64});
  }
  const int rope_step = 2 * dsa.head_dim / 32;
  if (dsa.rope_dim < 0 || dsa.rope_dim > dsa.head_dim || dsa.rope_dim % rope_step != 0) {
    return unimplemented("index_rope_dim " + std::to_string(dsa.rope_dim) + " is not supported by the CUDA indexer " +
                         "at index_head_dim " + std::to_string(dsa.head_dim) + " (supported: multiples of " +
                         std::to_string(rope_step) + " from 0 to " + std::to_string(dsa.head_dim) + ")");
  }
  if (dsa.topk < 1 || dsa.topk > 4096) {
    return unimplemented("index_topk " + std::to_string(dsa.topk) +
                         " is outside the CUDA top-k kernel's range (supported: 1 to 4096)");
  }
  if (!config.mla && !one_of(config.num_query_groups(), {1, 2, 4, 8})) {
    return unsupported("num_attention_heads / num_key_value_heads =", config.num_query_groups(),
                       "has no CUDA DSA sparse-attention kernel", {1, 2, 4, 8});
  }
  return Status::Ok();
}

}  // namespace

Status check_cuda_supported(const ModelConfig& config) {
  if (!config.mla) RETURN_IF_ERROR(check_dense(config));  // MLA layers ask supports("latent_attention")
  if (config.dsa) RETURN_IF_ERROR(check_dsa(config, *config.dsa));
  return Status::Ok();
}

}  // namespace longbow
