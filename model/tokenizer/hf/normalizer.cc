#include "model/tokenizer/hf/normalizer.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

#include "model/tokenizer/hf/pattern.h"
#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

class FormNormalizer final : public Normalizer {
 public:
  explicit FormNormalizer(NormalForm form) : form_(form) {}
  std::string normalize(std::string_view text) const override { return hf::normalize(text, form_); }

 private:
  NormalForm form_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  std::string normalize(std::string_view text) const override { return lowercase(text); }
};

// Strips Unicode whitespace from the left and/or right end.
class StripNormalizer final : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  std::string normalize(std::string_view text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      while (begin < end) {
        size_t length;
        if (!is_whitespace(next_code_point(text.substr(begin), &length))) break;
        begin += length;
      }
    }
    if (right_) {
      while (end > begin) {
        size_t start = end - 1;
        while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
        size_t length;
        if (!is_whitespace(next_code_point(text.substr(start, end - start), &length))) break;
        end = start;
      }
    }
    return std::string(text.substr(begin, end - begin));
  }

 private:
  bool left_, right_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string normalize(std::string_view text) const override { return pattern_.replace_all(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

// Prepends `prepend` to every non-empty piece (the legacy Llama/Mistral "▁" prefix).
class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prepend) : prepend_(std::move(prepend)) {}
  std::string normalize(std::string_view text) const override {
    return text.empty() ? std::string() : prepend_ + std::string(text);
  }

 private:
  std::string prepend_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  std::string normalize(std::string_view text) const override {
    std::string out(text);
    for (const auto& step : steps_) {
      if (!out.empty()) out = step->normalize(out);
    }
    return out;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

StatusOr<std::string> string_field(const json& j, const char* key, std::string_view type) {
  if (!j.contains(key) || !j[key].is_string()) {
    return invalid_argument(fmt::format("normalizer {}: \"{}\" must be a string", type, key));
  }
  return j[key].get<std::string>();
}

}  // namespace

StatusOr<std::unique_ptr<Normalizer>> make_normalizer(const json& j) {
  if (j.is_null()) return std::unique_ptr<Normalizer>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument("normalizer: an object with a \"type\" string");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "NFC") return std::unique_ptr<Normalizer>(std::make_unique<FormNormalizer>(NormalForm::kNfc));
  if (type == "NFD") return std::unique_ptr<Normalizer>(std::make_unique<FormNormalizer>(NormalForm::kNfd));
  if (type == "NFKC") return std::unique_ptr<Normalizer>(std::make_unique<FormNormalizer>(NormalForm::kNfkc));
  if (type == "NFKD") return std::unique_ptr<Normalizer>(std::make_unique<FormNormalizer>(NormalForm::kNfkd));
  if (type == "Lowercase") return std::unique_ptr<Normalizer>(std::make_unique<LowercaseNormalizer>());
  if (type == "Strip") {
    return std::unique_ptr<Normalizer>(
        std::make_unique<StripNormalizer>(j.value("strip_left", true), j.value("strip_right", true)));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) return invalid_argument("normalizer Replace: missing \"pattern\"");
    ASSIGN_OR_RETURN(Pattern pattern, Pattern::from_json(j["pattern"], "normalizer Replace"));
    ASSIGN_OR_RETURN(std::string content, string_field(j, "content", type));
    return std::unique_ptr<Normalizer>(std::make_unique<ReplaceNormalizer>(std::move(pattern), std::move(content)));
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::string prepend, string_field(j, "prepend", type));
    return std::unique_ptr<Normalizer>(std::make_unique<PrependNormalizer>(std::move(prepend)));
  }
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) {
      return invalid_argument("normalizer Sequence: \"normalizers\" must be a list");
    }
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const json& step : j["normalizers"]) {
      ASSIGN_OR_RETURN(std::unique_ptr<Normalizer> normalizer, make_normalizer(step));
      if (normalizer) steps.push_back(std::move(normalizer));
    }
    return std::unique_ptr<Normalizer>(std::make_unique<SequenceNormalizer>(std::move(steps)));
  }
  return unimplemented(fmt::format("tokenizer.json normalizer type \"{}\" is not supported (supported: NFC, NFD, "
                                   "NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Sequence)", type));
}

}  // namespace longbow::hf
