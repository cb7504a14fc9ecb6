// SafetensorsWriter: builds safetensors checkpoints from host tensors (the demo-model tool, tests).
//
// Files follow the format Checkpoint reads: the JSON header is padded with spaces to a multiple of
// 8 bytes, and tensors are laid out without gaps, largest element size first (then in the order they
// were added), so every tensor is aligned to its element size. Files are written to a temporary name
// and renamed, so a reader never sees half a file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"

namespace longbow {

class SafetensorsWriter {
 public:
  // Copies `data`: raw little-endian elements of `dtype`, shape.product() · dtype_size bytes.
  // INVALID_ARGUMENT on a duplicate or empty name, a negative extent, or a size mismatch.
  Status add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const std::byte> data);
  // Rounds fp32 values to `dtype` (F32, F16 or BF16; round to nearest even) and adds them.
  Status add_float(const std::string& name, DType dtype, std::vector<int64_t> shape, std::span<const float> values);
  // A string entry of the header's "__metadata__" object.
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

  // One file holding every tensor.
  Status write(const std::string& path) const;
  // `dir`/model-0000K-of-0000N.safetensors, each at most `max_shard_bytes` of tensor data (a larger
  // tensor gets a shard of its own), plus `dir`/model.safetensors.index.json with the weight_map.
  // `dir` must exist.
  Status write_sharded(const std::string& dir, uint64_t max_shard_bytes) const;

  uint64_t total_bytes() const;
  size_t num_tensors() const { return tensors_.size(); }

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<std::byte> data;
  };
  Status write_file(const std::string& path, const std::vector<const Entry*>& entries) const;

  std::vector<Entry> tensors_;
  std::map<std::string, std::string> metadata_;
};

// fp32 → IEEE half, round to nearest even, overflow to infinity, NaN stays NaN.
uint16_t f32_to_f16(float value);

}  // namespace longbow
