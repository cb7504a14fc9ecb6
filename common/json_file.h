// Reading whole files and JSON documents into Status-checked values.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>

#include "common/status.h"

namespace longbow {

// Files read whole are small (configs, tokenizer files); weights are mapped, not read.
inline constexpr size_t kMaxReadFileBytes = size_t{1} << 30;

// The whole file as bytes. NOT_FOUND if it does not exist, INVALID_ARGUMENT if it is not a regular
// file (a FIFO would block forever) or is larger than max_bytes, DATA_LOSS if it cannot be read.
StatusOr<std::string> read_file(const std::string& path, size_t max_bytes = kMaxReadFileBytes);

// Reads and parses a JSON file with parse_json()'s depth limit. INVALID_ARGUMENT names the file and
// the reason (syntax error with its position, nesting too deep, number out of range).
StatusOr<nlohmann::json> read_json_file(const std::string& path, size_t max_bytes = kMaxReadFileBytes);

}  // namespace longbow
