#include "model/backend/cpu/cpu_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "common/half.h"

namespace longbow {
namespace {

// Reads "<key>: <n> kB" from /proc/meminfo; 0 when absent.
size_t meminfo_bytes(const std::string& text, const std::string& key) {
  size_t at = text.find(key + ":");
  if (at == std::string::npos) return 0;
  return static_cast<size_t>(std::strtoull(text.c_str() + at + key.size() + 1, nullptr, 10)) * 1024;
}

}  // namespace

CpuBackend::CpuBackend(const CpuBackendOptions& options)
    : memory_limit_bytes_(options.memory_limit_bytes), allocated_bytes_(std::make_shared<std::atomic<size_t>>(0)) {}

StatusOr<Tensor> CpuBackend::allocate(DType dtype, std::initializer_list<int64_t> dims) {
  if (dims.size() > static_cast<size_t>(kMaxTensorRank)) {
    return invalid_argument("cpu allocate: rank " + std::to_string(dims.size()) + " exceeds " +
                            std::to_string(kMaxTensorRank));
  }
  Tensor t;
  t.dtype = dtype;
  t.rank = static_cast<int>(dims.size());
  size_t i = 0;
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument("cpu allocate: negative dimension " + std::to_string(d));
    t.dims[i++] = d;
  }
  // calloc: zeroed memory (deterministic contents) and lazily committed pages for big KV pools.
  size_t bytes = t.num_bytes();
  if (memory_limit_bytes_ > 0 && bytes > memory_limit_bytes_ - std::min(memory_limit_bytes_, allocated_bytes_->load())) {
    return resource_exhausted("cpu allocate: " + std::string(dtype_name(dtype)) + " " + t.shape_string() + " (" +
                              std::to_string(bytes) + " bytes) exceeds the backend's memory limit of " +
                              std::to_string(memory_limit_bytes_) + " bytes (" +
                              std::to_string(allocated_bytes_->load()) + " in use)");
  }
  void* memory = std::calloc(bytes == 0 ? 1 : bytes, 1);
  if (memory == nullptr) {
    return resource_exhausted("cpu allocate: out of host memory for " + std::string(dtype_name(dtype)) + " " +
                              t.shape_string() + " (" + std::to_string(bytes) + " bytes)");
  }
  *allocated_bytes_ += bytes;
  t.storage = std::shared_ptr<void>(memory, [counter = allocated_bytes_, bytes](void* p) {
    *counter -= bytes;
    std::free(p);
  });
  t.data = memory;
  return t;
}

StatusOr<MemoryInfo> CpuBackend::memory_info() const {
  MemoryInfo info;
  if (memory_limit_bytes_ > 0) {
    info.total_bytes = memory_limit_bytes_;
    info.free_bytes = memory_limit_bytes_ - std::min(memory_limit_bytes_, allocated_bytes_->load());
    return info;
  }
  std::ifstream meminfo("/proc/meminfo");
  if (meminfo) {
    std::string text((std::istreambuf_iterator<char>(meminfo)), std::istreambuf_iterator<char>());
    info.total_bytes = meminfo_bytes(text, "MemTotal");
    info.free_bytes = meminfo_bytes(text, "MemAvailable");
  }
  if (info.total_bytes == 0) {
    long page = sysconf(_SC_PAGESIZE);
    long total = sysconf(_SC_PHYS_PAGES);
    long available = sysconf(_SC_AVPHYS_PAGES);
    if (page <= 0 || total <= 0 || available < 0) {
      return unavailable("cpu memory_info: neither /proc/meminfo nor sysconf reports host memory");
    }
    info.total_bytes = static_cast<size_t>(total) * static_cast<size_t>(page);
    info.free_bytes = static_cast<size_t>(available) * static_cast<size_t>(page);
  }
  return info;
}

Status CpuBackend::upload(const void* host, Tensor& dst) {
  if (dst.num_bytes() == 0) return Status::Ok();
  if (host == nullptr || dst.data == nullptr) {
    return invalid_argument("cpu upload: null " + std::string(host == nullptr ? "host pointer" : "destination") +
                            " for " + dst.shape_string());
  }
  std::memcpy(dst.data, host, dst.num_bytes());
  return Status::Ok();
}

Status CpuBackend::upload_converted(const void* host, DType src_dtype, int64_t count, Tensor& dst) {
  if (count != dst.numel()) {
    return invalid_argument("cpu upload_converted: " + std::to_string(count) + " source elements for a " +
                            std::string(dtype_name(dst.dtype)) + " " + dst.shape_string() + " tensor of " +
                            std::to_string(dst.numel()));
  }
  if (count == 0) return Status::Ok();
  if (host == nullptr || dst.data == nullptr) {
    return invalid_argument("cpu upload_converted: null " +
                            std::string(host == nullptr ? "host pointer" : "destination"));
  }
  if (src_dtype == dst.dtype) return upload(host, dst);
  auto n = static_cast<size_t>(count);
  if (dst.dtype == DType::kF32 && (src_dtype == DType::kBF16 || src_dtype == DType::kF16)) {
    const auto* src = static_cast<const uint16_t*>(host);
    float* out = dst.as<float>();
    bool bf16 = src_dtype == DType::kBF16;
    for (size_t i = 0; i < n; ++i) out[i] = bf16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
    return Status::Ok();
  }
  if (dst.dtype == DType::kBF16 && src_dtype == DType::kF32) {
    const auto* src = static_cast<const float*>(host);
    auto* out = dst.as<uint16_t>();
    for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(src[i]);
    return Status::Ok();
  }
  return unimplemented("cpu upload_converted: no conversion from " + std::string(dtype_name(src_dtype)) + " to " +
                       std::string(dtype_name(dst.dtype)));
}

Status CpuBackend::download(const Tensor& src, void* host) {
  if (src.num_bytes() == 0) return Status::Ok();
  if (host == nullptr || src.data == nullptr) {
    return invalid_argument("cpu download: null " + std::string(host == nullptr ? "host pointer" : "source") +
                            " for " + src.shape_string());
  }
  std::memcpy(host, src.data, src.num_bytes());
  return Status::Ok();
}

std::unique_ptr<Backend> create_cpu_backend(const CpuBackendOptions& options) {
  return std::make_unique<CpuBackend>(options);
}

}  // namespace longbow
