#include "server/cli/model_path.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

#include "common/json_file.h"

namespace longbow::cli {
namespace {

namespace fs = std::filesystem;

bool is_model_dir(const fs::path& dir) {
  std::error_code error;
  return fs::is_regular_file(dir / "config.json", error);
}

bool is_config_file(const std::string& path) {
  std::error_code error;
  return path.ends_with(".json") && fs::is_regular_file(path, error);
}

ModelLocation location_of_dir(const std::string& dir) {
  fs::path path(dir);
  std::string name = path.filename().string();
  if (name.empty() || name == ".") name = path.parent_path().filename().string();
  return {dir, (path / "config.json").string(), name};
}

ModelLocation location_of_config_file(const std::string& file) {
  fs::path path(file);
  std::string name = path.filename().string();
  for (std::string suffix : {".config.json", ".json"}) {
    if (name.size() > suffix.size() && name.ends_with(suffix)) {
      name.resize(name.size() - suffix.size());
      break;
    }
  }
  if (name == "config") name = path.parent_path().filename().string();
  const std::string dir = path.parent_path().string();
  return {dir.empty() ? "." : dir, file, name};
}

// The built-in demo model's directory: $LONGBOW_DEMO_MODEL, then <exe dir>/../demo-model.
StatusOr<std::string> demo_model_dir() {
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

}  // namespace

StatusOr<ModelLocation> resolve_model(const std::optional<std::string>& flag) {
  if (!flag) {
    ASSIGN_OR_RETURN(std::string dir, demo_model_dir());
    return location_of_dir(dir);
  }
  if (is_config_file(*flag)) return location_of_config_file(*flag);
  if (is_model_dir(*flag)) return location_of_dir(*flag);
  return not_found("--model " + *flag + ": neither a directory holding config.json nor a .json config file");
}

StatusOr<ModelConfig> load_config(const ModelLocation& location) {
  ASSIGN_OR_RETURN(nlohmann::json doc, read_json_file(location.config_path));
  StatusOr<ModelConfig> config = parse_model_config(doc);
  if (!config.ok()) return config.status().with_context(location.config_path);
  return config;
}

StatusOr<std::string> resolve_tokenizer(const std::optional<std::string>& flag, const ModelLocation& location) {
  std::error_code error;
  // In a directory Hugging Face's tokenizer.json wins over sentencepiece's tokenizer.model (as
  // transformers' fast tokenizers).
  auto in_dir = [&](const fs::path& dir) -> std::optional<std::string> {
    for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
      if (fs::is_regular_file(dir / name, error)) return (dir / name).string();
    }
    return std::nullopt;
  };
  if (flag) {
    if (fs::is_regular_file(*flag, error)) return *flag;
    if (std::optional<std::string> found = in_dir(*flag)) return *found;
    return not_found("--tokenizer " + *flag + ": neither a file nor a directory holding tokenizer.json or tokenizer.model");
  }
  if (std::optional<std::string> found = in_dir(location.dir)) return *found;
  return not_found("no tokenizer.json or tokenizer.model in " + location.dir +
                   " (the model's directory); pass --tokenizer FILE_OR_DIR" +
                   " (e.g. the demo model's directory: a config-only model, as --load-format dummy serves, has none)");
}

}  // namespace longbow::cli
