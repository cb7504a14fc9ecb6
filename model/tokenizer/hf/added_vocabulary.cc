#include "model/tokenizer/hf/added_vocabulary.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

// Start of the last code point of non-empty `text`.
size_t last_char_start(std::string_view text) {
  size_t start = text.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  return start;
}

// Whether `text` ends / starts with a word character (single_word's boundary: is_word_character).
bool ends_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t length;
  return is_word_character(next_code_point(text.substr(last_char_start(text)), &length));
}
bool starts_with_word(std::string_view text) {
  if (text.empty()) return false;
  size_t length;
  return is_word_character(next_code_point(text, &length));
}

// Offset where the trailing whitespace of `text` begins.
size_t trailing_space_start(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    const size_t start = last_char_start(text.substr(0, end));
    size_t length;
    if (!is_whitespace(next_code_point(text.substr(start), &length))) break;
    end = start;
  }
  return end;
}
// Bytes of leading whitespace in `text`.
size_t leading_space_length(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t length;
    if (!is_whitespace(next_code_point(text.substr(pos), &length))) break;
    pos += length;
  }
  return pos;
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view key, int token) {
  if (key.empty()) return;
  if (nodes.empty()) nodes.emplace_back();
  first_byte[static_cast<unsigned char>(key[0])] = true;
  int node = 0;
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    auto& edges = nodes[static_cast<size_t>(node)].edges;
    auto it = std::lower_bound(edges.begin(), edges.end(), std::make_pair(byte, -1));
    if (it != edges.end() && it->first == byte) {
      node = it->second;
    } else {
      const int child = static_cast<int>(nodes.size());
      edges.insert(it, {byte, child});
      nodes.emplace_back();
      node = child;
    }
  }
  // The first token with a given content wins (later duplicates are the same string anyway).
  if (nodes[static_cast<size_t>(node)].token < 0) nodes[static_cast<size_t>(node)].token = token;
}

std::pair<int, size_t> AddedVocabulary::Trie::longest(std::string_view text, size_t pos) const {
  std::pair<int, size_t> best{-1, 0};
  if (nodes.empty()) return best;
  int node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const auto& edges = nodes[static_cast<size_t>(node)].edges;
    auto it = std::lower_bound(edges.begin(), edges.end(), std::make_pair(byte, -1));
    if (it == edges.end() || it->first != byte) break;
    node = it->second;
    if (nodes[static_cast<size_t>(node)].token >= 0) best = {nodes[static_cast<size_t>(node)].token, i + 1 - pos};
  }
  return best;
}

StatusOr<AddedVocabulary> AddedVocabulary::from_json(const json& added_tokens, const Normalizer* normalizer,
                                                     const ModelVocabulary& model) {
  AddedVocabulary vocab;
  vocab.normalizer_ = normalizer;
  if (added_tokens.is_null()) return vocab;
  if (!added_tokens.is_array()) return invalid_argument("added_tokens must be a list");
  StringMap<size_t> index;  // content -> position in tokens_
  TokenId next_id = model.size;
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const json& t = added_tokens[i];
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string() || t["id"].get<int64_t>() < 0 || t["id"].get<int64_t>() >= kMaxVocabSize) {
      return invalid_argument(
          fmt::format("added_tokens[{}] needs an integer id in [0, {}) and a string content", i, kMaxVocabSize));
    }
    AddedToken token;
    token.content = t["content"].get<std::string>();
    if (token.content.empty()) continue;  // Hugging Face ignores empty tokens
    token.special = t.value("special", false);
    token.lstrip = t.value("lstrip", false);
    token.rstrip = t.value("rstrip", false);
    token.normalized = t.value("normalized", !token.special);
    token.single_word = t.value("single_word", false);
    const auto earlier = index.find(token.content);
    if (earlier != index.end()) {
      token.id = vocab.tokens_[earlier->second].id;
      vocab.tokens_[earlier->second] = std::move(token);
      continue;
    }
    const std::optional<TokenId> in_model = model.token_to_id ? model.token_to_id(token.content) : std::nullopt;
    token.id = in_model ? *in_model : next_id++;
    if (token.id >= kMaxVocabSize) {
      return invalid_argument(fmt::format("added_tokens[{}] would take id {}, past the vocabulary bound {}", i,
                                          token.id, kMaxVocabSize));
    }
    const int64_t listed = t["id"].get<int64_t>();
    if (listed != token.id) {
      spdlog::warn("tokenizer.json: added token \"{}\" is listed with id {} but takes id {} (as in Hugging Face "
                   "tokenizers: {})",
                   token.content, listed, token.id, in_model ? "the model's vocabulary has it" : "the next free id");
    }
    index.emplace(token.content, vocab.tokens_.size());
    vocab.tokens_.push_back(std::move(token));
  }
  for (size_t i = 0; i < vocab.tokens_.size(); ++i) {
    AddedToken& token = vocab.tokens_[i];
    vocab.by_content_.emplace(token.content, i);
    vocab.by_id_.emplace_back(token.id, i);
    if (token.normalized) {
      const std::string key = normalizer != nullptr && !token.content.empty() ? normalizer->normalize(token.content)
                                                                              : token.content;
      vocab.normalized_trie_.insert(key, static_cast<int>(i));
      token.surface = key;
    } else {
      vocab.raw_trie_.insert(token.content, static_cast<int>(i));
      token.surface = token.content;
    }
  }
  std::stable_sort(vocab.by_id_.begin(), vocab.by_id_.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return vocab;
}

const AddedToken* AddedVocabulary::find(TokenId id) const {
  auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::make_pair(id, size_t{0}));
  if (it == by_id_.end() || it->first != id) return nullptr;
  return &tokens_[it->second];
}

std::optional<TokenId> AddedVocabulary::find(std::string_view content) const {
  auto it = by_content_.find(content);
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

void AddedVocabulary::split_pass(const Trie& trie, const InputSegment& segment, std::vector<InputSegment>* out) const {
  const std::string_view text = segment.text;
  size_t start_offset = 0;  // end of the previous match
  size_t pos = 0;
  auto emit_text = [&](size_t begin, size_t end) {
    if (end > begin) {
      out->push_back(InputSegment{std::nullopt, std::string(text.substr(begin, end - begin)),
                                  segment.at_start && begin == 0, segment.normalized});
    }
  };
  while (pos < text.size()) {
    if (!trie.first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [index, length] = trie.longest(text, pos);
    if (index < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[static_cast<size_t>(index)];
    size_t begin = pos, end = pos + length;
    pos = end;  // matches never overlap, even a discarded one (as the Aho-Corasick iterator)
    if (token.single_word) {
      const bool space_before = begin == 0 || !ends_with_word(text.substr(0, begin));
      const bool space_after = end == text.size() || !starts_with_word(text.substr(end));
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) begin = std::max(trailing_space_start(text.substr(0, begin)), start_offset);
    if (token.rstrip) end += leading_space_length(text.substr(end));
    emit_text(start_offset, begin);
    out->push_back(InputSegment{token.id, std::string(text.substr(begin, end - begin)), segment.at_start && begin == 0,
                                segment.normalized});
    start_offset = end;
    pos = end;
  }
  emit_text(start_offset, text.size());
}

std::vector<InputSegment> AddedVocabulary::split(std::string_view text) const {
  std::vector<InputSegment> first;
  split_pass(raw_trie_, InputSegment{std::nullopt, std::string(text), true, false}, &first);
  std::vector<InputSegment> out;
  out.reserve(first.size());
  for (InputSegment& segment : first) {
    if (segment.token) {
      out.push_back(std::move(segment));
      continue;
    }
    if (normalizer_ != nullptr) segment.text = normalizer_->normalize(segment.text);
    segment.normalized = true;
    split_pass(normalized_trie_, segment, &out);
  }
  return out;
}

}  // namespace longbow::hf
