// Memory planning at load (DESIGN §5), as vLLM plans with --gpu-memory-utilization: this process may
// hold `utilization` × the backend's total memory. Memory already in use when loading starts (the
// CUDA context, libraries, other processes) counts against that budget; what is free of it after the
// weights and the workspace for the largest step becomes the KV pool:
//
//   KV bytes = free after weights and workspace − (1 − utilization) × total
//
// Pure arithmetic over measured numbers, so the rules are unit-tested without a device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace longbow {

// INVALID_ARGUMENT unless 0 < utilization <= 1.
Status check_memory_utilization(double utilization);

// Before any weight is allocated: RESOURCE_EXHAUSTED naming the numbers when `weights_bytes` does not
// fit in free_bytes − (1 − utilization) × total_bytes.
Status check_weights_fit(size_t weights_bytes, size_t total_bytes, size_t free_bytes, double utilization,
                         std::string_view backend_name);

struct KvPoolRequest {
  std::string backend_name;
  size_t total_bytes = 0;  // the backend's memory
  size_t free_bytes = 0;   // free now, with the weights and the workspace allocated
  double utilization = 0.9;
  size_t weights_bytes = 0;    // for the log and the error messages
  size_t workspace_bytes = 0;  // likewise
  size_t page_bytes = 0;       // one KV page of every layer (kv_page_bytes)
  int page_size = 0;           // tokens per page
  int explicit_pages = 0;      // > 0: exactly this many pages (--num-kv-pages), checked against free memory only
  size_t space_cap_bytes = 0;  // > 0: the planned pool takes at most this (the CPU's KV space)
  int64_t useful_pages = 0;    // > 0: more pages than this are never planned (the CPU: all sequences at full length)
  int64_t max_model_len = 0;   // tokens one sequence may reach
};

struct KvPoolPlan {
  int num_pages = 0;
  size_t pool_bytes = 0;
  int64_t tokens = 0;   // num_pages × page_size
  std::string summary;  // one log line: weights, workspace, KV GiB and how many tokens fit
  std::string warning;  // non-empty when an explicit pool cannot hold one max_model_len sequence
};

// The KV pool for `request`. RESOURCE_EXHAUSTED naming the numbers when no page fits, when an explicit
// pool exceeds free memory, or (as vLLM) when a planned pool cannot hold one sequence of
// max_model_len tokens; that message names the longest max_model_len that would fit.
StatusOr<KvPoolPlan> plan_kv_pool(const KvPoolRequest& request);

// "1.50 GiB"
std::string gib(double bytes);

}  // namespace longbow
