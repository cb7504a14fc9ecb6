// HfTokenizer: the Tokenizer over a parsed tokenizer.json (see hf_tokenizer.h).
#include "model/tokenizer/hf_tokenizer.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <utility>
#include <vector>

#include "common/bounded_json.h"
#include "common/json_file.h"
#include "model/tokenizer/hf/added_vocabulary.h"
#include "model/tokenizer/hf/bpe_model.h"
#include "model/tokenizer/hf/byte_level.h"
#include "model/tokenizer/hf/decoder.h"
#include "model/tokenizer/hf/normalizer.h"
#include "model/tokenizer/hf/post_processor.h"
#include "model/tokenizer/hf/pre_tokenizer.h"
#include "model/tokenizer/hf/unicode.h"

namespace longbow {
namespace {

using nlohmann::json;

// Whether `decoder` (a tokenizer.json decoder) contains a ByteLevel step anywhere.
bool has_decoder_type(const json& decoder, std::string_view type) {
  if (!decoder.is_object()) return false;
  if (decoder.value("type", "") == type) return true;
  if (decoder.contains("decoders") && decoder["decoders"].is_array()) {
    for (const json& step : decoder["decoders"]) {
      if (has_decoder_type(step, type)) return true;
    }
  }
  return false;
}

// Members point at each other (the added vocabulary at the normalizer), so an instance is built in
// place and never moved.
class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer() = default;
  HfTokenizer(const HfTokenizer&) = delete;
  HfTokenizer& operator=(const HfTokenizer&) = delete;

  Status init(const json& doc, const HfSpecialTokens& specials);

  std::vector<TokenId> encode(std::string_view text) const override;
  std::vector<TokenId> encode_with_special_tokens(std::string_view text) const override {
    std::vector<TokenId> ids = encode(text);
    return post_processor_ ? post_processor_->process(std::move(ids)) : ids;
  }
  std::string decode(std::span<const TokenId> ids) const override { return decode_ids(ids, true); }
  std::string decode_keeping_special(std::span<const TokenId> ids) const override { return decode_ids(ids, false); }
  StatusOr<std::string> decode_checked(std::span<const TokenId> ids) const override {
    for (const TokenId id : ids) {
      if (id < 0 || id >= vocab_size()) {
        return out_of_range(fmt::format("token id {} is outside the vocabulary [0, {})", id, vocab_size()));
      }
    }
    return decode_ids(ids, true);
  }
  std::string token_bytes(TokenId id) const override {
    return id >= 0 && static_cast<size_t>(id) < token_bytes_.size() ? token_bytes_[static_cast<size_t>(id)] : "";
  }

  int vocab_size() const override { return vocab_size_; }
  std::string_view piece(TokenId id) const override {
    const std::string* token = token_string(id);
    return token != nullptr ? std::string_view(*token) : std::string_view();
  }
  bool is_control(TokenId id) const override {
    const hf::AddedToken* added = added_.find(id);
    return added != nullptr && added->special;
  }
  std::optional<TokenId> bos_id() const override { return bos_id_; }
  std::optional<TokenId> eos_id() const override { return eos_id_; }
  std::optional<TokenId> unk_id() const override { return unk_id_; }
  bool parses_special_tokens() const override { return true; }
  std::optional<TokenId> token_to_id(std::string_view piece_text) const override {
    if (auto id = added_.find(piece_text)) return id;
    return model_->token_to_id(piece_text);
  }

 private:
  // The token's string: the added token's surface (its content, normalized if it is a normalized
  // token), else the model's vocabulary entry.
  const std::string* token_string(TokenId id) const {
    if (const hf::AddedToken* added = added_.find(id)) return &added->surface;
    return model_->id_to_token(id);
  }
  std::string decode_ids(std::span<const TokenId> ids, bool skip_special_tokens) const;
  std::string decode_tokens(std::vector<std::string> tokens) const;
  // token_bytes_ for every id (see Tokenizer::token_bytes).
  void build_token_bytes(bool byte_level);

  std::unique_ptr<hf::Normalizer> normalizer_;
  hf::AddedVocabulary added_;
  std::unique_ptr<hf::PreTokenizer> pre_tokenizer_;
  std::optional<hf::BpeModel> model_;
  std::unique_ptr<hf::PostProcessor> post_processor_;
  std::unique_ptr<hf::Decoder> decoder_;
  std::vector<std::string> token_bytes_;
  int vocab_size_ = 0;
  std::optional<TokenId> bos_id_, eos_id_, unk_id_;
};

Status HfTokenizer::init(const json& doc, const HfSpecialTokens& specials) {
  if (!doc.is_object()) return invalid_argument("tokenizer.json must hold a JSON object");
  if (!doc.contains("model") || !doc["model"].is_object()) return invalid_argument("tokenizer.json has no \"model\"");
  const json& model = doc["model"];
  // Files written by tokenizers omit "type" for BPE in some versions; a merges list means BPE.
  const std::string type = model.value("type", model.contains("merges") ? "BPE" : "");
  if (type != "BPE") {
    return unimplemented(fmt::format("tokenizer.json model type \"{}\" is not supported (supported: BPE)", type));
  }
  ASSIGN_OR_RETURN(model_, hf::BpeModel::from_json(model));
  ASSIGN_OR_RETURN(normalizer_, hf::make_normalizer(doc.value("normalizer", json())));
  const hf::ModelVocabulary model_vocabulary{[&](std::string_view t) { return model_->token_to_id(t); },
                                             model_->id_bound()};
  ASSIGN_OR_RETURN(added_, hf::AddedVocabulary::from_json(doc.value("added_tokens", json()), normalizer_.get(),
                                                          model_vocabulary));
  vocab_size_ = model_->id_bound();
  for (const hf::AddedToken& token : added_.tokens()) vocab_size_ = std::max(vocab_size_, token.id + 1);
  ASSIGN_OR_RETURN(pre_tokenizer_, hf::make_pre_tokenizer(doc.value("pre_tokenizer", json())));
  ASSIGN_OR_RETURN(post_processor_, hf::make_post_processor(doc.value("post_processor", json()), vocab_size_));
  const json decoder = doc.value("decoder", json());
  ASSIGN_OR_RETURN(decoder_, hf::make_decoder(decoder));

  auto lookup = [&](const std::optional<std::string>& content, const char* what) -> StatusOr<std::optional<TokenId>> {
    if (!content) return std::optional<TokenId>();
    std::optional<TokenId> id = token_to_id(*content);
    if (!id) return invalid_argument(fmt::format("the {} token \"{}\" is not in tokenizer.json", what, *content));
    return id;
  };
  ASSIGN_OR_RETURN(bos_id_, lookup(specials.bos_token, "BOS"));
  ASSIGN_OR_RETURN(eos_id_, lookup(specials.eos_token, "EOS"));
  if (model.contains("unk_token") && model["unk_token"].is_string()) unk_id_ = token_to_id(model["unk_token"].get<std::string>());
  build_token_bytes(has_decoder_type(decoder, "ByteLevel"));
  return Status::Ok();
}

std::vector<TokenId> HfTokenizer::encode(std::string_view input) const {
  const std::string text = hf::to_valid_utf8(input);
  std::vector<TokenId> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<hf::Piece> pieces;
  for (hf::InputSegment& segment : added_.split(text)) {
    if (segment.token) {
      ids.push_back(*segment.token);
      continue;
    }
    pieces.clear();
    pieces.push_back(hf::Piece{std::move(segment.text), segment.at_start});
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(&pieces);
    for (const hf::Piece& piece : pieces) model_->tokenize(piece.text, &ids);
  }
  return ids;
}

std::string HfTokenizer::decode_tokens(std::vector<std::string> tokens) const {
  if (!decoder_) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined += ' ';
      joined += tokens[i];
    }
    return joined;
  }
  decoder_->decode_chain(&tokens);
  std::string text;
  for (const std::string& token : tokens) text += token;
  return text;
}

std::string HfTokenizer::decode_ids(std::span<const TokenId> ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const TokenId id : ids) {
    const hf::AddedToken* added = added_.find(id);
    if (added != nullptr) {
      if (!(skip_special_tokens && added->special)) tokens.push_back(added->surface);
      continue;
    }
    if (const std::string* token = model_->id_to_token(id)) tokens.push_back(*token);
  }
  return decode_tokens(std::move(tokens));
}

void HfTokenizer::build_token_bytes(bool byte_level) {
  // A sentinel first token makes every decoder treat the token as one in the middle of a sequence
  // (Metaspace and Strip act on the first token or the text's start only).
  constexpr std::string_view kSentinel = "\x01";
  token_bytes_.assign(static_cast<size_t>(vocab_size_), std::string());
  for (TokenId id = 0; id < vocab_size_; ++id) {
    std::string& out = token_bytes_[static_cast<size_t>(id)];
    const hf::AddedToken* added = added_.find(id);
    if (added != nullptr && added->special) continue;  // special tokens are skipped in output text
    const std::string* token = token_string(id);
    if (token == nullptr) continue;
    if (byte_level) {
      // Raw bytes, possibly a partial UTF-8 character: the streaming detokenizer joins them.
      std::optional<std::string> bytes = hf::byte_level_to_bytes(*token);
      out = bytes ? *bytes : *token;
      continue;
    }
    if (model_->byte_fallback() && added == nullptr) {
      if (const std::optional<char> byte = hf::parse_byte_piece(*token)) {
        out.assign(1, *byte);
        continue;
      }
    }
    std::string text = decode_tokens({std::string(kSentinel), *token});
    out = text.compare(0, kSentinel.size(), kSentinel) == 0 ? text.substr(kSentinel.size()) : decode_tokens({*token});
  }
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> parse_hf_tokenizer(const std::string& json_text, const HfSpecialTokens& specials) {
  ASSIGN_OR_RETURN(json doc, parse_json(json_text, "tokenizer.json"));
  auto tokenizer = std::make_unique<HfTokenizer>();
  // The readers take optional fields with json::value(), which throws when a field has another
  // type than its default: that, too, is malformed content.
  try {
    RETURN_IF_ERROR(tokenizer->init(doc, specials));
  } catch (const json::exception& e) {
    return invalid_argument(fmt::format("tokenizer.json: a field of the wrong type: {}", e.what()));
  }
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

StatusOr<std::unique_ptr<Tokenizer>> load_hf_tokenizer(const std::string& path, const HfSpecialTokens& specials) {
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  StatusOr<std::unique_ptr<Tokenizer>> tokenizer = parse_hf_tokenizer(text, specials);
  if (!tokenizer.ok()) return tokenizer.status().with_context(path);
  return tokenizer;
}

}  // namespace longbow
