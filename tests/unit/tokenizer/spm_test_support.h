// Helpers shared by the tokenizer tests: the committed corpus, temporary directories, training
// models with spm_train, and readable dumps of strings and id lists for failure messages.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/model_proto.h"

namespace longbow::testing {

// tests/data/tokenizer in the source tree.
std::filesystem::path tokenizer_data_dir();

// The lines of a text file split on '\n' only (a '\r' stays in its line); no trailing empty line.
std::vector<std::string> read_lines(const std::filesystem::path& path);
std::string read_binary(const std::filesystem::path& path);
void write_binary(const std::filesystem::path& path, std::string_view bytes);

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Runs spm_train on `input` with `flags` ("--name=value", no shell quoting needed), writing
// <dir>/<name>.model. Returns the model path, or an empty path after printing spm_train's log.
std::filesystem::path train_model(const std::filesystem::path& dir, const std::string& name,
                                  const std::filesystem::path& input, const std::vector<std::string>& flags);

// `s` with non-printable and non-ASCII bytes as \xNN, cut to `max_bytes` (for messages).
std::string escape(std::string_view s, size_t max_bytes = 240);
std::string format_ids(const std::vector<int32_t>& ids, size_t max_ids = 64);

// Protocol-buffer wire-format writers, for hand-built and rewritten model files.
namespace wire {
std::string varint(uint64_t v);
std::string field_varint(uint32_t number, uint64_t v);
std::string field_bytes(uint32_t number, std::string_view bytes);
std::string field_float(uint32_t number, float f);
}  // namespace wire

// Serializes the fields longbow parses (see model/tokenizer/model_proto.h) as a ModelProto.
std::string serialize_model(const spm::ModelProto& model);

}  // namespace longbow::testing
