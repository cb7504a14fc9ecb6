// Where a subcommand finds its model: the config, the weights' directory and the tokenizer.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"
#include "model/config/model_config.h"

namespace longbow::cli {

struct ModelLocation {
  std::string dir;          // the directory of the weights and tokenizer files
  std::string config_path;  // dir/config.json, or the config file --model named
  std::string name;         // the directory's name, or the config file's name without ".json"/".config.json"
};

// `flag` when given: a model directory (holding config.json) or a config file (a bare config.json
// or configs/NAME.config.json: enough for --load-format dummy). Otherwise the built-in demo model:
// $LONGBOW_DEMO_MODEL, then <directory of this executable>/../demo-model (the build writes
// build/demo-model beside build/bin/longbow). NOT_FOUND lists the places it looked.
StatusOr<ModelLocation> resolve_model(const std::optional<std::string>& flag);

// Reads and parses location.config_path; errors are prefixed with the path.
StatusOr<ModelConfig> load_config(const ModelLocation& location);

// The tokenizer file to load: `flag` (the file, or a directory holding tokenizer.json or
// tokenizer.model; tokenizer.json first) when given,
// else the model directory's. NOT_FOUND saying to pass --tokenizer when there is none (a config-only
// model has no tokenizer of its own).
StatusOr<std::string> resolve_tokenizer(const std::optional<std::string>& flag, const ModelLocation& location);

}  // namespace longbow::cli
