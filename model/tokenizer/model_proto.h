// The parts of sentencepiece's ModelProto (sentencepiece_model.proto, proto2) that encoding and
// decoding read, parsed from the wire format by hand. Fields keep the .proto's defaults when
// absent; training-only fields are skipped.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::spm {

// ModelProto.SentencePiece.Type; the numbers are the wire values.
enum class PieceType : uint8_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// TrainerSpec.ModelType.
enum class ModelType : uint8_t {
  kUnigram = 1,
  kBpe = 2,
  kWord = 3,
  kChar = 4,
};

struct PieceProto {
  std::string piece;  // field 1
  float score = 0;    // field 2
  PieceType type = PieceType::kNormal;  // field 3
};

struct TrainerSpecProto {
  ModelType model_type = ModelType::kUnigram;  // field 3
  int32_t vocab_size = 8000;                   // field 4
  bool treat_whitespace_as_suffix = false;     // field 24
  bool byte_fallback = false;                  // field 35
  int32_t unk_id = 0;                          // field 40
  int32_t bos_id = 1;                          // field 41
  int32_t eos_id = 2;                          // field 42
  int32_t pad_id = -1;                         // field 43
  std::string unk_surface = " \xE2\x81\x87 ";  // field 44 (" ⁇ ")
  std::string unk_piece = "<unk>";             // field 45
  std::string bos_piece = "<s>";               // field 46
  std::string eos_piece = "</s>";              // field 47
  std::string pad_piece = "<pad>";             // field 48
};

struct NormalizerSpecProto {
  std::string name;                  // field 1
  std::string precompiled_charsmap;  // field 2
  bool add_dummy_prefix = true;      // field 3
  bool remove_extra_whitespaces = true;  // field 4
  bool escape_whitespaces = true;    // field 5
};

struct ModelProto {
  std::vector<PieceProto> pieces;       // field 1, in id order
  TrainerSpecProto trainer_spec;        // field 2
  NormalizerSpecProto normalizer_spec;  // field 3
  bool has_denormalizer_spec = false;
  NormalizerSpecProto denormalizer_spec;  // field 5
  int self_test_samples = 0;              // field 4, counted only
};

// Parses a serialized ModelProto with protobuf's semantics: unknown fields are skipped, a repeated
// occurrence of a singular field overwrites (scalars) or merges into (messages) the earlier one, an
// enum value the .proto does not define leaves the field unchanged. INVALID_ARGUMENT when the bytes
// are not a well-formed message.
StatusOr<ModelProto> parse_model_proto(std::string_view bytes);

}  // namespace longbow::spm
