#include "model/tokenizer/hf/decoder.h"

#include <fmt/format.h>

#include <utility>

#include "model/tokenizer/hf/byte_level.h"
#include "model/tokenizer/hf/pattern.h"
#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";

// All tokens' bytes (a token with a character outside the byte map keeps its own UTF-8), as one
// string with ill-formed UTF-8 replaced (String::from_utf8_lossy).
class ByteLevelDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    std::string bytes;
    for (const std::string& token : *tokens) {
      std::optional<std::string> b = byte_level_to_bytes(token);
      bytes += b ? *b : token;
    }
    *tokens = {to_valid_utf8(bytes)};
  }
};

// Runs of <0xXX> tokens become their bytes when those are valid UTF-8, else one U+FFFD per byte.
class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    std::vector<std::string> out;
    out.reserve(tokens->size());
    std::string run;
    auto flush = [&] {
      if (run.empty()) return;
      if (to_valid_utf8(run) == run) {
        out.push_back(run);
      } else {
        for (size_t i = 0; i < run.size(); ++i) out.emplace_back(kReplacementChar);
      }
      run.clear();
    };
    for (std::string& token : *tokens) {
      if (std::optional<char> byte = parse_byte_piece(token)) {
        run.push_back(*byte);
      } else {
        flush();
        out.push_back(std::move(token));
      }
    }
    flush();
    *tokens = std::move(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>* tokens) const override {
    std::string joined;
    for (const std::string& token : *tokens) joined += token;
    *tokens = {std::move(joined)};
  }
};

// Removes up to `start` leading and `stop` trailing occurrences of the character `content` from
// every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) {
      size_t begin = 0;
      for (size_t i = 0; i < start_ && token.compare(begin, content_.size(), content_) == 0; ++i) {
        begin += content_.size();
      }
      size_t end = token.size();
      for (size_t i = 0; i < stop_ && end >= begin + content_.size() &&
                         token.compare(end - content_.size(), content_.size(), content_) == 0;
           ++i) {
        end -= content_.size();
      }
      token = token.substr(begin, end - begin);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (std::string& token : *tokens) token = pattern_.replace_all(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

// The replacement character becomes a space; in the first token it is dropped instead, unless the
// prepend scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string replacement, bool strip_first)
      : replacement_(std::move(replacement)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    const Pattern marker = Pattern::literal(replacement_);
    for (size_t i = 0; i < tokens->size(); ++i) {
      (*tokens)[i] = marker.replace_all((*tokens)[i], i == 0 && strip_first_ ? "" : " ");
    }
  }

 private:
  std::string replacement_;
  bool strip_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void decode_chain(std::vector<std::string>* tokens) const override {
    for (const auto& step : steps_) step->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

StatusOr<std::string> one_char(const json& j, const char* key, std::string_view type) {
  if (!j.contains(key) || !j[key].is_string()) {
    return invalid_argument(fmt::format("decoder {}: \"{}\" must be a string", type, key));
  }
  std::string value = j[key].get<std::string>();
  size_t length = 0;
  if (value.empty() || (next_code_point(value, &length), length != value.size())) {
    return invalid_argument(fmt::format("decoder {}: \"{}\" must be one character", type, key));
  }
  return value;
}

}  // namespace

std::optional<char> parse_byte_piece(std::string_view token) {
  if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return std::nullopt;
  int value = 0;
  for (size_t i = 3; i < 5; ++i) {
    const char c = token[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = value * 16 + digit;
  }
  return static_cast<char>(value);
}

StatusOr<std::unique_ptr<Decoder>> make_decoder(const json& j) {
  if (j.is_null()) return std::unique_ptr<Decoder>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument("decoder: an object with a \"type\" string");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "ByteLevel") return std::unique_ptr<Decoder>(std::make_unique<ByteLevelDecoder>());
  if (type == "ByteFallback") return std::unique_ptr<Decoder>(std::make_unique<ByteFallbackDecoder>());
  if (type == "Fuse") return std::unique_ptr<Decoder>(std::make_unique<FuseDecoder>());
  if (type == "Strip") {
    ASSIGN_OR_RETURN(std::string content, one_char(j, "content", type));
    return std::unique_ptr<Decoder>(std::make_unique<StripDecoder>(content, j.value("start", size_t{0}),
                                                                   j.value("stop", size_t{0})));
  }
  if (type == "Replace") {
    if (!j.contains("pattern")) return invalid_argument("decoder Replace: missing \"pattern\"");
    ASSIGN_OR_RETURN(Pattern pattern, Pattern::from_json(j["pattern"], "decoder Replace"));
    if (!j.contains("content") || !j["content"].is_string()) {
      return invalid_argument("decoder Replace: \"content\" must be a string");
    }
    return std::unique_ptr<Decoder>(std::make_unique<ReplaceDecoder>(std::move(pattern), j["content"].get<std::string>()));
  }
  if (type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    bool strip_first = true;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      strip_first = j["prepend_scheme"].get<std::string>() != "never";
    } else if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean()) {
      strip_first = j["add_prefix_space"].get<bool>();
    }
    return std::unique_ptr<Decoder>(std::make_unique<MetaspaceDecoder>(replacement, strip_first));
  }
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) {
      return invalid_argument("decoder Sequence: \"decoders\" must be a list");
    }
    std::vector<std::unique_ptr<Decoder>> steps;
    for (const json& step : j["decoders"]) {
      ASSIGN_OR_RETURN(std::unique_ptr<Decoder> decoder, make_decoder(step));
      if (decoder) steps.push_back(std::move(decoder));
    }
    return std::unique_ptr<Decoder>(std::make_unique<SequenceDecoder>(std::move(steps)));
  }
  return unimplemented(fmt::format("tokenizer.json decoder type \"{}\" is not supported (supported: ByteLevel, "
                                   "Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence)", type));
}

}  // namespace longbow::hf
