// BpeModel: the "model" of tokenizer.json when its type is BPE. A word (one pre-tokenized piece)
// is split into characters (each looked up in the vocabulary; unknown ones become byte-fallback
// <0xXX> tokens or the unk token, fused when fuse_unk), then merged pair by pair, always the pair of
// lowest merge rank first and the leftmost among equals, exactly as Hugging Face tokenizers'
// Word::merge_all. With ignore_merges a word that is itself in the vocabulary is one token.
// A long word is first cut where no merge can ever join its neighbours (see split_points), and
// each cut is merged (and cached) alone: the result is the same, as merges on either side of such
// a cut never interact. Dropout is not supported (it is a training-time option; a non-zero value is UNIMPLEMENTED).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
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
  // merge_word through the per-thread cache.
  void merge_cached(std::string_view word, std::vector<TokenId>* out) const;
  // Whether `cp` alone is a vocabulary token.
  bool is_single_char_token(char32_t cp) const;
  // Builds single_char_* and joinable_ (when the model allows cutting words at all).
  void index_cut_points();

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
  // Cutting a word between code points a and b is exact when both are vocabulary tokens on their
  // own (so neither becomes byte-fallback or unk symbols) and no merge joins a token ending in a
  // to one starting with b: every symbol left of the cut ends in a, every one right of it starts
  // with b. Needs empty continuing_subword_prefix and end_of_word_suffix and no ignore_merges.
  bool cuttable_ = false;
  std::vector<bool> single_char_bmp_;           // by code point below U+10000
  std::unordered_set<char32_t> single_char_other_;
  std::unordered_set<uint64_t> joinable_;        // a << 32 | b over every merge's (last, first)
};

}  // namespace longbow::hf
