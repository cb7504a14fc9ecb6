#include "common/json_file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

#include <fmt/format.h>

#include "common/bounded_json.h"

namespace longbow {

StatusOr<std::string> read_file(const std::string& path, size_t max_bytes) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) return not_found(fmt::format("{}: {}", path, std::strerror(errno)));
  // A FIFO or device would block or never end: only regular files are read.
  if (!S_ISREG(info.st_mode)) return invalid_argument(fmt::format("{}: not a regular file", path));
  if (static_cast<uint64_t>(info.st_size) > max_bytes) {
    return invalid_argument(fmt::format("{}: {} bytes is more than the {} bytes allowed", path, info.st_size, max_bytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return data_loss(path + ": cannot open for reading");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return data_loss(path + ": read failed");
  return contents.str();
}

StatusOr<nlohmann::json> read_json_file(const std::string& path, size_t max_bytes) {
  ASSIGN_OR_RETURN(std::string text, read_file(path, max_bytes));
  return parse_json(text, path);
}

}  // namespace longbow
