#include "model/tokenizer/hf/pre_tokenizer.h"

#include <fmt/format.h>

#include <utility>

#include "common/bounded_json.h"
#include "model/tokenizer/hf/byte_level.h"
#include "model/tokenizer/hf/pattern.h"
#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

// How a split keeps its delimiters (tokenizers' SplitDelimiterBehavior).
enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Span {
  size_t begin, end;
  bool is_match;
};

// The spans of `text` covered by `matches` and the gaps between them, in order (a whole-text gap
// when there is no match); empty text gives one empty gap.
std::vector<Span> cover(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches, bool invert) {
  std::vector<Span> spans;
  if (text.empty()) return {Span{0, 0, invert}};
  size_t previous = 0;
  for (const auto& [begin, end] : matches) {
    if (previous != begin) spans.push_back(Span{previous, begin, invert});
    spans.push_back(Span{begin, end, !invert});
    previous = end;
  }
  if (previous != text.size()) spans.push_back(Span{previous, text.size(), invert});
  return spans;
}

// Applies `behavior` to `spans` (NormalizedString::split); the result's spans are all kept.
std::vector<Span> apply_behavior(std::vector<Span> spans, Behavior behavior) {
  std::vector<Span> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      return spans;
    case Behavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) out.push_back(s);
      }
      return out;
    case Behavior::kContiguous:
      for (const Span& s : spans) {
        if (s.is_match == previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case Behavior::kMergedWithPrevious:
      for (const Span& s : spans) {
        if (s.is_match && !previous_match && !out.empty()) {
          out.back().end = s.end;
        } else {
          out.push_back(s);
        }
        previous_match = s.is_match;
      }
      return out;
    case Behavior::kMergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      return std::vector<Span>(out.rbegin(), out.rend());
  }
  return spans;
}

// Splits every piece by `find` (text -> matches) under `behavior`, dropping empty results.
template <typename Find>
void split_pieces(std::vector<Piece>* pieces, Behavior behavior, bool invert, const Find& find) {
  std::vector<Piece> out;
  out.reserve(pieces->size());
  for (Piece& piece : *pieces) {
    const std::vector<Span> spans = apply_behavior(cover(piece.text, find(piece.text), invert), behavior);
    for (const Span& s : spans) {
      if (s.end == s.begin) continue;
      out.push_back(Piece{piece.text.substr(s.begin, s.end - s.begin), piece.at_start && s.begin == 0});
    }
  }
  *pieces = std::move(out);
}

StatusOr<Behavior> parse_behavior(const json& j) {
  const std::string name = j.is_string() ? j.get<std::string>() : "";
  if (name == "Removed") return Behavior::kRemoved;
  if (name == "Isolated") return Behavior::kIsolated;
  if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return Behavior::kMergedWithNext;
  if (name == "Contiguous") return Behavior::kContiguous;
  return invalid_argument(fmt::format("pre_tokenizer Split: unknown behavior {}", describe_json(j)));
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern pattern, Behavior behavior, bool invert)
      : pattern_(std::move(pattern)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<Piece>* pieces) const override {
    split_pieces(pieces, behavior_, invert_, [&](std::string_view text) { return pattern_.find_all(text); });
  }

 private:
  Pattern pattern_;
  Behavior behavior_;
  bool invert_;
};

// GPT-2's word regex, which ByteLevel applies when use_regex is true.
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Regex> regex)
      : add_prefix_space_(add_prefix_space), regex_(std::move(regex)) {}
  void pre_tokenize(std::vector<Piece>* pieces) const override {
    if (add_prefix_space_) {
      for (Piece& piece : *pieces) {
        if (piece.text.empty() || piece.text[0] != ' ') piece.text.insert(0, 1, ' ');
      }
    }
    if (regex_.has_value()) {
      split_pieces(pieces, Behavior::kIsolated, false, [&](std::string_view text) { return regex_->find_all(text); });
    }
    for (Piece& piece : *pieces) {
      std::string mapped;  // most pieces stay within the short-string buffer
      append_byte_level(piece.text, &mapped);
      piece.text = std::move(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::optional<Regex> regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : replacement_(std::move(replacement)), scheme_(scheme), split_(split), space_(Pattern::literal(" ")) {}
  void pre_tokenize(std::vector<Piece>* pieces) const override {
    for (Piece& piece : *pieces) {
      piece.text = space_.replace_all(piece.text, replacement_);
      const bool starts = piece.text.compare(0, replacement_.size(), replacement_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways || (scheme_ == PrependScheme::kFirst && piece.at_start))) {
        piece.text.insert(0, replacement_);
      }
    }
    if (split_) {
      const Pattern marker = Pattern::literal(replacement_);
      split_pieces(pieces, Behavior::kMergedWithNext, false, [&](std::string_view text) { return marker.find_all(text); });
    }
  }

 private:
  std::string replacement_;
  PrependScheme scheme_;
  bool split_;
  Pattern space_;
};

// Splits runs of Unicode numeric characters off (each digit alone when `individual`).
class DigitsPreTokenizer final : public PreTokenizer {
 public:
  explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
  void pre_tokenize(std::vector<Piece>* pieces) const override {
    split_pieces(pieces, individual_ ? Behavior::kIsolated : Behavior::kContiguous, false, [](std::string_view text) {
      std::vector<std::pair<size_t, size_t>> matches;
      size_t pos = 0;
      while (pos < text.size()) {
        size_t length;
        if (is_numeric(next_code_point(text.substr(pos), &length))) matches.emplace_back(pos, pos + length);
        pos += length;
      }
      return matches;
    });
  }

 private:
  bool individual_;
};

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void pre_tokenize(std::vector<Piece>* pieces) const override {
    for (const auto& step : steps_) step->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

StatusOr<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return std::unique_ptr<PreTokenizer>();
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
    return invalid_argument("pre_tokenizer: an object with a \"type\" string");
  }
  const std::string type = j["type"].get<std::string>();
  if (type == "Split") {
    if (!j.contains("pattern")) return invalid_argument("pre_tokenizer Split: missing \"pattern\"");
    ASSIGN_OR_RETURN(Pattern pattern, Pattern::from_json(j["pattern"], "pre_tokenizer Split"));
    ASSIGN_OR_RETURN(Behavior behavior, parse_behavior(j.value("behavior", json())));
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<SplitPreTokenizer>(std::move(pattern), behavior, j.value("invert", false)));
  }
  if (type == "ByteLevel") {
    std::optional<Regex> regex;
    if (j.value("use_regex", true)) {
      ASSIGN_OR_RETURN(regex, Regex::compile(kGpt2Regex));
    }
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<ByteLevelPreTokenizer>(j.value("add_prefix_space", true), std::move(regex)));
  }
  if (type == "Metaspace") {
    const std::string replacement = j.value("replacement", std::string("\xE2\x96\x81"));
    PrependScheme scheme = PrependScheme::kAlways;
    if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
      const std::string name = j["prepend_scheme"].get<std::string>();
      if (name == "first") {
        scheme = PrependScheme::kFirst;
      } else if (name == "never") {
        scheme = PrependScheme::kNever;
      } else if (name != "always") {
        return invalid_argument(fmt::format("pre_tokenizer Metaspace: unknown prepend_scheme \"{}\"", name));
      }
    } else if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean()) {
      scheme = j["add_prefix_space"].get<bool>() ? PrependScheme::kAlways : PrependScheme::kNever;
    }
    return std::unique_ptr<PreTokenizer>(
        std::make_unique<MetaspacePreTokenizer>(replacement, scheme, j.value("split", true)));
  }
  if (type == "Digits") {
    return std::unique_ptr<PreTokenizer>(std::make_unique<DigitsPreTokenizer>(j.value("individual_digits", false)));
  }
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) {
      return invalid_argument("pre_tokenizer Sequence: \"pretokenizers\" must be a list");
    }
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (const json& step : j["pretokenizers"]) {
      ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> pre_tokenizer, make_pre_tokenizer(step));
      if (pre_tokenizer) steps.push_back(std::move(pre_tokenizer));
    }
    return std::unique_ptr<PreTokenizer>(std::make_unique<SequencePreTokenizer>(std::move(steps)));
  }
  return unimplemented(fmt::format("tokenizer.json pre_tokenizer type \"{}\" is not supported (supported: Split, "
                                   "ByteLevel, Metaspace, Digits, Sequence)", type));
}

}  // namespace longbow::hf
