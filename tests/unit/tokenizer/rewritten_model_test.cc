// Trained models rewritten to reach features spm_train does not produce: UNUSED pieces (BPE
// resegments merged UNUSED pieces into their parts; unigram skips them) and a denormalizer spec
// (applied to decoded text). longbow must still match the library exactly.
#include <sentencepiece_processor.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "model/tokenizer/model_proto.h"
#include "model/tokenizer/tokenizer.h"
#include "tests/unit/tokenizer/spm_test_support.h"

namespace longbow {
namespace {

using testing::escape;
using testing::format_ids;

class RewrittenModelTest : public ::testing::Test {
 protected:
  spm::ModelProto train(const std::vector<std::string>& flags) {
    const std::filesystem::path path =
        testing::train_model(dir_.path(), "m", testing::tokenizer_data_dir() / "corpus_train.txt", flags);
    EXPECT_FALSE(path.empty());
    auto parsed = spm::parse_model_proto(testing::read_binary(path));
    EXPECT_TRUE(parsed.ok()) << parsed.status().to_string();
    return parsed.ok() ? std::move(parsed).value() : spm::ModelProto();
  }

  // Loads `model` in both implementations and compares encode (corpus lines) and decode (those
  // ids and random id sequences). Returns the number of mismatches, printing the first few.
  int compare(const spm::ModelProto& model) {
    const std::string bytes = testing::serialize_model(model);
    const std::filesystem::path path = dir_.path() / "rewritten.model";
    testing::write_binary(path, bytes);
    sentencepiece::SentencePieceProcessor sp;
    const auto st = sp.LoadFromSerializedProto(bytes);
    EXPECT_TRUE(st.ok()) << st.ToString();
    auto loaded = load_sentencepiece_tokenizer(path.string());
    EXPECT_TRUE(loaded.ok()) << loaded.status().to_string();
    if (!st.ok() || !loaded.ok()) return 1;
    const Tokenizer& tok = **loaded;

    int mismatches = 0;
    const auto report = [&](const std::string& what) {
      if (++mismatches <= 8) ADD_FAILURE() << what;
    };
    std::vector<std::vector<int32_t>> id_lists;
    for (const char* file : {"corpus_train.txt", "corpus_heldout.txt"}) {
      for (const std::string& line : testing::read_lines(testing::tokenizer_data_dir() / file)) {
        std::vector<int> want;
        EXPECT_TRUE(sp.Encode(line, &want).ok());
        const std::vector<int32_t> want32(want.begin(), want.end());
        const std::vector<int32_t> got = tok.encode(line);
        if (got != want32) report(escape(line) + ": library " + format_ids(want32) + ", longbow " + format_ids(got));
        id_lists.push_back(want32);
      }
    }
    std::mt19937 rng(77);
    for (int n = 0; n < 1000; ++n) {
      std::vector<int32_t> ids(rng() % 12);
      for (int32_t& id : ids) id = static_cast<int32_t>(rng() % tok.vocab_size());
      id_lists.push_back(ids);
    }
    for (const std::vector<int32_t>& ids : id_lists) {
      std::string want;
      EXPECT_TRUE(sp.Decode(std::vector<int>(ids.begin(), ids.end()), &want).ok());
      const std::string got = tok.decode(ids);
      if (got != want) report("decode " + format_ids(ids) + ": library " + escape(want) + ", longbow " + escape(got));
    }
    return mismatches;
  }

  // Marks every `stride`-th NORMAL piece longer than one character UNUSED.
  static int mark_unused(spm::ModelProto* model, int stride) {
    int marked = 0, seen = 0;
    for (spm::PieceProto& p : model->pieces) {
      if (p.type != spm::PieceType::kNormal || p.piece.size() < 2) continue;
      const bool single_char = static_cast<unsigned char>(p.piece[0]) >= 0xC0 && p.piece.size() <= 4 &&
                               (p.piece.size() == 2 || static_cast<unsigned char>(p.piece[0]) >= 0xE0);
      if (single_char) continue;
      if (++seen % stride == 0) {
        p.type = spm::PieceType::kUnused;
        ++marked;
      }
    }
    return marked;
  }

  testing::TempDir dir_;
};

TEST_F(RewrittenModelTest, BpeWithUnusedPiecesLikeLibrary) {
  spm::ModelProto model = train({"--model_type=bpe", "--vocab_size=1500", "--byte_fallback=true"});
  ASSERT_GT(mark_unused(&model, 5), 100);
  EXPECT_EQ(compare(model), 0);
}

TEST_F(RewrittenModelTest, UnigramWithUnusedPiecesLikeLibrary) {
  spm::ModelProto model = train({"--model_type=unigram", "--vocab_size=1500", "--byte_fallback=true"});
  ASSERT_GT(mark_unused(&model, 5), 100);
  EXPECT_EQ(compare(model), 0);
}

// The library applies a denormalizer spec (when it has a charsmap) to decoded text. Here: the
// model's own NFKC map with its whitespace rules off, so decoded full-width forms, ligatures and
// the " ⁇ " unk surface come out NFKC-normalized.
TEST_F(RewrittenModelTest, DenormalizerAppliedLikeLibrary) {
  spm::ModelProto model = train({"--model_type=unigram", "--vocab_size=1200", "--character_coverage=0.98",
                                 "--normalization_rule_name=identity", "--user_defined_symbols=ＡＢ,™,ﬁ"});
  const spm::ModelProto nfkc = train({"--model_type=bpe", "--vocab_size=1200", "--character_coverage=0.98"});
  ASSERT_FALSE(nfkc.normalizer_spec.precompiled_charsmap.empty());
  model.has_denormalizer_spec = true;
  model.denormalizer_spec = nfkc.normalizer_spec;
  model.denormalizer_spec.add_dummy_prefix = false;
  model.denormalizer_spec.remove_extra_whitespaces = false;
  model.denormalizer_spec.escape_whitespaces = false;
  EXPECT_EQ(compare(model), 0);

  // And the denormalizer really runs: "ＡＢ" (a user-defined piece) decodes to "AB".
  const std::filesystem::path path = dir_.path() / "rewritten.model";
  auto tok = load_sentencepiece_tokenizer(path.string());
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->decode((*tok)->encode("xＡＢy")), "xABy");
}

}  // namespace
}  // namespace longbow
