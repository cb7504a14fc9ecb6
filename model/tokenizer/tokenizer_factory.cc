#include "model/tokenizer/tokenizer_factory.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "common/json_file.h"

namespace longbow {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> token_content(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return std::nullopt;
}

bool looks_like_json(const std::string& path) {
  if (fs::path(path).extension() == ".json") return true;
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c)) {
    if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return c == '{';
  }
  return false;
}

}  // namespace

StatusOr<std::string> find_tokenizer_file(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  if (!fs::is_directory(path, ec)) return not_found(fmt::format("{}: no such file or directory", path));
  for (const char* name : {"tokenizer.json", "tokenizer.model"}) {
    const fs::path candidate = fs::path(path) / name;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  }
  return not_found(fmt::format("{} holds neither tokenizer.json nor tokenizer.model", path));
}

HfSpecialTokens read_special_tokens(const std::string& dir) {
  HfSpecialTokens specials;
  StatusOr<nlohmann::json> config = read_json_file((fs::path(dir) / "tokenizer_config.json").string());
  if (!config.ok() || !config->is_object()) return specials;
  if (auto bos = config->find("bos_token"); bos != config->end()) specials.bos_token = token_content(*bos);
  if (auto eos = config->find("eos_token"); eos != config->end()) specials.eos_token = token_content(*eos);
  return specials;
}

StatusOr<std::unique_ptr<Tokenizer>> load_tokenizer(const std::string& path) {
  ASSIGN_OR_RETURN(std::string file, find_tokenizer_file(path));
  if (looks_like_json(file)) {
    return load_hf_tokenizer(file, read_special_tokens(fs::path(file).parent_path().string()));
  }
  return load_sentencepiece_tokenizer(file);
}

}  // namespace longbow
