// Tensor: a typed, contiguous, row-major view of backend memory that may keep its allocation alive.
//
// Tensors never own host data on the CUDA backend; `data` is a device pointer there. Copying a Tensor
// copies the view and shares the allocation. Views (rows(), reshape()) share it too.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "common/dtype.h"

namespace longbow {

constexpr int kMaxTensorRank = 4;

struct Tensor {
  std::shared_ptr<void> storage;  // the allocation this view lives in; may be null for borrowed memory
  void* data = nullptr;
  DType dtype = DType::kF32;
  std::array<int64_t, kMaxTensorRank> dims{};
  int rank = 0;

  int64_t dim(int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[static_cast<size_t>(i)];
    return n;
  }
  size_t num_bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  // Elements per step of the leading dimension.
  int64_t row_numel() const { return rank == 0 ? 1 : numel() / dims[0]; }

  template <typename T>
  T* as() const { return static_cast<T*>(data); }

  // Rows [begin, begin + count) of the leading dimension.
  Tensor rows(int64_t begin, int64_t count) const {
    assert(rank > 0 && begin >= 0 && count >= 0 && begin + count <= dims[0]);
    Tensor view = *this;
    view.data = static_cast<char*>(data) + static_cast<size_t>(begin * row_numel()) * dtype_size(dtype);
    view.dims[0] = count;
    return view;
  }

  // Same memory, new shape with the same element count (asserted).
  Tensor reshape(std::initializer_list<int64_t> new_dims) const {
    assert(new_dims.size() <= kMaxTensorRank);
    Tensor view = *this;
    view.rank = static_cast<int>(new_dims.size());
    view.dims = {};
    size_t i = 0;
    for (int64_t d : new_dims) view.dims[i++] = d;
    assert(view.numel() == numel());
    return view;
  }

  std::string shape_string() const {
    std::string out = "[";
    for (int i = 0; i < rank; ++i) {
      if (i) out += ", ";
      out += std::to_string(dims[static_cast<size_t>(i)]);
    }
    return out + "]";
  }
};

}  // namespace longbow
