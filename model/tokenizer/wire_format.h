// Protocol-buffer wire format, read side only: just enough to walk a serialized sentencepiece
// ModelProto without libprotobuf (which cannot share a process with gRPC's copy).
//
// A message is a sequence of (tag, value) records; tag = field_number << 3 | wire_type. Values are
// varints (type 0), little-endian fixed64 (1), length-delimited bytes (2) or fixed32 (5). Groups
// (3, 4) are obsolete and rejected.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/status.h"

namespace longbow::spm {

enum class WireType : uint8_t {
  kVarint = 0,
  kFixed64 = 1,
  kLengthDelimited = 2,
  kFixed32 = 5,
};

struct WireField {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t varint = 0;      // kVarint
  uint64_t fixed64 = 0;     // kFixed64
  uint32_t fixed32 = 0;     // kFixed32 (a float's bit pattern for `float` fields)
  std::string_view bytes;   // kLengthDelimited; points into the reader's buffer

  // Reinterpretations with protobuf's rules: int32 truncates the varint to its low 32 bits
  // (negative values are sign-extended 10-byte varints), bool is "non-zero".
  int32_t as_int32() const { return static_cast<int32_t>(static_cast<uint32_t>(varint)); }
  bool as_bool() const { return varint != 0; }
  float as_float() const;
};

// Iterates over the fields of one serialized message. `what` names the message in errors
// ("ModelProto", "TrainerSpec", ...).
class WireReader {
 public:
  WireReader(std::string_view data, std::string_view what) : data_(data), what_(what) {}

  bool done() const { return pos_ >= data_.size(); }

  // The next field. INVALID_ARGUMENT (naming the message and byte offset) on a truncated or
  // malformed record.
  Status next(WireField* field);

 private:
  Status read_varint(uint64_t* value);
  Status error(std::string_view problem) const;

  std::string_view data_;
  std::string_view what_;
  size_t pos_ = 0;
};

}  // namespace longbow::spm
