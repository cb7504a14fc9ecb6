// AddedVocabulary: tokenizer.json's "added_tokens", which are matched in the input before the
// model sees it. Tokens with normalized=false are found in the raw text first; the text between
// them is normalized and searched again for tokens with normalized=true (their content normalized
// the same way). Matching is leftmost-longest; single_word, lstrip and rstrip behave as in
// Hugging Face tokenizers (lstrip/rstrip swallow adjacent Unicode whitespace into the token).
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/hf/normalizer.h"
#include "model/tokenizer/hf/string_map.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow::hf {

struct AddedToken {
  TokenId id = 0;
  std::string content;
  // What the id decodes to (Hugging Face's id_to_token): content through the normalizer for a
  // normalized=true token (e.g. "server" for "Server" under Lowercase), else content.
  std::string surface;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool single_word = false;
};

// A stretch of input: an added token, or text still to be normalized/pre-tokenized.
struct InputSegment {
  std::optional<TokenId> token;
  std::string text;       // the text (for a token: the matched text)
  bool at_start = false;  // begins at offset 0 of the input
  bool normalized = false;  // text already went through the normalizer
};

// The model's vocabulary as the added tokens see it: the id of a token string, and the number of
// entries (ids [0, size) when dense).
struct ModelVocabulary {
  std::function<std::optional<TokenId>(std::string_view)> token_to_id;
  int size = 0;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) normalizes the content of normalized=true tokens; it must outlive
  // this object. Ids are assigned as Hugging Face tokenizers assigns them when it loads a file (the
  // "id" fields are only checked): in list order, a token whose content the model's vocabulary (or
  // an earlier added token) already has takes that id, any other takes the next id from
  // model.size up; a repeated content updates the earlier token's flags. An "id" that differs from
  // the assigned one is logged as a warning, as Hugging Face does.
  static StatusOr<AddedVocabulary> from_json(const nlohmann::json& added_tokens, const Normalizer* normalizer,
                                             const ModelVocabulary& model);

  // `text` split into added tokens and the text between them (whose `normalized` is true: the
  // normalizer was applied to it, as the second pass needs).
  std::vector<InputSegment> split(std::string_view text) const;

  const std::vector<AddedToken>& tokens() const { return tokens_; }
  const AddedToken* find(TokenId id) const;
  std::optional<TokenId> find(std::string_view content) const;

 private:
  // A byte trie over token contents; matches() returns the longest token starting at `pos`.
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int>> edges;  // sorted by byte
      int token = -1;                                    // index into tokens_
    };
    std::vector<Node> nodes;
    bool first_byte[256] = {};
    void insert(std::string_view key, int token);
    // Index into tokens_ and length of the longest key at text[pos..], or (-1, 0).
    std::pair<int, size_t> longest(std::string_view text, size_t pos) const;
  };

  // One leftmost-longest pass over `text` with `trie`, appending to `out`.
  void split_pass(const Trie& trie, const InputSegment& segment, std::vector<InputSegment>* out) const;

  std::vector<AddedToken> tokens_;
  StringMap<size_t> by_content_;
  std::vector<std::pair<TokenId, size_t>> by_id_;  // sorted by id
  Trie raw_trie_;         // normalized=false tokens, by content
  Trie normalized_trie_;  // normalized=true tokens, by normalized content
  const Normalizer* normalizer_ = nullptr;
};

}  // namespace longbow::hf
