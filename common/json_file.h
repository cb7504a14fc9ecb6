// Reading whole files and JSON documents into Status-checked values.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "common/status.h"

namespace longbow {

// The whole file as bytes. NOT_FOUND if it does not exist, DATA_LOSS if it cannot be read.
StatusOr<std::string> read_file(const std::string& path);

// Parses a JSON file. INVALID_ARGUMENT names the file and the parser's position on bad JSON.
StatusOr<nlohmann::json> read_json_file(const std::string& path);

}  // namespace longbow
