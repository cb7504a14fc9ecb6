// hf::normalize maps a text part by part (cut before ASCII characters); it must equal utf8proc
// mapping the whole text at once, for every form, on random text rich in what composes,
// decomposes and reorders: ASCII followed by combining marks, marks of several classes in every
// order, Hangul jamo, compatibility characters that decompose to ASCII.
#include <gtest/gtest.h>

#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/tokenizer/hf/unicode.h"

namespace longbow {
namespace {

std::string whole_text_reference(const std::string& text, int options) {
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                          static_cast<utf8proc_ssize_t>(text.size()), &mapped,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) return text;
  std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(mapped, &std::free);
  return std::string(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
}

TEST(NormalizeTest, PartByPartEqualsWholeText) {
  static const std::vector<std::string> kPieces = {
      "a", "e", "A", "o", "<", "=", ">", " ", "\n", "1", "K", "s",
      "\xCC\x81", "\xCC\x80", "\xCC\xA3", "\xCC\xB8", "\xCD\x85", "\xD6\xB0", "\xE0\xA4\xBC",  // marks
      "\xC3\xA9", "\xE1\xBA\xA1", "\xE1\xBB\x87", "\xE2\x89\xAE",                              // composed
      "\xE1\x84\x80", "\xE1\x85\xA1", "\xE1\x86\xA8", "\xEA\xB0\x80",                          // Hangul
      "\xEF\xAC\x81", "\xE2\x91\xA0", "\xE2\x84\xAA", "\xEF\xBC\xA1", "\xC2\xBD", "\xE2\x80\xA6",
      "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xC5\xBF\xCC\x87",
  };
  const int forms[] = {UTF8PROC_STABLE | UTF8PROC_COMPOSE, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
                       UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                       UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
  const hf::NormalForm ours[] = {hf::NormalForm::kNfc, hf::NormalForm::kNfd, hf::NormalForm::kNfkc,
                                 hf::NormalForm::kNfkd};
  std::mt19937_64 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    for (int n = static_cast<int>(rng() % 16); n > 0; --n) text += kPieces[rng() % kPieces.size()];
    for (int f = 0; f < 4; ++f) {
      ASSERT_EQ(hf::normalize(text, ours[f]), whole_text_reference(text, forms[f])) << "form " << f << " on " << text;
    }
  }
}

}  // namespace
}  // namespace longbow
