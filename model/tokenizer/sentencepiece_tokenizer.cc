// load_sentencepiece_tokenizer: a Tokenizer over a parsed ModelProto, wiring the normalizer, the
// BPE or unigram segmenter and the decoder together the way SentencePieceProcessor does.
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

#include "model/tokenizer/bpe.h"
#include "model/tokenizer/decoder.h"
#include "model/tokenizer/model_proto.h"
#include "model/tokenizer/normalizer.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/unigram.h"
#include "model/tokenizer/vocab.h"

namespace longbow {
namespace {

using spm::PieceType;

// Members point at each other (normalizer -> vocab's user-defined trie, decoder -> vocab), so an
// instance is built in place and never moved.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer() = default;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  Status init(spm::ModelProto model);

  std::vector<TokenId> encode(std::string_view text) const override;
  std::string decode(std::span<const TokenId> ids) const override;
  StatusOr<std::string> decode_checked(std::span<const TokenId> ids) const override;
  std::string token_bytes(TokenId id) const override { return decoder_.token_bytes(id); }

  int vocab_size() const override { return vocab_.size(); }
  std::string_view piece(TokenId id) const override {
    return vocab_.contains(id) ? std::string_view(vocab_.piece(id)) : std::string_view();
  }
  bool is_control(TokenId id) const override { return vocab_.contains(id) && vocab_.is(id, PieceType::kControl); }
  std::optional<TokenId> bos_id() const override { return bos_id_; }
  std::optional<TokenId> eos_id() const override { return eos_id_; }
  std::optional<TokenId> unk_id() const override { return unk_id_; }

 private:
  // The library's id lookup of a special piece: the id when the piece exists with `type`.
  std::optional<TokenId> special_id(const std::string& piece, PieceType type) const {
    const int32_t id = vocab_.piece_to_id(piece);
    if (vocab_.contains(id) && vocab_.is(id, type)) return id;
    return std::nullopt;
  }

  spm::ModelProto model_;
  spm::Vocab vocab_;
  spm::Normalizer normalizer_;
  std::optional<spm::Normalizer> denormalizer_;
  std::optional<spm::UnigramModel> unigram_;  // exactly one of these two is set
  std::optional<spm::BpeModel> bpe_;
  spm::Decoder decoder_;
  std::optional<TokenId> bos_id_, eos_id_, unk_id_;
};

Status SentencePieceTokenizer::init(spm::ModelProto model) {
  model_ = std::move(model);
  switch (model_.trainer_spec.model_type) {
    case spm::ModelType::kUnigram:
    case spm::ModelType::kBpe:
      break;
    case spm::ModelType::kWord:
      return unimplemented("sentencepiece model_type WORD is not supported (only UNIGRAM and BPE)");
    case spm::ModelType::kChar:
      return unimplemented("sentencepiece model_type CHAR is not supported (only UNIGRAM and BPE)");
  }
  ASSIGN_OR_RETURN(vocab_, spm::Vocab::create(model_));
  if (model_.trainer_spec.model_type == spm::ModelType::kUnigram) {
    ASSIGN_OR_RETURN(unigram_, spm::UnigramModel::create(vocab_));
  } else {
    bpe_ = spm::BpeModel::create(vocab_);
  }
  ASSIGN_OR_RETURN(normalizer_, spm::Normalizer::create(model_.normalizer_spec,
                                                        model_.trainer_spec.treat_whitespace_as_suffix,
                                                        &vocab_.user_defined()));
  // As the library: a denormalizer only when the spec carries a charsmap; no user-defined
  // matching and no suffix rule there.
  if (model_.has_denormalizer_spec && !model_.denormalizer_spec.precompiled_charsmap.empty()) {
    ASSIGN_OR_RETURN(denormalizer_, spm::Normalizer::create(model_.denormalizer_spec, false, nullptr));
  }
  decoder_ = spm::Decoder(vocab_, model_, denormalizer_.has_value() ? &*denormalizer_ : nullptr);
  bos_id_ = special_id(model_.trainer_spec.bos_piece, PieceType::kControl);
  eos_id_ = special_id(model_.trainer_spec.eos_piece, PieceType::kControl);
  unk_id_ = special_id(model_.trainer_spec.unk_piece, PieceType::kUnknown);
  return Status::Ok();
}

std::vector<TokenId> SentencePieceTokenizer::encode(std::string_view text) const {
  const std::string normalized = normalizer_.normalize(text);
  const spm::Segments segments =
      unigram_.has_value() ? unigram_->segment(normalized) : bpe_->segment(normalized);

  // As PopulateSentencePieceText: an unknown piece becomes its bytes' <0xXX> pieces under
  // byte_fallback; otherwise a run of unknown pieces collapses into one unknown id.
  std::vector<TokenId> ids;
  ids.reserve(segments.size());
  bool is_prev_unk = false;
  for (const spm::Segment& s : segments) {
    const bool is_unk = vocab_.contains(s.id) && vocab_.is(s.id, PieceType::kUnknown);
    const bool is_control = vocab_.contains(s.id) && vocab_.is(s.id, PieceType::kControl);
    if (is_control) {
      ids.push_back(s.id);
    } else if (is_unk && vocab_.byte_fallback()) {
      for (const char c : s.piece) ids.push_back(vocab_.byte_piece_id(static_cast<uint8_t>(c)));
    } else if (!(is_unk && is_prev_unk)) {
      ids.push_back(s.id);
    }
    is_prev_unk = is_unk;
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(std::span<const TokenId> ids) const {
  StatusOr<std::string> text = decoder_.decode(ids, /*skip_invalid=*/true);
  return text.ok() ? std::move(text).value() : std::string();
}

StatusOr<std::string> SentencePieceTokenizer::decode_checked(std::span<const TokenId> ids) const {
  return decoder_.decode(ids, /*skip_invalid=*/false);
}

StatusOr<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("sentencepiece model " + path + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return data_loss("sentencepiece model " + path + ": read error");
  return std::move(buffer).str();
}

}  // namespace

StatusOr<std::unique_ptr<Tokenizer>> load_sentencepiece_tokenizer(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string bytes, read_file(path));
  StatusOr<spm::ModelProto> model = spm::parse_model_proto(bytes);
  if (!model.ok()) return model.status().with_context("sentencepiece model " + path);
  auto tokenizer = std::make_unique<SentencePieceTokenizer>();
  RETURN_IF_ERROR(tokenizer->init(std::move(model).value()).with_context("sentencepiece model " + path));
  return std::unique_ptr<Tokenizer>(std::move(tokenizer));
}

}  // namespace longbow
