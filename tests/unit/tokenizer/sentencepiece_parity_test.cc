// longbow's sentencepiece tokenizer against the real library (libsentencepiece 0.1.97, linked into
// this test binary only). Each case trains a model with spm_train on the committed training corpus
// and then requires identical ids for every corpus line (training and held-out) and for edge-case
// and random inputs, identical decodes of those ids and of random id sequences, and identical
// vocabulary metadata.
#include <sentencepiece_processor.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"
#include "tests/unit/tokenizer/spm_test_support.h"

namespace longbow {
namespace {

using testing::escape;
using testing::format_ids;

struct ModelCase {
  std::string name;
  std::vector<std::string> flags;
  bool add_dummy_prefix = true;  // mirrors the flags; used by the token_bytes property
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

const char kUserSymbols[] = "--user_defined_symbols=<sep>,<tool>,[[MASK]],™,ＡＢ";
const char kControlSymbols[] = "--control_symbols=<ctrl0>,<ctrl1>";

std::vector<ModelCase> model_cases() {
  return {
      {"BpeNmtNfkcByteFallback",
       {"--model_type=bpe", "--vocab_size=2000", "--byte_fallback=true", kUserSymbols, kControlSymbols}},
      {"UnigramNmtNfkcByteFallback",
       {"--model_type=unigram", "--vocab_size=2000", "--byte_fallback=true", kUserSymbols, kControlSymbols}},
      {"BpeIdentityNoDummyPrefix",
       {"--model_type=bpe", "--vocab_size=1500", "--byte_fallback=true", "--normalization_rule_name=identity",
        "--add_dummy_prefix=false", kUserSymbols},
       false},
      {"UnigramKeepWhitespaceNoByteFallback",
       {"--model_type=unigram", "--vocab_size=1200", "--remove_extra_whitespaces=false", "--unk_surface=<?>",
        "--character_coverage=0.98", kUserSymbols, kControlSymbols}},
      {"BpeNfkcCfNoByteFallbackCustomIds",
       {"--model_type=bpe", "--vocab_size=1000", "--normalization_rule_name=nfkc_cf", "--character_coverage=0.98",
        "--unk_id=3", "--bos_id=0", "--eos_id=-1", "--pad_id=1", "--control_symbols=<ctrl0>"}},
      {"UnigramIdentityRawWhitespace",
       {"--model_type=unigram", "--vocab_size=1500", "--byte_fallback=true", "--normalization_rule_name=identity",
        "--add_dummy_prefix=false", "--remove_extra_whitespaces=false", kUserSymbols},
       false},
      {"UnigramWhitespaceSuffix",
       {"--model_type=unigram", "--vocab_size=1500", "--byte_fallback=true", "--treat_whitespace_as_suffix=true",
        kUserSymbols}},
  };
}

// Inputs beyond the corpus: whitespace corners, malformed UTF-8, symbols next to spaces, text
// that spells control or byte pieces, characters that normalize to nothing or to spaces.
std::vector<std::string> edge_inputs() {
  return {
      "", " ", "  ", "\t", "\xE3\x80\x80", "a", " a", "a ", "  a  b  ", "a\tb", "a\n b",
      "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81x", " \xE2\x96\x81 ",
      "\xFF", "a\xC3", "\xE2\x96", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "\xF0\x9F\x98", "\x80\x80\x80",
      "\xEF\xBF\xBD", "x\xEF\xBF\xBDy", std::string("nul\0byte", 8), std::string(1, '\0'),
      "<sep>", " <sep> ", "<sep><sep>", "a<sep>b", "<se", "<tool>x", "[[MASK]]", "™™", "ＡＢＣ", "Ａ", "ＡＢ ＡＢ",
      "<ctrl0>", "<s>", "</s>", "<unk>", "<0x41>", "<0xE3><0x81>",
      "\xEF\xAC\x81", "\xE2\x84\xA2", "\xC2\xA0", "\xE2\x80\x8B", "\xE2\x80\x8B\xE2\x80\x8B", "\xC2\xAD",
      "\xEF\xBB\xBF", "e\xCC\x81", "\xCC\x81", "\xF0\x9D\x94\x98\xF0\x9D\x94\xAB", "\xEE\x80\x80",
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
      std::string(300, ' ') + "x", std::string(5000, 'a'), std::string(2000, '.'),
  };
}

// Random strings: corpus characters, raw bytes (often invalid UTF-8), spaces and symbols mixed.
std::vector<std::string> random_inputs(const std::vector<std::string>& corpus, int count, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::vector<std::string> fragments = {" ", "  ", "\t", "<sep>", "ＡＢ", "™", "<ctrl0>", "\xE2\x96\x81",
                                              "\xEF\xBF\xBD", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", "\xE3\x80\x80"};
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s;
    const int parts = static_cast<int>(rng() % 12);
    for (int p = 0; p < parts; ++p) {
      switch (rng() % 4) {
        case 0: {
          const std::string& line = corpus[rng() % corpus.size()];
          if (line.empty()) break;
          const size_t start = rng() % line.size();
          s += line.substr(start, rng() % 24);  // may cut a character: invalid UTF-8
          break;
        }
        case 1:
          for (uint32_t n = rng() % 4; n > 0; --n) s.push_back(static_cast<char>(rng() % 256));
          break;
        default:
          s += fragments[rng() % fragments.size()];
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

class SentencePieceParityTest : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    const std::filesystem::path train = testing::tokenizer_data_dir() / "corpus_train.txt";
    model_path_ = testing::train_model(dir_.path(), "m", train, GetParam().flags);
    ASSERT_FALSE(model_path_.empty()) << "spm_train failed";
    const auto st = spm_.Load(model_path_.string());
    ASSERT_TRUE(st.ok()) << st.ToString();
    auto loaded = load_sentencepiece_tokenizer(model_path_.string());
    ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
    tok_ = std::move(loaded).value();
    for (const char* file : {"corpus_train.txt", "corpus_heldout.txt"}) {
      for (std::string& line : testing::read_lines(testing::tokenizer_data_dir() / file)) {
        corpus_.push_back(std::move(line));
      }
    }
    ASSERT_GE(corpus_.size(), 2000u);
  }

  std::vector<int32_t> lib_encode(const std::string& text) const {
    std::vector<int> ids;
    const auto st = spm_.Encode(text, &ids);
    EXPECT_TRUE(st.ok()) << st.ToString() << " for " << escape(text);
    return {ids.begin(), ids.end()};
  }

  // The library's decode; nullopt when it rejects the ids.
  std::optional<std::string> lib_decode(const std::vector<int32_t>& ids) const {
    std::string text;
    const auto st = spm_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!st.ok()) return std::nullopt;
    return text;
  }

  // Compares encode and decode for each input; reports at most a few mismatches in full.
  void check_inputs(const std::vector<std::string>& inputs, const std::string& what) {
    int mismatches = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string& text = inputs[i];
      const std::vector<int32_t> want = lib_encode(text);
      const std::vector<int32_t> got = tok_->encode(text);
      std::string problem;
      if (got != want) {
        problem = "ids differ\n  library: " + format_ids(want) + "\n  longbow: " + format_ids(got);
      } else {
        const std::optional<std::string> want_text = lib_decode(want);
        const std::string got_text = tok_->decode(got);
        if (!want_text.has_value()) {
          problem = "library failed to decode its own ids " + format_ids(want);
        } else if (got_text != *want_text) {
          problem = "decode differs for " + format_ids(want) + "\n  library: " + escape(*want_text) +
                    "\n  longbow: " + escape(got_text);
        }
      }
      // The library's ids through longbow's decoder, even when our ids differ.
      if (problem.empty() || got != want) {
        const std::optional<std::string> want_text = lib_decode(want);
        if (want_text.has_value() && tok_->decode(want) != *want_text) {
          problem += "\n  decode of the library's ids differs: library " + escape(*want_text) + ", longbow " +
                     escape(tok_->decode(want));
        }
      }
      if (!problem.empty()) {
        ++mismatches;
        if (mismatches <= 8) {
          ADD_FAILURE() << what << " #" << i << " " << escape(text) << ": " << problem;
        }
      }
    }
    EXPECT_EQ(mismatches, 0) << what << ": " << mismatches << " of " << inputs.size() << " inputs mismatch";
  }

  testing::TempDir dir_;
  std::filesystem::path model_path_;
  sentencepiece::SentencePieceProcessor spm_;
  std::unique_ptr<Tokenizer> tok_;
  std::vector<std::string> corpus_;
};

TEST_P(SentencePieceParityTest, VocabularyMatchesLibrary) {
  ASSERT_EQ(tok_->vocab_size(), spm_.GetPieceSize());
  for (int id = 0; id < tok_->vocab_size(); ++id) {
    ASSERT_EQ(tok_->piece(id), spm_.IdToPiece(id)) << "id " << id;
    ASSERT_EQ(tok_->is_control(id), spm_.IsControl(id)) << "id " << id;
  }
  EXPECT_EQ(tok_->bos_id().value_or(-1), spm_.bos_id());
  EXPECT_EQ(tok_->eos_id().value_or(-1), spm_.eos_id());
  EXPECT_EQ(tok_->unk_id().value_or(-1), spm_.unk_id());
  EXPECT_EQ(tok_->piece(-1), "");
  EXPECT_EQ(tok_->piece(tok_->vocab_size()), "");
}

TEST_P(SentencePieceParityTest, CorpusEncodesAndDecodesLikeLibrary) { check_inputs(corpus_, "corpus line"); }

TEST_P(SentencePieceParityTest, EdgeAndRandomInputsLikeLibrary) {
  check_inputs(edge_inputs(), "edge input");
  check_inputs(random_inputs(corpus_, 1500, 7), "random input");
}

// The held-out lines must actually reach the unknown-character paths, or the parity above
// proves less than it claims.
TEST_P(SentencePieceParityTest, HeldOutLinesExerciseUnknownCharacters) {
  const std::vector<std::string> heldout =
      testing::read_lines(testing::tokenizer_data_dir() / "corpus_heldout.txt");
  int lines_with_fallback = 0;
  for (const std::string& line : heldout) {
    for (const int32_t id : tok_->encode(line)) {
      if (spm_.IsByte(id) || spm_.IsUnknown(id)) {
        ++lines_with_fallback;
        break;
      }
    }
  }
  EXPECT_GE(lines_with_fallback, 50);
}

// Random id sequences: byte pieces (forming valid and invalid UTF-8), control, unknown,
// user-defined and whitespace pieces in any order.
TEST_P(SentencePieceParityTest, RandomIdSequencesDecodeLikeLibrary) {
  std::vector<int32_t> bytes, controls, specials, spaced;
  for (int id = 0; id < tok_->vocab_size(); ++id) {
    if (spm_.IsByte(id)) bytes.push_back(id);
    if (spm_.IsControl(id)) controls.push_back(id);
    if (spm_.IsUnknown(id)) specials.push_back(id);
    if (spm_.IdToPiece(id).starts_with("\xE2\x96\x81")) spaced.push_back(id);
  }
  for (const char* symbol : {"<sep>", "<tool>", "[[MASK]]", "\xE2\x84\xA2", "\xEF\xBC\xA1\xEF\xBC\xA2"}) {
    const int id = spm_.PieceToId(symbol);
    if (!spm_.IsUnknown(id)) specials.push_back(id);
  }
  // Lead bytes and continuation bytes, so runs form whole characters fairly often.
  std::vector<int32_t> utf8_bytes;
  for (const int32_t id : bytes) {
    const std::string& p = spm_.IdToPiece(id);  // "<0xAB>"
    const int b = std::stoi(p.substr(3, 2), nullptr, 16);
    if (b >= 0x80) utf8_bytes.push_back(id);
  }
  std::mt19937 rng(1234);
  const auto pick = [&](const std::vector<int32_t>& from) {
    return from.empty() ? static_cast<int32_t>(rng() % tok_->vocab_size()) : from[rng() % from.size()];
  };
  int mismatches = 0;
  for (int n = 0; n < 3000; ++n) {
    std::vector<int32_t> ids(rng() % 16);
    for (int32_t& id : ids) {
      const uint32_t r = rng() % 100;
      if (r < 20) id = pick(bytes);
      else if (r < 35) id = pick(utf8_bytes);
      else if (r < 45) id = pick(controls);
      else if (r < 52) id = pick(specials);
      else if (r < 70) id = pick(spaced);
      else id = static_cast<int32_t>(rng() % tok_->vocab_size());
    }
    const std::optional<std::string> want = lib_decode(ids);
    ASSERT_TRUE(want.has_value()) << format_ids(ids);
    const std::string got = tok_->decode(ids);
    const StatusOr<std::string> checked = tok_->decode_checked(ids);
    ASSERT_TRUE(checked.ok()) << checked.status().to_string();
    EXPECT_EQ(*checked, got);
    if (got != *want && ++mismatches <= 8) {
      ADD_FAILURE() << "decode of " << format_ids(ids) << "\n  library: " << escape(*want)
                    << "\n  longbow: " << escape(got);
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(SentencePieceParityTest, OutOfRangeIdsRejectedLikeLibrary) {
  const int n = tok_->vocab_size();
  for (const std::vector<int32_t>& ids : std::vector<std::vector<int32_t>>{{n}, {5, -1}, {n + 100, 5}}) {
    EXPECT_FALSE(lib_decode(ids).has_value()) << format_ids(ids);
    const StatusOr<std::string> checked = tok_->decode_checked(ids);
    ASSERT_FALSE(checked.ok()) << format_ids(ids);
    EXPECT_EQ(checked.status().code(), StatusCode::kOutOfRange);
  }
  // decode() drops them instead.
  EXPECT_EQ(tok_->decode(std::vector<int32_t>{n, 5, -7}), tok_->decode(std::vector<int32_t>{5}));
}

// token_bytes is what a streaming detokenizer concatenates: for an encoded line it must
// reproduce the decoded text plus the dummy-prefix space the decoder strips.
TEST_P(SentencePieceParityTest, TokenBytesConcatenateToDecodedText) {
  int failures = 0;
  for (const std::string& line : corpus_) {
    const std::vector<int32_t> ids = tok_->encode(line);
    if (ids.empty()) continue;
    const std::string piece0 = spm_.IdToPiece(ids[0]);
    std::string joined;
    for (const int32_t id : ids) joined += tok_->token_bytes(id);
    std::string want = tok_->decode(ids);
    if (GetParam().add_dummy_prefix && piece0.starts_with("\xE2\x96\x81")) want = " " + want;
    if (joined != want) {
      ADD_FAILURE() << escape(line) << "\n  token_bytes: " << escape(joined) << "\n  decode: " << escape(want);
      if (++failures >= 8) break;
    }
  }
  const int n = tok_->vocab_size();
  EXPECT_EQ(tok_->token_bytes(-1), "");
  EXPECT_EQ(tok_->token_bytes(n), "");
  for (int id = 0; id < n; ++id) {
    if (spm_.IsControl(id)) {
      EXPECT_EQ(tok_->token_bytes(id), "") << id;
    }
    if (spm_.IsByte(id)) {
      EXPECT_EQ(tok_->token_bytes(id).size(), 1u) << id;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, SentencePieceParityTest, ::testing::ValuesIn(model_cases()),
                         [](const ::testing::TestParamInfo<ModelCase>& model) { return model.param.name; });

}  // namespace
}  // namespace longbow
