// A tiny Tokenizer for engine tests: ids 0..255 are single bytes, then a few multi-byte pieces.
// Id 256 is "<eos>" (a control token, no bytes).
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow::fakes {

class FakeTokenizer : public Tokenizer {
 public:
  static constexpr TokenId kEos = 256;

  // `extra` pieces get ids 257, 258, ... in order.
  explicit FakeTokenizer(std::vector<std::string> extra = {}, int vocab_size = 0) : extra_(std::move(extra)) {
    vocab_size_ = std::max(vocab_size, 257 + static_cast<int>(extra_.size()));
  }

  TokenId id_of(const std::string& piece) const {
    for (size_t i = 0; i < extra_.size(); ++i) {
      if (extra_[i] == piece) return 257 + static_cast<TokenId>(i);
    }
    return piece.size() == 1 ? static_cast<unsigned char>(piece[0]) : -1;
  }

  std::vector<TokenId> encode(std::string_view text) const override {
    std::vector<TokenId> ids;
    for (char c : text) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  std::string decode(std::span<const TokenId> ids) const override {
    std::string out;
    for (TokenId id : ids) out += token_bytes(id);
    return out;
  }
  StatusOr<std::string> decode_checked(std::span<const TokenId> ids) const override {
    for (TokenId id : ids) {
      if (id < 0 || id >= vocab_size_) return out_of_range("token id " + std::to_string(id) + " is outside the vocabulary");
    }
    return decode(ids);
  }
  std::string token_bytes(TokenId id) const override {
    if (id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
    if (id >= 257 && id < 257 + static_cast<TokenId>(extra_.size())) return extra_[static_cast<size_t>(id - 257)];
    return "";
  }
  int vocab_size() const override { return vocab_size_; }
  std::string_view piece(TokenId id) const override {
    if (id >= 257 && id < 257 + static_cast<TokenId>(extra_.size())) return extra_[static_cast<size_t>(id - 257)];
    return id == kEos ? "<eos>" : "";
  }
  bool is_control(TokenId id) const override { return id == kEos; }
  std::optional<TokenId> bos_id() const override { return std::nullopt; }
  std::optional<TokenId> eos_id() const override { return kEos; }
  std::optional<TokenId> unk_id() const override { return std::nullopt; }

 private:
  std::vector<std::string> extra_;
  int vocab_size_ = 257;
};

}  // namespace longbow::fakes
