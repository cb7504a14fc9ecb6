// Tokenizer throughput: encodes one whole document with longbow's tokenizer on one thread and
// prints one JSON line (docs/benchmarks.md, "Tokenizer") with a hash of the ids, so runs of two builds
// can be checked for identical output. The first run warms the BPE word cache,
// as Hugging Face tokenizers' own cache is warm in its benchmark; the best of --repeat runs counts.
//   longbow_tokenizer_bench --tokenizer DIR_OR_FILE --text FILE [--repeat N] [--label NAME]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/json_file.h"
#include "model/tokenizer/tokenizer_factory.h"

namespace {

int usage() {
  std::fprintf(stderr, "usage: longbow_tokenizer_bench --tokenizer DIR_OR_FILE --text FILE [--repeat N] [--label NAME]\n");
  return 2;
}

// FNV-1a over the ids' 4-byte little-endian values: equal outputs of two builds compare equal.
uint64_t fnv1a(const std::vector<longbow::TokenId>& ids) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const longbow::TokenId id : ids) {
    for (int shift = 0; shift < 32; shift += 8) {
      hash ^= (static_cast<uint32_t>(id) >> shift) & 0xFF;
      hash *= 0x100000001b3ULL;
    }
  }
  return hash;
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path, text_path, label;
  int repeat = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--tokenizer") {
      tokenizer_path = argv[i + 1];
    } else if (flag == "--text") {
      text_path = argv[i + 1];
    } else if (flag == "--repeat") {
      repeat = std::atoi(argv[i + 1]);
    } else if (flag == "--label") {
      label = argv[i + 1];
    } else {
      return usage();
    }
  }
  if (tokenizer_path.empty() || text_path.empty() || repeat < 1) return usage();
  auto tokenizer = longbow::load_tokenizer(tokenizer_path);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().to_string().c_str());
    return 1;
  }
  auto text = longbow::read_file(text_path);
  if (!text.ok()) {
    std::fprintf(stderr, "%s\n", text.status().to_string().c_str());
    return 1;
  }
  double best = 1e30;
  size_t tokens = 0;
  uint64_t ids_hash = 0;
  for (int r = 0; r <= repeat; ++r) {  // run 0 warms up
    const auto start = std::chrono::steady_clock::now();
    const std::vector<longbow::TokenId> ids = (*tokenizer)->encode(*text);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r > 0 && seconds < best) best = seconds;
    tokens = ids.size();
    ids_hash = fnv1a(ids);
  }
  nlohmann::ordered_json out{{"impl", "longbow"},
                             {"label", label},
                             {"bytes", text->size()},
                             {"tokens", tokens},
                             {"ids_fnv1a", fmt::format("{:016x}", ids_hash)},
                             {"seconds", best},
                             {"mb_per_s", static_cast<double>(text->size()) / best / 1e6},
                             {"tokens_per_s", static_cast<double>(tokens) / best}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
