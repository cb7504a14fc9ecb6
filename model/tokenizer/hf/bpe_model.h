// BpeModel: the "model" of tokenizer.json when its type is BPE. A word (one pre-tokenized piece)
// is split into characters (each looked up in the vocabulary; unknown ones become byte-fallback
// <0xXX> tokens or the unk token, fused when fuse_unk), then merged pair by pair, always the pair of
// lowest merge rank first and the leftmost among equals, exactly as Hugging Face tokenizers'
// Word::merge_all. With ignore_merges a word that is itself in the vocabulary is one token.
// Dropout is not supported (it is a training-time option; a non-zero value is UNIMPLEMENTED).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/hf/string_map.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow::hf {

class BpeModel {
 public:
  static StatusOr<BpeModel> from_json(const nlohmann::json& model);

  // Appends the ids of `word` (non-empty) to `out`. Thread-safe; repeated words are served from a
  // per-thread cache.
  void tokenize(std::string_view word, std::vector<TokenId>* out) const;

  std::optional<TokenId> token_to_id(std::string_view token) const;
  // The vocabulary string of `id`; nullptr when the model has no such id.
  const std::string* id_to_token(TokenId id) const;
  // One past the largest id in the vocabulary.
  int id_bound() const { return static_cast<int>(tokens_.size()); }
  bool byte_fallback() const { return byte_fallback_; }

 private:
  void merge_word(std::string_view word, std::vector<TokenId>* out) const;

  StringMap<TokenId> vocab_;
  std::vector<std::string> tokens_;  // by id; "" for ids the vocabulary skips
  std::vector<bool> has_token_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, TokenId>> merges_;
  std::optional<TokenId> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::vector<TokenId> byte_ids_;  // <0xXX> ids, -1 where absent (byte_fallback only)
  uint64_t cache_key_ = 0;         // identifies this model's entries in the per-thread cache
};

}  // namespace longbow::hf
