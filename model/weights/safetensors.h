// Read-only, memory-mapped safetensors checkpoints (single file or sharded with
// model.safetensors.index.json).
//
// open_checkpoint validates every header before returning: JSON well-formed, dtypes known,
// data_offsets in range, non-overlapping and matching shape × dtype size, file not truncated.
// A malformed file is a Status (DATA_LOSS or INVALID_ARGUMENT naming file and tensor), never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/dtype.h"
#include "common/status.h"

namespace longbow {

// A tensor inside a mapped file. `data` stays valid while the Checkpoint that produced it lives.
// `data` is only as aligned as the file makes it (files from SafetensorsWriter and from the
// safetensors library align every tensor to its element size); read through memcpy or to_float32
// when in doubt.
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t num_bytes = 0;

  int64_t num_elements() const;
};

// What the runtime expects to find: a name, a shape, and the dtypes it accepts (bf16, fp16, fp32).
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

class Checkpoint {
 public:
  // Opens `<dir>/model.safetensors.index.json` if present (all shards it names), else
  // `<dir>/model.safetensors`. Logs progress while validating large checkpoints.
  static StatusOr<std::unique_ptr<Checkpoint>> open(const std::string& model_dir);
  // Opens one .safetensors file.
  static StatusOr<std::unique_ptr<Checkpoint>> open_file(const std::string& path);

  ~Checkpoint();
  Checkpoint(const Checkpoint&) = delete;
  Checkpoint& operator=(const Checkpoint&) = delete;

  // NOT_FOUND names the tensor. UNIMPLEMENTED names tensor and dtype for a valid safetensors dtype
  // that longbow does not load (loaded: BF16, F16, F32, and I32, F8_E4M3 for non-weight uses).
  StatusOr<TensorView> tensor(const std::string& name) const;
  // Checks presence, shape and a floating dtype (bf16/fp16/fp32, or e4m3 with block scales) of every spec; the first failure
  // names tensor, expected and actual shape or dtype.
  Status check(const std::vector<TensorSpec>& specs) const;
  // NOT_FOUND or INVALID_ARGUMENT as check(), else the tensor.
  StatusOr<TensorView> tensor(const TensorSpec& spec) const;

  std::vector<std::string> tensor_names() const;  // sorted; includes tensors of unloaded dtypes
  uint64_t total_bytes() const;  // sum of all tensors' data bytes

 private:
  Checkpoint() = default;
  struct MappedFile;
  struct UnloadedTensor {  // a tensor whose safetensors dtype has no DType
    std::string dtype;
    std::string file;
    uint64_t num_bytes = 0;
  };
  // Maps, validates and indexes one file; `names` are the tensors an index expects there (may be null).
  Status add_file(const std::string& path, const std::vector<std::string>* names);
  static StatusOr<std::unique_ptr<Checkpoint>> open_sharded(const std::string& model_dir,
                                                            const std::string& index_path);

  std::string source_;  // the directory or file opened, for messages
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, UnloadedTensor> unloaded_;
};

// Tensor data converted to fp32 on the host (for the CPU backend and tests). Handles every DType
// (BF16, F16, F32 and also I32, F8_E4M3); unaligned data is fine.
std::vector<float> to_float32(const TensorView& tensor);

}  // namespace longbow
