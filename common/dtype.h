// Element types of tensors in files and on backends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace longbow {

enum class DType : uint8_t {
  kF32,
  kF16,
  kBF16,
  kI32,
  kFP8E4M3,  // OCP e4m3 (finite, max 448), the DSA index-cache format
};

constexpr size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16: return 2;
    case DType::kBF16: return 2;
    case DType::kI32: return 4;
    case DType::kFP8E4M3: return 1;
  }
  return 0;
}

constexpr std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kFP8E4M3: return "F8_E4M3";
  }
  return "?";
}

}  // namespace longbow
