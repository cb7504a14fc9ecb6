#include "server/engine/detokenizer.h"

#include <gtest/gtest.h>

#include "tests/unit/engine/fake_tokenizer.h"

namespace longbow {
namespace {

using fakes::FakeTokenizer;

TokenId byte(unsigned char b) { return b; }

// Feeds every token and collects the deltas as one string per token.
struct Outcome {
  std::vector<std::string> deltas;
  std::string text;
  std::optional<std::string> stop;
};

Outcome run(const Tokenizer& tokenizer, const std::vector<TokenId>& tokens, std::vector<std::string> stops = {},
        bool flush = true) {
  StreamingDetokenizer detok(tokenizer, std::move(stops));
  Outcome out;
  for (TokenId token : tokens) {
    auto delta = detok.add_token(token);
    out.deltas.push_back(delta.text);
    out.text += delta.text;
    if (delta.stop) out.stop = delta.stop;
  }
  if (flush) {
    std::string rest = detok.flush();
    out.deltas.push_back(rest);
    out.text += rest;
  }
  return out;
}

TEST(Utf8, ClassifiesCompletePartialAndIllFormedSequences) {
  EXPECT_EQ(utf8_next_char("a"), 1);
  EXPECT_EQ(utf8_next_char("\xC3\xA9"), 2);
  EXPECT_EQ(utf8_next_char("\xE2\x82\xAC"), 3);
  EXPECT_EQ(utf8_next_char("\xF0\x9F\x98\x80"), 4);
  EXPECT_EQ(utf8_next_char("\xF0\x9F"), 0);         // incomplete, still valid
  EXPECT_EQ(utf8_next_char("\x80"), -1);            // lone continuation byte
  EXPECT_EQ(utf8_next_char("\xC0\xAF"), -1);        // overlong lead
  EXPECT_EQ(utf8_next_char("\xE0\x80\x80"), -1);    // overlong three-byte form
  EXPECT_EQ(utf8_next_char("\xED\xA0\x80"), -1);    // a surrogate
  EXPECT_EQ(utf8_next_char("\xF4\x90\x80\x80"), -1);  // past U+10FFFF
  EXPECT_EQ(utf8_next_char("\xE2\x82" "a"), -2);    // truncated by an ASCII byte
}

TEST(StreamingDetokenizer, CharactersSplitAcrossTokensAreEmittedWhole) {
  FakeTokenizer tok({"h\xC3", "\xA9llo", "\xF0\x9F"});
  // "hé" split inside é; then a 4-byte emoji split 2 + 1 + 1.
  Outcome r = run(tok, {tok.id_of("h\xC3"), tok.id_of("\xA9llo"), tok.id_of("\xF0\x9F"), byte(0x98), byte(0x80), 'x'});
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"h", "\xC3\xA9llo", "", "", "\xF0\x9F\x98\x80", "x", ""}));
  EXPECT_EQ(r.text, "h\xC3\xA9llo\xF0\x9F\x98\x80x");
  EXPECT_EQ(r.text.find("\xEF\xBF\xBD"), std::string::npos);
}

TEST(StreamingDetokenizer, BytesThatCanNeverBeValidBecomeReplacementCharacters) {
  FakeTokenizer tok;
  Outcome r = run(tok, {byte(0x80), 'a', byte(0xE2), byte(0x82), 'b', byte(0xF0)});
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"\xEF\xBF\xBD", "a", "", "", "\xEF\xBF\xBD" "b", "", "\xEF\xBF\xBD"}));
}

TEST(StreamingDetokenizer, ControlTokensContributeNothing) {
  FakeTokenizer tok;
  EXPECT_EQ(run(tok, {'a', FakeTokenizer::kEos, 'b'}).text, "ab");
}

TEST(StreamingDetokenizer, StopStringSpanningTokensIsHeldBackAndNeverEmitted) {
  FakeTokenizer tok({"Hello, W", "or", "ld!", "ld"});
  Outcome r = run(tok, {tok.id_of("Hello, W"), tok.id_of("or"), tok.id_of("ld!")}, {"World"}, /*flush=*/false);
  // "W" could start "World": held; "Wor" likewise; "World!" completes the stop string.
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"Hello, ", "", ""}));
  EXPECT_EQ(r.text, "Hello, ");
  EXPECT_EQ(r.stop, "World");
}

TEST(StreamingDetokenizer, HeldTextIsReleasedWhenItStopsMatching) {
  FakeTokenizer tok({"Hello, W", "or", "m"});
  Outcome r = run(tok, {tok.id_of("Hello, W"), tok.id_of("or"), tok.id_of("m")}, {"World"});
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"Hello, ", "", "Worm", ""}));
  EXPECT_FALSE(r.stop.has_value());
  // Held text at the end of the choice (length, EOS) is flushed.
  Outcome cut = run(tok, {tok.id_of("Hello, W"), tok.id_of("or")}, {"World"});
  EXPECT_EQ(cut.deltas.back(), "Wor");
  EXPECT_EQ(cut.text, "Hello, Wor");
}

TEST(StreamingDetokenizer, EarliestOfSeveralStopStringsWinsAndLaterTextIsDropped) {
  FakeTokenizer tok({"abc\nEND tail", "xy"});
  Outcome r = run(tok, {tok.id_of("xy"), tok.id_of("abc\nEND tail")}, {"END", "\n"}, /*flush=*/false);
  EXPECT_EQ(r.text, "xyabc");
  EXPECT_EQ(r.stop, "\n");
  StreamingDetokenizer detok(tok, {"y"});
  EXPECT_EQ(detok.add_token(tok.id_of("xy")).stop, "y");
  EXPECT_TRUE(detok.stopped());
  EXPECT_EQ(detok.add_token('z').text, "");
  EXPECT_EQ(detok.flush(), "");
}

TEST(StreamingDetokenizer, MultiByteStopStringSplitInsideACharacter) {
  // Stop string "é!" arrives as C3 | A9 | '!': nothing of it may leak, not even a lone byte.
  FakeTokenizer tok;
  Outcome r = run(tok, {'o', 'k', byte(0xC3), byte(0xA9), '!', 'z'}, {"\xC3\xA9!"}, /*flush=*/false);
  EXPECT_EQ(r.deltas, (std::vector<std::string>{"o", "k", "", "", "", ""}));
  EXPECT_EQ(r.stop, "\xC3\xA9!");
}

}  // namespace
}  // namespace longbow
