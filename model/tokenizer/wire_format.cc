#include "model/tokenizer/wire_format.h"

#include <cstring>
#include <string>

namespace longbow::spm {

float WireField::as_float() const {
  float value;
  static_assert(sizeof(value) == sizeof(fixed32));
  std::memcpy(&value, &fixed32, sizeof(value));
  return value;
}

Status WireReader::error(std::string_view problem) const {
  return invalid_argument(std::string(what_) + ": " + std::string(problem) + " at byte " +
                          std::to_string(pos_) + " of " + std::to_string(data_.size()));
}

Status WireReader::read_varint(uint64_t* value) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) return error("truncated varint");
    const auto byte = static_cast<uint8_t>(data_[pos_++]);
    result |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) {
      *value = result;
      return Status::Ok();
    }
  }
  return error("varint longer than 10 bytes");
}

Status WireReader::next(WireField* field) {
  uint64_t tag = 0;
  RETURN_IF_ERROR(read_varint(&tag));
  const uint64_t number = tag >> 3;
  if (number == 0 || number > (1u << 29) - 1) return error("invalid field number " + std::to_string(number));
  *field = WireField();
  field->number = static_cast<uint32_t>(number);
  switch (tag & 7) {
    case 0:
      field->type = WireType::kVarint;
      return read_varint(&field->varint);
    case 1:
      field->type = WireType::kFixed64;
      if (data_.size() - pos_ < 8) return error("truncated fixed64");
      for (int i = 7; i >= 0; --i) field->fixed64 = field->fixed64 << 8 | static_cast<uint8_t>(data_[pos_ + i]);
      pos_ += 8;
      return Status::Ok();
    case 2: {
      field->type = WireType::kLengthDelimited;
      uint64_t length = 0;
      RETURN_IF_ERROR(read_varint(&length));
      if (length > data_.size() - pos_) {
        return error("length " + std::to_string(length) + " of field " + std::to_string(number) +
                     " runs past the end");
      }
      field->bytes = data_.substr(pos_, length);
      pos_ += length;
      return Status::Ok();
    }
    case 5:
      field->type = WireType::kFixed32;
      if (data_.size() - pos_ < 4) return error("truncated fixed32");
      for (int i = 3; i >= 0; --i) field->fixed32 = field->fixed32 << 8 | static_cast<uint8_t>(data_[pos_ + i]);
      pos_ += 4;
      return Status::Ok();
    default:
      return error("unsupported wire type " + std::to_string(tag & 7) + " for field " + std::to_string(number));
  }
}

}  // namespace longbow::spm
