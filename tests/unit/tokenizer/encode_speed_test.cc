// Encoding speed (thread CPU time) on long inputs: 100 KB of corpus text, and 100 KB without a single space (one
// "word" the BPE merge loop must handle without going quadratic). Also checked against the
// library, whose time is printed for comparison.
#include <sentencepiece_processor.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"
#include "tests/unit/tokenizer/spm_test_support.h"

namespace longbow {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr double kSlowdown = 10.0;  // sanitizer builds: same check, looser bound
#else
constexpr double kSlowdown = 1.0;
#endif
constexpr double kBudgetMs = 100.0 * kSlowdown;
constexpr size_t kTextBytes = 100 * 1024;

// This thread's CPU time in ms: unlike wall time it does not grow when CI oversubscribes the
// machine, so the bound stays meaningful without becoming flaky.
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

template <typename F>
double best_ms(F&& f, int runs = 5) {
  double best = 1e30;
  for (int i = 0; i < runs; ++i) {
    const double t0 = thread_cpu_ms();
    f();
    best = std::min(best, thread_cpu_ms() - t0);
  }
  return best;
}

std::vector<std::string> long_texts() {
  std::string prose;
  std::string no_spaces;
  for (const char* file : {"corpus_train.txt", "corpus_heldout.txt"}) {
    for (const std::string& line : testing::read_lines(testing::tokenizer_data_dir() / file)) {
      if (prose.size() < kTextBytes) prose += line + "\n";
      for (const char c : line) {
        if (no_spaces.size() < kTextBytes && c != ' ' && c != '\t') no_spaces.push_back(c);
      }
    }
  }
  std::string repeated;
  while (repeated.size() < kTextBytes) repeated += "sentencepiece";
  return {prose, no_spaces, repeated};
}

class EncodeSpeedTest : public ::testing::TestWithParam<std::string> {};

TEST_P(EncodeSpeedTest, HundredKilobytesWithinBudget) {
  testing::TempDir dir;
  const std::filesystem::path path = testing::train_model(
      dir.path(), "m", testing::tokenizer_data_dir() / "corpus_train.txt",
      {"--model_type=" + GetParam(), "--vocab_size=2000", "--byte_fallback=true", "--user_defined_symbols=<sep>"});
  ASSERT_FALSE(path.empty());
  auto loaded = load_sentencepiece_tokenizer(path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const Tokenizer& tok = **loaded;
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(path.string()).ok());

  const std::vector<std::string> texts = long_texts();
  const char* names[] = {"corpus text", "text without spaces", "\"sentencepiecesentencepiece...\""};
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& text = texts[i];
    ASSERT_GE(text.size(), kTextBytes);
    std::vector<int32_t> ids;
    const double ours = best_ms([&] { ids = tok.encode(text); });
    std::vector<int> want;
    const double library = best_ms([&] { ASSERT_TRUE(sp.Encode(text, &want).ok()); });
    EXPECT_EQ(ids, std::vector<int32_t>(want.begin(), want.end())) << names[i];
    std::string decoded;
    const double decode_ms = best_ms([&] { decoded = tok.decode(ids); });
    std::string want_text;
    ASSERT_TRUE(sp.Decode(want, &want_text).ok());
    EXPECT_EQ(decoded, want_text) << names[i];
    std::printf("%s, %s (%zu bytes, %zu ids): CPU ms, best of 5: encode %.2f (library %.2f), decode %.2f\n",
                GetParam().c_str(), names[i], text.size(), ids.size(), ours, library, decode_ms);
    EXPECT_LT(ours, kBudgetMs) << names[i];
    EXPECT_LT(decode_ms, kBudgetMs) << names[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EncodeSpeedTest, ::testing::Values("bpe", "unigram"),
                         [](const ::testing::TestParamInfo<std::string>& model) { return model.param; });

}  // namespace
}  // namespace longbow
