#include "model/tokenizer/hf/post_processor.h"

#include <fmt/format.h>

#include <utility>

#include "common/bounded_json.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

// The single-sequence template: a list of special-token runs and the slot of sequence A.
class TemplateProcessor final : public PostProcessor {
 public:
  // Each item: the special token ids to insert, or nullopt for the sequence itself.
  explicit TemplateProcessor(std::vector<std::optional<std::vector<TokenId>>> items) : items_(std::move(items)) {}
  std::vector<TokenId> process(std::vector<TokenId> ids) const override {
    std::vector<TokenId> out;
    out.reserve(ids.size() + 4);
    for (const auto& item : items_) {
      if (item) {
        out.insert(out.end(), item->begin(), item->end());
      } else {
        out.insert(out.end(), ids.begin(), ids.end());
      }
    }
    return out;
  }

 private:
  std::vector<std::optional<std::vector<TokenId>>> items_;
};

class IdentityProcessor final : public PostProcessor {
 public:
  std::vector<TokenId> process(std::vector<TokenId> ids) const override { return ids; }
};

class SequenceProcessor final : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  std::vector<TokenId> process(std::vector<TokenId> ids) const override {
    for (const auto& step : steps_) ids = step->process(std::move(ids));
    return ids;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

StatusOr<std::unique_ptr<PostProcessor>> make_template(const json& j, TokenId vocab_size) {
  if (!j.contains("single") || !j["single"].is_array()) {
    return unimplemented("post_processor TemplateProcessing: only the list form of \"single\" is supported");
  }
  const json specials = j.value("special_tokens", json::object());
  std::vector<std::optional<std::vector<TokenId>>> items;
  for (const json& item : j["single"]) {
    if (item.contains("Sequence")) {
      items.emplace_back(std::nullopt);
      continue;
    }
    if (!item.contains("SpecialToken") || !item["SpecialToken"].contains("id") ||
        !item["SpecialToken"]["id"].is_string()) {
      return invalid_argument(fmt::format("post_processor TemplateProcessing: bad item {}", describe_json(item)));
    }
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    if (!specials.contains(name) || !specials[name].contains("ids") || !specials[name]["ids"].is_array()) {
      return invalid_argument(fmt::format("post_processor TemplateProcessing: special token \"{}\" has no ids", name));
    }
    std::vector<TokenId> ids;
    for (const json& id : specials[name]["ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= vocab_size) {
        return invalid_argument(fmt::format(
            "post_processor TemplateProcessing: the ids of \"{}\" must be integers in [0, {})", name, vocab_size));
      }
      ids.push_back(static_cast<TokenId>(id.get<int64_t>()));
    }
    items.emplace_back(std::move(ids));
  }
  return std::unique_ptr<PostProcessor>(std::make_unique<TemplateProcessor>(std::move(items)));
}

}  // namespace

StatusOr<std::unique_ptr<PostProcessor>> make_post_processor(const json& j, TokenId vocab_size) {
  if (j.is_null()) return std::unique_ptr<PostProcessor>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument("post_processor: an object with a \"type\" string");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "TemplateProcessing") return make_template(j, vocab_size);
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(std::make_unique<IdentityProcessor>());
  if (type == "Sequence") {
    if (!j.contains("processors") || !j["processors"].is_array()) {
      return invalid_argument("post_processor Sequence: \"processors\" must be a list");
    }
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (const json& step : j["processors"]) {
      ASSIGN_OR_RETURN(std::unique_ptr<PostProcessor> processor, make_post_processor(step, vocab_size));
      if (processor) steps.push_back(std::move(processor));
    }
    return std::unique_ptr<PostProcessor>(std::make_unique<SequenceProcessor>(std::move(steps)));
  }
  return unimplemented(fmt::format("tokenizer.json post_processor type \"{}\" is not supported (supported: "
                                   "TemplateProcessing, ByteLevel, Sequence)", type));
}

}  // namespace longbow::hf
