#include "server/cli/model_path.h"

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

namespace longbow::cli {
namespace {

bool is_model_dir(const std::filesystem::path& dir) {
  std::error_code error;
  return std::filesystem::is_regular_file(dir / "config.json", error);
}

}  // namespace

StatusOr<std::string> resolve_model_dir(const std::optional<std::string>& flag) {
  namespace fs = std::filesystem;
  if (flag) {
    if (!is_model_dir(*flag)) return not_found("--model " + *flag + ": no config.json in that directory");
    return *flag;
  }
  std::vector<std::string> looked;
  if (const char* env = std::getenv("LONGBOW_DEMO_MODEL"); env != nullptr && *env != '\0') {
    if (is_model_dir(env)) return std::string(env);
    looked.push_back(std::string("$LONGBOW_DEMO_MODEL=") + env);
  }
  std::error_code error;
  fs::path exe = fs::read_symlink("/proc/self/exe", error);
  if (!error) {
    fs::path demo = (exe.parent_path() / ".." / "demo-model").lexically_normal();
    if (is_model_dir(demo)) return demo.string();
    looked.push_back(demo.string());
  }
  std::string places;
  for (const std::string& place : looked) places += (places.empty() ? "" : ", ") + place;
  return not_found("no --model given and no demo model found (looked in " +
                   (places.empty() ? std::string("nowhere") : places) +
                   "); build it with `cmake --build build --target demo_model` or pass --model DIR");
}

}  // namespace longbow::cli
