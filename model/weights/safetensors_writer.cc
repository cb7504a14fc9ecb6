#include "model/weights/safetensors_writer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "common/half.h"

namespace longbow {
namespace {

// Writes `bytes` to `path` through a temporary file and a rename.
Status write_atomically(const std::string& path, const std::vector<std::span<const std::byte>>& pieces) {
  const std::string temp_path = path + ".tmp";
  {
    std::ofstream out(temp_path, std::ios::binary | std::ios::trunc);
    if (!out) return invalid_argument(temp_path + ": cannot open for writing");
    for (std::span<const std::byte> piece : pieces) {
      out.write(reinterpret_cast<const char*>(piece.data()), static_cast<std::streamsize>(piece.size()));
    }
    out.flush();
    if (!out) return data_loss(temp_path + ": write failed");
  }
  if (std::rename(temp_path.c_str(), path.c_str()) != 0) {
    return data_loss(path + ": cannot rename " + temp_path + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

std::span<const std::byte> as_bytes(const std::string& text) {
  return {reinterpret_cast<const std::byte*>(text.data()), text.size()};
}

}  // namespace

uint16_t f32_to_f16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to infinity
  if (magnitude < 0x38800000u) {
    // Below the smallest normal half (2^-14): the subnormal m · 2^-24. Scaling by 2^24 is exact, and
    // nearbyint rounds to nearest even; m == 1024 is exactly the smallest normal's encoding.
    const float scaled = std::fabs(value) * 16777216.0f;
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(scaled)));
  }
  const uint32_t exponent = (magnitude >> 23) - 127 + 15;
  uint32_t half = (exponent << 10) | ((magnitude >> 13) & 0x3ffu);
  const uint32_t remainder = magnitude & 0x1fffu;
  if (remainder > 0x1000u || (remainder == 0x1000u && (half & 1u))) ++half;  // a carry may bump the exponent
  return static_cast<uint16_t>(sign | half);
}

Status SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                              std::span<const std::byte> data) {
  if (name.empty()) return invalid_argument("safetensors writer: empty tensor name");
  for (const Entry& entry : tensors_) {
    if (entry.name == name) return invalid_argument("safetensors writer: tensor \"" + name + "\" added twice");
  }
  uint64_t numel = 1;
  for (int64_t extent : shape) {
    if (extent < 0) return invalid_argument("safetensors writer: tensor \"" + name + "\" has a negative extent");
    numel *= static_cast<uint64_t>(extent);
  }
  if (numel * dtype_size(dtype) != data.size()) {
    return invalid_argument("safetensors writer: tensor \"" + name + "\" has " + std::to_string(data.size()) +
                            " bytes, its shape needs " + std::to_string(numel * dtype_size(dtype)));
  }
  tensors_.push_back(Entry{name, dtype, std::move(shape), std::vector<std::byte>(data.begin(), data.end())});
  return Status::Ok();
}

Status SafetensorsWriter::add_float(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                    std::span<const float> values) {
  std::vector<std::byte> bytes(values.size() * dtype_size(dtype));
  switch (dtype) {
    case DType::kF32:
      if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
      break;
    case DType::kBF16:
    case DType::kF16:
      for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t bits = dtype == DType::kBF16 ? f32_to_bf16(values[i]) : f32_to_f16(values[i]);
        std::memcpy(bytes.data() + 2 * i, &bits, sizeof(bits));
      }
      break;
    default:
      return invalid_argument("safetensors writer: tensor \"" + name + "\": add_float cannot store " +
                              std::string(dtype_name(dtype)));
  }
  return add(name, dtype, std::move(shape), bytes);
}

uint64_t SafetensorsWriter::total_bytes() const {
  uint64_t total = 0;
  for (const Entry& entry : tensors_) total += entry.data.size();
  return total;
}

Status SafetensorsWriter::write_file(const std::string& path, const std::vector<const Entry*>& entries) const {
  std::vector<const Entry*> ordered = entries;
  std::stable_sort(ordered.begin(), ordered.end(), [](const Entry* a, const Entry* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });

  nlohmann::json header = nlohmann::json::object();
  if (!metadata_.empty()) header["__metadata__"] = metadata_;
  uint64_t offset = 0;
  for (const Entry* entry : ordered) {
    header[entry->name] = {{"dtype", dtype_name(entry->dtype)},
                           {"shape", entry->shape},
                           {"data_offsets", {offset, offset + entry->data.size()}}};
    offset += entry->data.size();
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');

  std::byte length[8];
  uint64_t header_size = header_text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<std::byte>((header_size >> (8 * i)) & 0xffu);

  std::vector<std::span<const std::byte>> pieces = {std::span<const std::byte>(length, 8), as_bytes(header_text)};
  for (const Entry* entry : ordered) pieces.emplace_back(entry->data);
  return write_atomically(path, pieces);
}

Status SafetensorsWriter::write(const std::string& path) const {
  std::vector<const Entry*> entries;
  for (const Entry& entry : tensors_) entries.push_back(&entry);
  return write_file(path, entries);
}

Status SafetensorsWriter::write_sharded(const std::string& dir, uint64_t max_shard_bytes) const {
  std::vector<std::vector<const Entry*>> shards;
  uint64_t shard_bytes = 0;
  for (const Entry& entry : tensors_) {
    if (shards.empty() || (shard_bytes > 0 && shard_bytes + entry.data.size() > max_shard_bytes)) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(&entry);
    shard_bytes += entry.data.size();
  }
  if (shards.empty()) shards.emplace_back();

  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char file_name[64];
    std::snprintf(file_name, sizeof(file_name), "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    RETURN_IF_ERROR(write_file(dir + "/" + file_name, shards[k]));
    for (const Entry* entry : shards[k]) weight_map[entry->name] = file_name;
  }
  nlohmann::json index = {{"metadata", {{"total_size", total_bytes()}}}, {"weight_map", weight_map}};
  return write_atomically(dir + "/model.safetensors.index.json", {as_bytes(index.dump(2) + "\n")});
}

}  // namespace longbow
