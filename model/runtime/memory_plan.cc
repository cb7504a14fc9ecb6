#include "model/runtime/memory_plan.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace longbow {
namespace {

// Bytes the budget leaves of `free_bytes`: free − (1 − utilization) × total, floored at 0.
size_t usable_bytes(size_t total_bytes, size_t free_bytes, double utilization) {
  const double reserve = (1.0 - utilization) * static_cast<double>(total_bytes);
  const double usable = static_cast<double>(free_bytes) - reserve;
  return usable <= 0.0 ? 0 : static_cast<size_t>(usable);
}

std::string fixed(double value, int digits) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%.*f", digits, value);
  return buffer;
}

}  // namespace

std::string gib(double bytes) { return fixed(bytes / 1073741824.0, 2) + " GiB"; }

Status check_memory_utilization(double utilization) {
  if (!(utilization > 0.0 && utilization <= 1.0)) {
    return invalid_argument("gpu memory utilization must be in (0, 1], got " + fixed(utilization, 4));
  }
  return Status::Ok();
}

Status check_weights_fit(size_t weights_bytes, size_t total_bytes, size_t free_bytes, double utilization,
                         std::string_view backend_name) {
  RETURN_IF_ERROR(check_memory_utilization(utilization));
  const size_t usable = usable_bytes(total_bytes, free_bytes, utilization);
  if (weights_bytes <= usable) return Status::Ok();
  return resource_exhausted(
      "runtime: the weights need " + gib(static_cast<double>(weights_bytes)) + " but only " +
      gib(static_cast<double>(usable)) + " of the " + std::string(backend_name) + " backend's " +
      gib(static_cast<double>(total_bytes)) + " may be used (utilization " + fixed(utilization, 2) + ", " +
      gib(static_cast<double>(total_bytes - std::min(free_bytes, total_bytes))) + " already in use)");
}

StatusOr<KvPoolPlan> plan_kv_pool(const KvPoolRequest& r) {
  RETURN_IF_ERROR(check_memory_utilization(r.utilization));
  if (r.page_bytes == 0 || r.page_size < 1) return invalid_argument("runtime: a KV page of 0 bytes or tokens");
  const std::string spent = "weights " + gib(static_cast<double>(r.weights_bytes)) + ", workspace " +
                            gib(static_cast<double>(r.workspace_bytes));
  KvPoolPlan plan;
  int64_t pages = 0;
  if (r.explicit_pages > 0) {
    pages = r.explicit_pages;
    const double need = static_cast<double>(pages) * static_cast<double>(r.page_bytes);
    if (need > static_cast<double>(r.free_bytes)) {
      return resource_exhausted("runtime: a KV pool of " + std::to_string(pages) + " pages needs " + gib(need) +
                                " but the " + r.backend_name + " backend has " +
                                gib(static_cast<double>(r.free_bytes)) + " free after " + spent);
    }
  } else {
    size_t budget = usable_bytes(r.total_bytes, r.free_bytes, r.utilization);
    if (r.space_cap_bytes > 0) budget = std::min(budget, r.space_cap_bytes);
    pages = static_cast<int64_t>(budget / r.page_bytes);
    if (r.useful_pages > 0) pages = std::min(pages, r.useful_pages);
    pages = std::min<int64_t>(pages, std::numeric_limits<int>::max() / r.page_size);
    if (pages == 0) {
      return resource_exhausted(
          "runtime: no KV page fits: of the " + r.backend_name + " backend's " +
          gib(static_cast<double>(r.total_bytes)) + " (utilization " + fixed(r.utilization, 2) + "), " + spent +
          " leave " + gib(static_cast<double>(budget)) + ", less than one page of " +
          std::to_string(r.page_bytes) +
          " bytes; raise --gpu-memory-utilization or lower --max-num-seqs / --max-batched-tokens");
    }
  }
  plan.num_pages = static_cast<int>(pages);
  plan.pool_bytes = static_cast<size_t>(pages) * r.page_bytes;
  plan.tokens = pages * r.page_size;
  if (r.max_model_len > 0 && plan.tokens < r.max_model_len) {
    const std::string shortfall =
        "the KV pool holds " + std::to_string(plan.tokens) + " tokens (" +
        gib(static_cast<double>(plan.pool_bytes)) + "), less than one sequence of max_model_len " +
        std::to_string(r.max_model_len) + " tokens (" +
        gib(static_cast<double>(r.max_model_len) * static_cast<double>(r.page_bytes) / r.page_size) + ")";
    if (r.explicit_pages == 0) {
      return resource_exhausted("runtime: " + shortfall + "; raise --gpu-memory-utilization or set --max-model-len " +
                                std::to_string(plan.tokens) + " or less");
    }
    plan.warning = "runtime: " + shortfall + "; longer requests will be rejected";
  }
  const double sequences = r.max_model_len > 0 ? static_cast<double>(plan.tokens) / r.max_model_len : 0.0;
  plan.summary = "memory plan on " + r.backend_name + " (" + gib(static_cast<double>(r.total_bytes)) +
                 ", utilization " + fixed(r.utilization, 2) + "): " + spent + ", KV cache " +
                 gib(static_cast<double>(plan.pool_bytes)) + " = " + std::to_string(plan.num_pages) + " pages = " +
                 std::to_string(plan.tokens) + " tokens" +
                 (r.max_model_len > 0 ? " (" + fixed(sequences, 2) + " sequences of " +
                                            std::to_string(r.max_model_len) + ")"
                                      : std::string()) +
                 (r.explicit_pages > 0 ? ", pages set explicitly" : "");
  return plan;
}

}  // namespace longbow
