// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor
// name to {dtype, shape, data_offsets: [begin, end)} (offsets relative to the data section that
// follows the header) plus an optional "__metadata__" object, then the data section.
// Truncation (the file is shorter than the header or the offsets say) is DATA_LOSS; every other
// malformation is INVALID_ARGUMENT. Messages name the file and, where there is one, the tensor.
#include "model/weights/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string_view>

#include "common/bounded_json.h"
#include "common/half.h"
#include "common/json_file.h"
#include "common/logging.h"

namespace longbow {
namespace {

using nlohmann::json;

// The safetensors spec caps the header at 100 MB; anything larger is not a header.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct SafetensorsDType {
  std::string_view name;
  size_t size;
  std::optional<DType> dtype;  // nullopt: a valid safetensors dtype longbow does not load
};

constexpr SafetensorsDType kSafetensorsDTypes[] = {
    {"F32", 4, DType::kF32},       {"F16", 2, DType::kF16}, {"BF16", 2, DType::kBF16},
    {"I32", 4, DType::kI32},       {"F8_E4M3", 1, DType::kFP8E4M3},
    {"F64", 8, std::nullopt},      {"I64", 8, std::nullopt}, {"U64", 8, std::nullopt},
    {"U32", 4, std::nullopt},      {"I16", 2, std::nullopt}, {"U16", 2, std::nullopt},
    {"I8", 1, std::nullopt},       {"U8", 1, std::nullopt},  {"BOOL", 1, std::nullopt},
    {"F8_E5M2", 1, std::nullopt},
};

const SafetensorsDType* find_dtype(std::string_view name) {
  for (const SafetensorsDType& entry : kSafetensorsDTypes) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

// F8_E4M3: a block-scaled FP8 weight (the loader dequantizes it with its <name>_scale_inv).
bool is_float_weight_dtype(DType dtype) {
  return dtype == DType::kBF16 || dtype == DType::kF16 || dtype == DType::kF32 || dtype == DType::kFP8E4M3;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string in_quotes(std::string_view name) { return "\"" + std::string(name) + "\""; }

std::string offsets_string(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + "," + std::to_string(end) + "]";
}

// A JSON integer in [0, 2^63).
std::optional<uint64_t> non_negative_integer(const json& value) {
  if (value.is_number_unsigned()) {
    uint64_t out = value.get<uint64_t>();
    if (out > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return out;
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0) return static_cast<uint64_t>(value.get<int64_t>());
  return std::nullopt;
}

struct HeaderEntry {
  std::string name;
  const SafetensorsDType* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

// Validates one header entry against the data section size.
Status parse_entry(const std::string& path, const std::string& name, const json& value, uint64_t data_size,
                   HeaderEntry* entry) {
  const std::string where = path + ": tensor " + in_quotes(name);
  if (!value.is_object()) return invalid_argument(where + ": expected an object, got " + describe_json(value));
  entry->name = name;

  auto dtype_it = value.find("dtype");
  if (dtype_it == value.end()) return invalid_argument(where + ": missing \"dtype\"");
  if (!dtype_it->is_string()) return invalid_argument(where + ": dtype must be a string, got " + describe_json(*dtype_it));
  entry->dtype = find_dtype(dtype_it->get<std::string>());
  if (entry->dtype == nullptr) return invalid_argument(where + ": unknown dtype " + describe_json(*dtype_it));

  auto shape_it = value.find("shape");
  if (shape_it == value.end()) return invalid_argument(where + ": missing \"shape\"");
  if (!shape_it->is_array()) return invalid_argument(where + ": shape must be an array, got " + describe_json(*shape_it));
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& dim : *shape_it) {
    std::optional<uint64_t> extent = non_negative_integer(dim);
    if (!extent) {
      return invalid_argument(where + ": shape has a non-integer or negative entry: " + describe_json(dim));
    }
    entry->shape.push_back(static_cast<int64_t>(*extent));
    overflow = overflow || __builtin_mul_overflow(numel, *extent, &numel);
  }
  uint64_t num_bytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(entry->dtype->size), &num_bytes);

  auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end()) return invalid_argument(where + ": missing \"data_offsets\"");
  if (!offsets_it->is_array() || offsets_it->size() != 2) {
    return invalid_argument(where + ": data_offsets must be [begin, end], got " + describe_json(*offsets_it));
  }
  std::optional<uint64_t> begin = non_negative_integer((*offsets_it)[0]);
  std::optional<uint64_t> end = non_negative_integer((*offsets_it)[1]);
  if (!begin || !end || *end < *begin) {
    return invalid_argument(where + ": data_offsets must be integers 0 <= begin <= end, got [" +
                            describe_json((*offsets_it)[0]) + ", " + describe_json((*offsets_it)[1]) + "]");
  }
  entry->begin = *begin;
  entry->end = *end;

  if (overflow || *end - *begin != num_bytes) {
    return invalid_argument(where + ": data_offsets " + offsets_string(*begin, *end) + " span " +
                            std::to_string(*end - *begin) + " bytes, but shape " + shape_string(entry->shape) +
                            " of " + std::string(entry->dtype->name) + " needs " +
                            (overflow ? std::string("more than 2^64") : std::to_string(num_bytes)));
  }
  if (*end > data_size) {
    return data_loss(where + ": data_offsets " + offsets_string(*begin, *end) + " reach past the end of the data section (" +
                     std::to_string(data_size) + " bytes): the file is truncated or the offsets are corrupt");
  }
  return Status::Ok();
}

// Parses and validates the header of a file of `file_size` bytes starting at `base`.
Status parse_header(const std::string& path, const std::byte* base, uint64_t file_size,
                    std::vector<HeaderEntry>* entries, uint64_t* data_start) {
  if (file_size < 8) {
    return data_loss(path + ": " + std::to_string(file_size) +
                     " bytes is too short for a safetensors file (8-byte header length missing)");
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(base[i]);
  if (header_size > file_size - 8) {
    return data_loss(path + ": header length " + std::to_string(header_size) + " exceeds the " +
                     std::to_string(file_size - 8) + " bytes after it: truncated or not a safetensors file");
  }
  if (header_size > kMaxHeaderBytes) {
    return invalid_argument(path + ": header length " + std::to_string(header_size) + " exceeds the 100 MB limit");
  }
  *data_start = 8 + header_size;
  const uint64_t data_size = file_size - *data_start;

  const char* text = reinterpret_cast<const char*>(base + 8);
  ASSIGN_OR_RETURN(json header, parse_json(std::string_view(text, header_size), path + ": header"));
  if (!header.is_object()) return invalid_argument(path + ": header must be a JSON object, got " + header.type_name());

  entries->clear();
  entries->reserve(header.size());
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) return invalid_argument(path + ": __metadata__ must be an object");
      continue;
    }
    HeaderEntry entry;
    RETURN_IF_ERROR(parse_entry(path, it.key(), it.value(), data_size, &entry));
    entries->push_back(std::move(entry));
  }

  // No two tensors may share bytes (empty tensors occupy none).
  std::vector<const HeaderEntry*> by_offset;
  for (const HeaderEntry& entry : *entries) {
    if (entry.end > entry.begin) by_offset.push_back(&entry);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const HeaderEntry* a, const HeaderEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const HeaderEntry& prev = *by_offset[i - 1];
    const HeaderEntry& next = *by_offset[i];
    if (next.begin < prev.end) {
      return invalid_argument(path + ": tensors " + in_quotes(prev.name) + " [" + std::to_string(prev.begin) + ", " +
                              std::to_string(prev.end) + ") and " + in_quotes(next.name) + " [" +
                              std::to_string(next.begin) + ", " + std::to_string(next.end) + ") overlap");
    }
  }
  return Status::Ok();
}

float fp8_e4m3_to_f32(uint8_t bits) {
  const float sign = (bits & 0x80) ? -1.0f : 1.0f;
  const int exponent = (bits >> 3) & 0xf;
  const int mantissa = bits & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);  // subnormal: m/8 · 2^-6
  return sign * std::ldexp(1.0f + static_cast<float>(mantissa) / 8.0f, exponent - 7);
}

// A path inside a model directory named by an index: relative, without "..".
bool is_plain_relative_path(const std::string& name) {
  std::filesystem::path path(name);
  if (name.empty() || path.is_absolute()) return false;
  for (const auto& part : path) {
    if (part == "..") return false;
  }
  return true;
}

}  // namespace

struct Checkpoint::MappedFile {
  std::string path;
  const std::byte* data = nullptr;
  size_t size = 0;

  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data != nullptr) munmap(const_cast<std::byte*>(data), size);
  }
};

int64_t TensorView::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Checkpoint::~Checkpoint() = default;

Status Checkpoint::add_file(const std::string& path, const std::vector<std::string>* names) {
  auto file = std::make_unique<MappedFile>();
  file->path = path;
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever; the fstat
  // below then rejects anything but a regular file (for which the flag changes nothing).
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int error = errno;
    std::string message = path + ": cannot open: " + std::strerror(error);
    return error == ENOENT ? not_found(message) : data_loss(message);
  }
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return invalid_argument(path + ": not a regular file");
  }
  file->size = static_cast<size_t>(info.st_size);
  if (file->size > 0) {
    void* mapped = mmap(nullptr, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
      int error = errno;
      ::close(fd);
      return data_loss(path + ": mmap failed: " + std::strerror(error));
    }
    file->data = static_cast<const std::byte*>(mapped);
  }
  ::close(fd);

  std::vector<HeaderEntry> entries;
  uint64_t data_start = 0;
  RETURN_IF_ERROR(parse_header(path, file->data, file->size, &entries, &data_start));

  for (const HeaderEntry& entry : entries) {
    if (tensors_.count(entry.name) || unloaded_.count(entry.name)) {
      return invalid_argument(path + ": tensor " + in_quotes(entry.name) + " appears in more than one file of " +
                              source_);
    }
    const uint64_t num_bytes = entry.end - entry.begin;
    if (!entry.dtype->dtype) {
      unloaded_[entry.name] = UnloadedTensor{std::string(entry.dtype->name), path, num_bytes};
      continue;
    }
    TensorView view;
    view.name = entry.name;
    view.dtype = *entry.dtype->dtype;
    view.shape = entry.shape;
    view.data = file->data + data_start + entry.begin;
    view.num_bytes = static_cast<size_t>(num_bytes);
    tensors_.emplace(entry.name, std::move(view));
  }

  if (names != nullptr) {
    std::set<std::string_view> present;
    for (const HeaderEntry& entry : entries) present.insert(entry.name);
    for (const std::string& name : *names) {
      if (!present.count(name)) {
        return not_found(path + ": tensor " + in_quotes(name) +
                         " is not in this shard, but model.safetensors.index.json maps it here");
      }
    }
  }
  files_.push_back(std::move(file));
  return Status::Ok();
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open_file(const std::string& path) {
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->source_ = path;
  RETURN_IF_ERROR(checkpoint->add_file(path, nullptr));
  return checkpoint;
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code error;
  const std::string index_path = model_dir + "/model.safetensors.index.json";
  if (fs::exists(index_path, error)) return open_sharded(model_dir, index_path);

  const std::string single_path = model_dir + "/model.safetensors";
  if (!fs::exists(single_path, error)) {
    if (!fs::is_directory(model_dir, error)) return not_found(model_dir + ": model directory does not exist");
    return not_found(model_dir + ": neither model.safetensors nor model.safetensors.index.json exists");
  }
  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->source_ = model_dir;
  ProgressLog progress("opening checkpoint " + model_dir, fs::file_size(single_path, error));
  RETURN_IF_ERROR(checkpoint->add_file(single_path, nullptr));
  progress.advance(checkpoint->files_.back()->size);
  progress.finish();
  return checkpoint;
}

StatusOr<std::unique_ptr<Checkpoint>> Checkpoint::open_sharded(const std::string& model_dir,
                                                               const std::string& index_path) {
  namespace fs = std::filesystem;
  ASSIGN_OR_RETURN(json index, read_json_file(index_path));
  if (!index.is_object()) return invalid_argument(index_path + ": expected a JSON object, got " + index.type_name());
  auto map_it = index.find("weight_map");
  if (map_it == index.end()) return invalid_argument(index_path + ": weight_map: required field is missing");
  if (!map_it->is_object()) return invalid_argument(index_path + ": weight_map: expected an object");

  std::map<std::string, std::vector<std::string>> tensors_by_shard;
  for (auto it = map_it->begin(); it != map_it->end(); ++it) {
    if (!it.value().is_string() || !is_plain_relative_path(it.value().get<std::string>())) {
      return invalid_argument(index_path + ": weight_map[" + in_quotes(it.key()) +
                              "] must be a file name inside the model directory, got " + describe_json(it.value()));
    }
    tensors_by_shard[it.value().get<std::string>()].push_back(it.key());
  }
  if (tensors_by_shard.empty()) return invalid_argument(index_path + ": weight_map is empty");

  uint64_t total_file_bytes = 0;
  for (const auto& [shard, names] : tensors_by_shard) {
    std::error_code error;
    const std::string shard_path = model_dir + "/" + shard;
    uint64_t size = fs::file_size(shard_path, error);
    if (error) {
      return not_found(index_path + ": shard " + in_quotes(shard) + " (which holds tensor " + in_quotes(names.front()) +
                       ") cannot be read: " + error.message());
    }
    total_file_bytes += size;
  }

  std::unique_ptr<Checkpoint> checkpoint(new Checkpoint());
  checkpoint->source_ = model_dir;
  ProgressLog progress("opening checkpoint " + model_dir, total_file_bytes);
  size_t shard_number = 0;
  for (const auto& [shard, names] : tensors_by_shard) {
    ++shard_number;
    RETURN_IF_ERROR(checkpoint->add_file(model_dir + "/" + shard, &names));
    const MappedFile& file = *checkpoint->files_.back();
    spdlog::info("checkpoint shard {}/{}: {} ({} tensors, {:.2f} GB)", shard_number, tensors_by_shard.size(), shard,
                 names.size(), static_cast<double>(file.size) / 1e9);
    progress.advance(file.size);
  }
  progress.finish();
  return checkpoint;
}

StatusOr<TensorView> Checkpoint::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it != tensors_.end()) return it->second;
  auto unloaded = unloaded_.find(name);
  if (unloaded != unloaded_.end()) {
    return unimplemented(unloaded->second.file + ": tensor " + in_quotes(name) + " has dtype " +
                         unloaded->second.dtype + ", which longbow does not load (supported: BF16, F16, F32)");
  }
  return not_found(source_ + ": tensor " + in_quotes(name) + " not found");
}

StatusOr<TensorView> Checkpoint::tensor(const TensorSpec& spec) const {
  ASSIGN_OR_RETURN(TensorView view, tensor(spec.name));
  if (!is_float_weight_dtype(view.dtype)) {
    return invalid_argument(source_ + ": tensor " + in_quotes(spec.name) + " has dtype " +
                            std::string(dtype_name(view.dtype)) + ", expected BF16, F16, F32 or F8_E4M3");
  }
  if (view.shape != spec.shape) {
    return invalid_argument(source_ + ": tensor " + in_quotes(spec.name) + " has shape " + shape_string(view.shape) +
                            ", expected " + shape_string(spec.shape));
  }
  return view;
}

Status Checkpoint::check(const std::vector<TensorSpec>& specs) const {
  for (const TensorSpec& spec : specs) {
    StatusOr<TensorView> view = tensor(spec);
    if (!view.ok()) return view.status();
  }
  return Status::Ok();
}

std::vector<std::string> Checkpoint::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size() + unloaded_.size());
  for (const auto& [name, view] : tensors_) names.push_back(name);
  for (const auto& [name, tensor] : unloaded_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, view] : tensors_) total += view.num_bytes;
  for (const auto& [name, tensor] : unloaded_) total += tensor.num_bytes;
  return total;
}

std::vector<float> to_float32(const TensorView& tensor) {
  const size_t n = tensor.num_bytes / dtype_size(tensor.dtype);
  std::vector<float> out(n);
  const std::byte* src = tensor.data;
  switch (tensor.dtype) {
    case DType::kF32:
      if (n > 0) std::memcpy(out.data(), src, n * sizeof(float));
      break;
    case DType::kBF16:
    case DType::kF16:
      for (size_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, src + 2 * i, sizeof(bits));
        out[i] = tensor.dtype == DType::kBF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
      }
      break;
    case DType::kI32:
      for (size_t i = 0; i < n; ++i) {
        int32_t value;
        std::memcpy(&value, src + 4 * i, sizeof(value));
        out[i] = static_cast<float>(value);
      }
      break;
    case DType::kFP8E4M3:
      for (size_t i = 0; i < n; ++i) out[i] = fp8_e4m3_to_f32(static_cast<uint8_t>(src[i]));
      break;
  }
  return out;
}

}  // namespace longbow
