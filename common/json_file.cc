#include "common/json_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace longbow {

StatusOr<std::string> read_file(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return not_found(path + ": " + std::strerror(errno));
  std::ifstream in(path, std::ios::binary);
  if (!in) return data_loss(path + ": cannot open for reading");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return data_loss(path + ": read failed");
  return contents.str();
}

StatusOr<nlohmann::json> read_json_file(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  // nlohmann reports the byte position only through its exception; it does not escape this function.
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid_argument(path + ": invalid JSON: " + e.what());
  }
}

}  // namespace longbow
