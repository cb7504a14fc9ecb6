// Damaged and hand-built sentencepiece model files: longbow must reject every file the library
// rejects (and never crash, also under ASan/UBSan), and where both accept a file, encode alike.
#include <sentencepiece_processor.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/tokenizer/charsmap.h"
#include "model/tokenizer/tokenizer.h"
#include "model/tokenizer/wire_format.h"
#include "tests/unit/tokenizer/spm_test_support.h"

namespace longbow {
namespace {

using testing::escape;
using testing::format_ids;

// ---- hand-built models ----------------------------------------------------------------------

using testing::wire::field_bytes;
using testing::wire::field_float;
using testing::wire::field_varint;
using testing::wire::varint;

enum Type { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

std::string piece(std::string_view text, float score, Type type) {
  return field_bytes(1, field_bytes(1, text) + field_float(2, score) + field_varint(3, type));
}
// TrainerSpec: model_type (3) 1 = UNIGRAM, 2 = BPE, 3 = WORD, 4 = CHAR; byte_fallback (35).
std::string trainer_spec(int model_type, bool byte_fallback) {
  return field_bytes(2, field_varint(3, model_type) + field_varint(35, byte_fallback ? 1 : 0));
}
std::string byte_pieces(int count) {
  std::string out;
  for (int b = 0; b < count; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    out += piece(name, 0, kByte);
  }
  return out;
}
// A small valid BPE vocabulary: unk, bos, eos, then pieces with descending scores.
std::string small_pieces() {
  return piece("<unk>", 0, kUnknown) + piece("<s>", 0, kControl) + piece("</s>", 0, kControl) +
         piece("\xE2\x96\x81", -1, kNormal) + piece("a", -2, kNormal) + piece("b", -3, kNormal) +
         piece("\xE2\x96\x81" "a", -1.5f, kNormal) + piece("ab", -1.5f, kNormal) + piece("abab", -4, kNormal) +
         piece("ba", -2.5f, kUnused);
}

// ---- fixture -------------------------------------------------------------------------------

class MalformedModelTest : public ::testing::Test {
 protected:
  // Longbow's verdict on `bytes` as a model file.
  StatusOr<std::unique_ptr<Tokenizer>> load(std::string_view bytes) {
    const std::filesystem::path path = dir_.path() / "model.bin";
    testing::write_binary(path, bytes);
    return load_sentencepiece_tokenizer(path.string());
  }

  static bool library_accepts(std::string_view bytes, sentencepiece::SentencePieceProcessor* sp) {
    return sp->LoadFromSerializedProto(bytes).ok();
  }

  // Loads `bytes` in both; they must agree on acceptance (except features longbow reports as
  // UNIMPLEMENTED), and on accepted files, encode `probes` alike. Returns a failure description.
  std::string compare_with_library(std::string_view bytes, const std::vector<std::string>& probes) {
    sentencepiece::SentencePieceProcessor sp;
    const bool lib_ok = library_accepts(bytes, &sp);
    auto ours = load(bytes);
    if (!ours.ok() && ours.status().code() == StatusCode::kUnimplemented) return "";
    if (ours.ok() != lib_ok) {
      return std::string("library ") + (lib_ok ? "accepts" : "rejects") + " but longbow " +
             (ours.ok() ? "accepts" : "rejects (" + ours.status().to_string() + ")");
    }
    if (!lib_ok) return "";
    for (const std::string& text : probes) {
      std::vector<int> want;
      if (!sp.Encode(text, &want).ok()) continue;
      const std::vector<int32_t> got = (*ours)->encode(text);
      if (got != std::vector<int32_t>(want.begin(), want.end())) {
        return "encode of " + escape(text) + " differs: library " +
               format_ids(std::vector<int32_t>(want.begin(), want.end())) + ", longbow " + format_ids(got);
      }
    }
    return "";
  }

  std::vector<std::string> probes() const {
    std::vector<std::string> lines = testing::read_lines(testing::tokenizer_data_dir() / "corpus_heldout.txt");
    lines.resize(60);
    lines.push_back("abab ba a\xFF b  ");
    return lines;
  }

  testing::TempDir dir_;
};

TEST_F(MalformedModelTest, MissingFileIsNotFound) {
  const auto result = load_sentencepiece_tokenizer((dir_.path() / "does-not-exist.model").string());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kNotFound);
  EXPECT_NE(result.status().message().find("does-not-exist.model"), std::string::npos);
}

TEST_F(MalformedModelTest, EmptyFileIsRejected) {
  const auto result = load("");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  sentencepiece::SentencePieceProcessor sp;
  EXPECT_FALSE(library_accepts("", &sp));
}

TEST_F(MalformedModelTest, GarbageBytesAreRejected) {
  std::mt19937 rng(99);
  for (int n = 0; n < 200; ++n) {
    std::string bytes(1 + rng() % 3000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const auto result = load(bytes);
    EXPECT_FALSE(result.ok()) << "garbage #" << n << " accepted";
    sentencepiece::SentencePieceProcessor sp;
    EXPECT_FALSE(library_accepts(bytes, &sp)) << "garbage #" << n;
  }
}

TEST_F(MalformedModelTest, HandBuiltValidModelMatchesLibrary) {
  const std::string model = small_pieces() + trainer_spec(2, false);
  ASSERT_TRUE(load(model).ok()) << load(model).status().to_string();
  EXPECT_EQ(compare_with_library(model, {"a", "ab", "abab", "ba ba", "b a b", "abc", "  ab  ", "\xFF"}), "");
  // The same pieces as a unigram model.
  const std::string unigram = small_pieces() + trainer_spec(1, false);
  EXPECT_EQ(compare_with_library(unigram, {"a", "ab", "abab", "ba ba", "b a b", "abc", "  ab  "}), "");
}

TEST_F(MalformedModelTest, InvalidVocabulariesAreRejectedLikeLibrary) {
  const std::string bpe = trainer_spec(2, false);
  const std::string unk = piece("<unk>", 0, kUnknown);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no unknown piece", piece("a", -1, kNormal) + bpe},
      {"two unknown pieces", unk + piece("<unk2>", 0, kUnknown) + piece("a", -1, kNormal) + bpe},
      {"duplicate piece", unk + piece("a", -1, kNormal) + piece("a", -2, kNormal) + bpe},
      {"duplicate across maps", unk + piece("<s>", 0, kControl) + piece("<s>", 0, kControl) + bpe},
      {"empty piece", unk + piece("", -1, kNormal) + bpe},
      {"byte piece without byte_fallback", unk + piece("<0x41>", 0, kByte) + bpe},
      {"malformed byte piece", unk + byte_pieces(256) + piece("<0xZZ>", 0, kByte) + trainer_spec(2, true)},
      {"lower-case byte piece", unk + byte_pieces(255) + piece("<0xff>", 0, kByte) + trainer_spec(2, true)},
      {"byte_fallback without 256 bytes", unk + byte_pieces(200) + piece("a", -1, kNormal) + trainer_spec(2, true)},
      {"unigram without pieces", unk + piece("<s>", 0, kControl) + trainer_spec(1, false)},
      {"charsmap shorter than its header", small_pieces() + bpe + field_bytes(3, field_bytes(2, "abc"))},
      {"charsmap trie larger than blob",
       small_pieces() + bpe + field_bytes(3, field_bytes(2, std::string("\xFF\x00\x00\x00xxxx", 8)))},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    const auto result = load(bytes);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().to_string();
    sentencepiece::SentencePieceProcessor sp;
    EXPECT_FALSE(library_accepts(bytes, &sp));
  }
}

TEST_F(MalformedModelTest, BrokenWireFormatIsRejected) {
  const std::string good = small_pieces() + trainer_spec(2, false);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"length past the end", good + varint(1 << 3 | 2) + varint(1000) + "abc"},
      {"truncated varint", good + varint(3 << 3 | 0) + "\x80\x80"},
      {"group wire type", good + varint(7 << 3 | 3)},
      {"varint over 10 bytes", good + field_varint(9, 1).substr(0, 1) + std::string(11, '\x80') + "\x01"},
      {"field number zero", good + varint(0 << 3 | 0) + varint(1)},
      {"truncated fixed32 inside a piece", field_bytes(1, field_bytes(1, "x") + varint(2 << 3 | 5) + "ab") + good},
  };
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    const auto result = load(bytes);
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument) << result.status().to_string();
    sentencepiece::SentencePieceProcessor sp;
    EXPECT_FALSE(library_accepts(bytes, &sp));
  }
}

TEST_F(MalformedModelTest, UnsupportedModelTypesAreUnimplemented) {
  for (const auto& [type, name] : std::vector<std::pair<int, std::string>>{{3, "WORD"}, {4, "CHAR"}}) {
    const auto result = load(small_pieces() + trainer_spec(type, false));
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(result.status().message().find(name), std::string::npos) << result.status().to_string();
  }
}

// Every truncation of real trained models: same verdict as the library, same ids when accepted.
TEST_F(MalformedModelTest, TruncatedModelsBehaveLikeLibrary) {
  const std::filesystem::path train = testing::tokenizer_data_dir() / "corpus_train.txt";
  const std::vector<std::string> probe_lines = probes();
  for (const auto& [name, flags] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"bpe", {"--model_type=bpe", "--vocab_size=800", "--character_coverage=0.98", "--byte_fallback=true"}},
           {"unigram", {"--model_type=unigram", "--vocab_size=800", "--character_coverage=0.98"}}}) {
    const std::filesystem::path path = testing::train_model(dir_.path(), name, train, flags);
    ASSERT_FALSE(path.empty());
    const std::string model = testing::read_binary(path);
    ASSERT_TRUE(load(model).ok());
    std::vector<size_t> lengths;
    for (size_t n = 0; n < 64 && n < model.size(); ++n) lengths.push_back(n);
    for (size_t n = 64; n < model.size(); n += 1 + model.size() / 400) lengths.push_back(n);
    for (size_t n = 1; n <= 64 && n < model.size(); ++n) lengths.push_back(model.size() - n);
    int failures = 0;
    for (const size_t n : lengths) {
      const std::string failure = compare_with_library(std::string_view(model).substr(0, n), probe_lines);
      if (!failure.empty() && ++failures <= 5) ADD_FAILURE() << name << " truncated to " << n << " bytes: " << failure;
    }
    EXPECT_EQ(failures, 0) << name;
  }
}

// Random byte corruption of a trained model. Corruption outside the normalizer spec is compared
// with the library; inside the charsmap the library itself may read out of bounds, so there we
// only require that longbow stays memory-safe (the ASan build checks) and keeps working.
TEST_F(MalformedModelTest, CorruptedModelsNeverCrash) {
  const std::filesystem::path train = testing::tokenizer_data_dir() / "corpus_train.txt";
  const std::filesystem::path path = testing::train_model(
      dir_.path(), "m", train,
      {"--model_type=unigram", "--vocab_size=800", "--character_coverage=0.98", "--byte_fallback=true",
       "--user_defined_symbols=<sep>"});
  ASSERT_FALSE(path.empty());
  const std::string model = testing::read_binary(path);

  // The byte range of the normalizer spec (field 3) in the file.
  size_t spec_begin = model.size(), spec_end = model.size();
  spm::WireReader reader(model, "test");
  spm::WireField f;
  while (!reader.done()) {
    ASSERT_TRUE(reader.next(&f).ok());
    if (f.number == 3 && f.type == spm::WireType::kLengthDelimited) {
      spec_begin = static_cast<size_t>(f.bytes.data() - model.data());
      spec_end = spec_begin + f.bytes.size();
    }
  }
  ASSERT_LT(spec_begin, spec_end);

  const std::vector<std::string> probe_lines = probes();
  std::mt19937 rng(4242);
  int failures = 0, accepted = 0;
  for (int n = 0; n < 300; ++n) {
    std::string bytes = model;
    bool touches_spec = false;
    // Half the mutations target the charsmap on purpose.
    const bool target_spec = n % 2 == 0;
    for (int k = 1 + static_cast<int>(rng() % 4); k > 0; --k) {
      const size_t at = target_spec ? spec_begin + rng() % (spec_end - spec_begin) : rng() % bytes.size();
      bytes[at] = static_cast<char>(rng());
      touches_spec |= at >= spec_begin && at < spec_end;
    }
    if (!touches_spec) {
      const std::string failure = compare_with_library(bytes, probe_lines);
      if (!failure.empty() && ++failures <= 5) ADD_FAILURE() << "mutation #" << n << ": " << failure;
      continue;
    }
    auto ours = load(bytes);
    if (!ours.ok()) continue;
    ++accepted;
    for (const std::string& text : probe_lines) {
      const std::vector<int32_t> ids = (*ours)->encode(text);
      for (const int32_t id : ids) ASSERT_TRUE(id >= 0 && id < (*ours)->vocab_size());
      (void)(*ours)->decode(ids);
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_GT(accepted, 10) << "too few corrupted charsmaps were accepted to exercise the normalizer";
}

}  // namespace
}  // namespace longbow

namespace longbow {
namespace {

std::string charsmap_blob(uint32_t trie_size, size_t total) {
  std::string blob(total, '\0');
  for (int i = 0; i < 4; ++i) blob[static_cast<size_t>(i)] = static_cast<char>((trie_size >> (8 * i)) & 0xFF);
  return blob;
}

// Found by sentencepiece_model_fuzz (tests/fuzz/corpus/sentencepiece_model/charsmap-trie-past-the-end):
// a trie size below the blob's size but past its end once the 4-byte header is taken threw
// std::out_of_range out of the parser.
TEST(PrecompiledCharsMapParse, TrieSizeMustFitBehindTheHeader) {
  for (uint32_t trie_size : {7u, 8u, 9u}) {
    StatusOr<spm::PrecompiledCharsMap> map = spm::PrecompiledCharsMap::parse(charsmap_blob(trie_size, 10));
    ASSERT_FALSE(map.ok()) << trie_size;
    EXPECT_EQ(map.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(spm::PrecompiledCharsMap::parse(charsmap_blob(6, 10)).ok());  // the trie fills the rest
  EXPECT_TRUE(spm::PrecompiledCharsMap::parse(charsmap_blob(4, 10)).ok());  // a 2-byte pool follows it
}

}  // namespace
}  // namespace longbow
