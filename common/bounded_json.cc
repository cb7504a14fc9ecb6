#include "common/bounded_json.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

namespace longbow {

using nlohmann::json;

StatusOr<json> parse_json(std::string_view text, std::string_view what, int max_depth) {
  // The parser callback sees each container's start with its depth (0 for the top level) and each
  // object key with the depth of its object (1 for the top level's). Declining a container makes the
  // parser skip it without building it, so a hostile document costs one linear scan and no memory
  // beyond the parser's own few bytes per level. The keys on the way down name the field an error
  // (a number overflow, say) occurred in.
  int deepest = 0;
  std::vector<std::string> key_path;
  auto observe = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      deepest = std::max(deepest, depth + 1);
      return depth + 1 <= max_depth;
    }
    if (event == json::parse_event_t::key && depth >= 1 && depth <= max_depth) {
      key_path.resize(static_cast<size_t>(depth - 1));
      key_path.push_back(parsed.is_string() ? parsed.get<std::string>() : std::string());
    }
    return true;
  };
  json value;
  // nlohmann reports positions and number overflow only through exceptions; none leaves this function.
  try {
    value = json::parse(text.begin(), text.end(), observe, /*allow_exceptions=*/true);
  } catch (const json::exception& e) {
    std::string field;
    for (const std::string& key : key_path) field += (field.empty() ? "" : ".") + key;
    if (field.empty()) return invalid_argument(fmt::format("{}: invalid JSON: {}", what, e.what()));
    return invalid_argument(fmt::format("{}: invalid JSON in field \"{}\" or after it: {}", what, field, e.what()));
  } catch (const std::exception& e) {  // bad_alloc from a huge document
    return resource_exhausted(fmt::format("{}: cannot parse JSON: {}", what, e.what()));
  }
  if (deepest > max_depth) {
    return invalid_argument(fmt::format("{}: JSON nested deeper than {} levels", what, max_depth));
  }
  return value;
}

std::string describe_json(const json& value, size_t max_chars) {
  switch (value.type()) {
    case json::value_t::array:
      return fmt::format("an array of {} elements", value.size());
    case json::value_t::object:
      return fmt::format("an object of {} members", value.size());
    case json::value_t::string: {
      const std::string& s = value.get_ref<const std::string&>();
      if (s.size() <= max_chars) return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
      return json(s.substr(0, max_chars)).dump(-1, ' ', false, json::error_handler_t::replace) + "...";
    }
    default:
      return value.dump();  // null, boolean, number: a few characters
  }
}

}  // namespace longbow
