#include "model/runtime/weight_source.h"

#include <string>

namespace longbow {

StatusOr<LoadFormat> parse_load_format(std::string_view name) {
  if (name == "auto") return LoadFormat::kAuto;
  if (name == "safetensors") return LoadFormat::kSafetensors;
  if (name == "dummy") return LoadFormat::kDummy;
  return invalid_argument("load format '" + std::string(name) + "' is not one of auto, safetensors, dummy");
}

std::string_view load_format_name(LoadFormat format) {
  switch (format) {
    case LoadFormat::kAuto:
      return "auto";
    case LoadFormat::kSafetensors:
      return "safetensors";
    case LoadFormat::kDummy:
      return "dummy";
  }
  return "unknown";
}

}  // namespace longbow
