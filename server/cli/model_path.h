// Where a subcommand finds its model directory.
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace longbow::cli {

// `flag` when given; otherwise the built-in demo model: $LONGBOW_DEMO_MODEL, then
// <directory of this executable>/../demo-model (the build writes build/demo-model beside
// build/bin/longbow). NOT_FOUND lists the places it looked.
StatusOr<std::string> resolve_model_dir(const std::optional<std::string>& flag);

}  // namespace longbow::cli
