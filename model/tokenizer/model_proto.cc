#include "model/tokenizer/model_proto.h"

#include "model/tokenizer/wire_format.h"

namespace longbow::spm {
namespace {

// Field numbers from sentencepiece_model.proto.
namespace field {
constexpr uint32_t kModelPieces = 1;
constexpr uint32_t kModelTrainerSpec = 2;
constexpr uint32_t kModelNormalizerSpec = 3;
constexpr uint32_t kModelSelfTestData = 4;
constexpr uint32_t kModelDenormalizerSpec = 5;

constexpr uint32_t kPiecePiece = 1;
constexpr uint32_t kPieceScore = 2;
constexpr uint32_t kPieceType = 3;

constexpr uint32_t kTrainerModelType = 3;
constexpr uint32_t kTrainerVocabSize = 4;
constexpr uint32_t kTrainerTreatWhitespaceAsSuffix = 24;
constexpr uint32_t kTrainerByteFallback = 35;
constexpr uint32_t kTrainerUnkId = 40;
constexpr uint32_t kTrainerBosId = 41;
constexpr uint32_t kTrainerEosId = 42;
constexpr uint32_t kTrainerPadId = 43;
constexpr uint32_t kTrainerUnkSurface = 44;
constexpr uint32_t kTrainerUnkPiece = 45;
constexpr uint32_t kTrainerBosPiece = 46;
constexpr uint32_t kTrainerEosPiece = 47;
constexpr uint32_t kTrainerPadPiece = 48;

constexpr uint32_t kNormalizerName = 1;
constexpr uint32_t kNormalizerPrecompiledCharsmap = 2;
constexpr uint32_t kNormalizerAddDummyPrefix = 3;
constexpr uint32_t kNormalizerRemoveExtraWhitespaces = 4;
constexpr uint32_t kNormalizerEscapeWhitespaces = 5;

constexpr uint32_t kSelfTestSamples = 1;
}  // namespace field

bool is_varint(const WireField& f) { return f.type == WireType::kVarint; }
bool is_bytes(const WireField& f) { return f.type == WireType::kLengthDelimited; }
bool is_fixed32(const WireField& f) { return f.type == WireType::kFixed32; }

// A field whose wire type does not match its declaration is kept as an unknown field by protobuf,
// i.e. ignored here.
Status parse_piece(std::string_view bytes, PieceProto* piece) {
  WireReader reader(bytes, "ModelProto.SentencePiece");
  WireField f;
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.next(&f));
    if (f.number == field::kPiecePiece && is_bytes(f)) {
      piece->piece.assign(f.bytes);
    } else if (f.number == field::kPieceScore && is_fixed32(f)) {
      piece->score = f.as_float();
    } else if (f.number == field::kPieceType && is_varint(f)) {
      const int32_t v = f.as_int32();
      if (v >= 1 && v <= 6) piece->type = static_cast<PieceType>(v);
    }
  }
  return Status::Ok();
}

Status parse_trainer_spec(std::string_view bytes, TrainerSpecProto* spec) {
  WireReader reader(bytes, "TrainerSpec");
  WireField f;
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.next(&f));
    if (is_varint(f)) {
      switch (f.number) {
        case field::kTrainerModelType: {
          const int32_t v = f.as_int32();
          if (v >= 1 && v <= 4) spec->model_type = static_cast<ModelType>(v);
          break;
        }
        case field::kTrainerVocabSize: spec->vocab_size = f.as_int32(); break;
        case field::kTrainerTreatWhitespaceAsSuffix: spec->treat_whitespace_as_suffix = f.as_bool(); break;
        case field::kTrainerByteFallback: spec->byte_fallback = f.as_bool(); break;
        case field::kTrainerUnkId: spec->unk_id = f.as_int32(); break;
        case field::kTrainerBosId: spec->bos_id = f.as_int32(); break;
        case field::kTrainerEosId: spec->eos_id = f.as_int32(); break;
        case field::kTrainerPadId: spec->pad_id = f.as_int32(); break;
        default: break;
      }
    } else if (is_bytes(f)) {
      switch (f.number) {
        case field::kTrainerUnkSurface: spec->unk_surface.assign(f.bytes); break;
        case field::kTrainerUnkPiece: spec->unk_piece.assign(f.bytes); break;
        case field::kTrainerBosPiece: spec->bos_piece.assign(f.bytes); break;
        case field::kTrainerEosPiece: spec->eos_piece.assign(f.bytes); break;
        case field::kTrainerPadPiece: spec->pad_piece.assign(f.bytes); break;
        default: break;
      }
    }
  }
  return Status::Ok();
}

Status parse_normalizer_spec(std::string_view bytes, std::string_view what, NormalizerSpecProto* spec) {
  WireReader reader(bytes, what);
  WireField f;
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.next(&f));
    if (is_bytes(f)) {
      if (f.number == field::kNormalizerName) spec->name.assign(f.bytes);
      if (f.number == field::kNormalizerPrecompiledCharsmap) spec->precompiled_charsmap.assign(f.bytes);
    } else if (is_varint(f)) {
      if (f.number == field::kNormalizerAddDummyPrefix) spec->add_dummy_prefix = f.as_bool();
      if (f.number == field::kNormalizerRemoveExtraWhitespaces) spec->remove_extra_whitespaces = f.as_bool();
      if (f.number == field::kNormalizerEscapeWhitespaces) spec->escape_whitespaces = f.as_bool();
    }
  }
  return Status::Ok();
}

// Only validated and counted: self-test samples are a training-time check.
Status parse_self_test_data(std::string_view bytes, int* samples) {
  WireReader reader(bytes, "SelfTestData");
  WireField f;
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.next(&f));
    if (f.number == field::kSelfTestSamples && is_bytes(f)) {
      WireReader sample(f.bytes, "SelfTestData.Sample");
      WireField g;
      while (!sample.done()) RETURN_IF_ERROR(sample.next(&g));
      ++*samples;
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<ModelProto> parse_model_proto(std::string_view bytes) {
  ModelProto model;
  WireReader reader(bytes, "ModelProto");
  WireField f;
  while (!reader.done()) {
    RETURN_IF_ERROR(reader.next(&f));
    if (!is_bytes(f)) continue;
    switch (f.number) {
      case field::kModelPieces: {
        PieceProto piece;
        RETURN_IF_ERROR(parse_piece(f.bytes, &piece)
                            .with_context("piece " + std::to_string(model.pieces.size())));
        model.pieces.push_back(std::move(piece));
        break;
      }
      case field::kModelTrainerSpec:
        RETURN_IF_ERROR(parse_trainer_spec(f.bytes, &model.trainer_spec));
        break;
      case field::kModelNormalizerSpec:
        RETURN_IF_ERROR(parse_normalizer_spec(f.bytes, "NormalizerSpec", &model.normalizer_spec));
        break;
      case field::kModelSelfTestData:
        RETURN_IF_ERROR(parse_self_test_data(f.bytes, &model.self_test_samples));
        break;
      case field::kModelDenormalizerSpec:
        model.has_denormalizer_spec = true;
        RETURN_IF_ERROR(parse_normalizer_spec(f.bytes, "denormalizer NormalizerSpec", &model.denormalizer_spec));
        break;
      default:
        break;
    }
  }
  return model;
}

}  // namespace longbow::spm
