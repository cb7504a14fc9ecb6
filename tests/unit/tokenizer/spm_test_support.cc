#include "tests/unit/tokenizer/spm_test_support.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

extern char** environ;

namespace longbow::testing {

std::filesystem::path tokenizer_data_dir() {
  return std::filesystem::path(LONGBOW_SOURCE_DIR) / "tests" / "data" / "tokenizer";
}

std::string read_binary(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

void write_binary(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> read_lines(const std::filesystem::path& path) {
  const std::string text = read_binary(path);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

TempDir::TempDir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/longbow_tok_XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::filesystem::path train_model(const std::filesystem::path& dir, const std::string& name,
                                  const std::filesystem::path& input, const std::vector<std::string>& flags) {
  std::vector<std::string> args = {SPM_TRAIN_PATH,
                                   "--input=" + input.string(),
                                   "--model_prefix=" + (dir / name).string(),
                                   "--num_threads=1",
                                   "--random_seed=1",
                                   "--minloglevel=1"};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const std::string log = (dir / (name + ".log")).string();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  int status = 0;
  if (rc != 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::cerr << "spm_train failed for " << name << " (spawn rc " << rc << ", status " << status << "):\n"
              << read_binary(log) << "\n";
    return {};
  }
  return dir / (name + ".model");
}

std::string escape(std::string_view s, size_t max_bytes) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '"') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    }
  }
  out += "\"";
  if (s.size() > max_bytes) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string format_ids(const std::vector<int32_t>& ids, size_t max_ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size() && i < max_ids; ++i) {
    if (i > 0) out += " ";
    out += std::to_string(ids[i]);
  }
  if (ids.size() > max_ids) out += " ... (" + std::to_string(ids.size()) + " ids)";
  return out + "]";
}

namespace wire {

std::string varint(uint64_t v) {
  std::string out;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    if (v != 0) b |= 0x80;
    out.push_back(static_cast<char>(b));
  } while (v != 0);
  return out;
}

std::string field_varint(uint32_t number, uint64_t v) { return varint(number << 3 | 0) + varint(v); }

std::string field_bytes(uint32_t number, std::string_view bytes) {
  return varint(number << 3 | 2) + varint(bytes.size()) + std::string(bytes);
}

std::string field_float(uint32_t number, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  std::string out = varint(number << 3 | 5);
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
  return out;
}

}  // namespace wire

namespace {

// int32 fields: negative values are 10-byte sign-extended varints.
std::string field_int32(uint32_t number, int32_t v) {
  return wire::field_varint(number, static_cast<uint64_t>(static_cast<int64_t>(v)));
}

std::string serialize_normalizer(const spm::NormalizerSpecProto& n) {
  return wire::field_bytes(1, n.name) + wire::field_bytes(2, n.precompiled_charsmap) +
         wire::field_varint(3, n.add_dummy_prefix) + wire::field_varint(4, n.remove_extra_whitespaces) +
         wire::field_varint(5, n.escape_whitespaces);
}

}  // namespace

std::string serialize_model(const spm::ModelProto& model) {
  std::string out;
  for (const spm::PieceProto& p : model.pieces) {
    out += wire::field_bytes(1, wire::field_bytes(1, p.piece) + wire::field_float(2, p.score) +
                                    wire::field_varint(3, static_cast<uint64_t>(p.type)));
  }
  const spm::TrainerSpecProto& t = model.trainer_spec;
  out += wire::field_bytes(
      2, wire::field_varint(3, static_cast<uint64_t>(t.model_type)) + field_int32(4, t.vocab_size) +
             wire::field_varint(24, t.treat_whitespace_as_suffix) + wire::field_varint(35, t.byte_fallback) +
             field_int32(40, t.unk_id) + field_int32(41, t.bos_id) + field_int32(42, t.eos_id) +
             field_int32(43, t.pad_id) + wire::field_bytes(44, t.unk_surface) + wire::field_bytes(45, t.unk_piece) +
             wire::field_bytes(46, t.bos_piece) + wire::field_bytes(47, t.eos_piece) +
             wire::field_bytes(48, t.pad_piece));
  out += wire::field_bytes(3, serialize_normalizer(model.normalizer_spec));
  if (model.has_denormalizer_spec) out += wire::field_bytes(5, serialize_normalizer(model.denormalizer_spec));
  return out;
}

}  // namespace longbow::testing
