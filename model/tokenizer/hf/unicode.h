// Unicode helpers for the tokenizer.json pipeline: code point iteration, categories and
// normalization forms, all from utf8proc (Debian's libutf8proc), never hand-made tables.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace longbow::hf {

// Decodes the code point at the front of non-empty, valid UTF-8 `s`; *length is its byte count.
// Text reaching the pipeline has been through to_valid_utf8(), so every sequence is well-formed.
char32_t next_code_point(std::string_view s, size_t* length);

// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(char32_t cp, std::string* out);

// `text` with every ill-formed UTF-8 subsequence replaced by U+FFFD (one per maximal subpart, as
// Python's errors="replace" and Rust's from_utf8_lossy do). Valid input is returned unchanged.
std::string to_valid_utf8(std::string_view text);

// Rust's char predicates, which Hugging Face tokenizers uses: Unicode White_Space, and the
// general categories N* (is_numeric).
bool is_whitespace(char32_t cp);
bool is_numeric(char32_t cp);
// The Rust regex crate's Unicode \w, which decides single_word's word boundary:
// [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]. Alphabetic is taken as L* + Nl plus the
// Other_Alphabetic symbols outside M* (the circled and squared Latin letters); the rest of
// Other_Alphabetic is in M*.
bool is_word_character(char32_t cp);

enum class NormalForm { kNfc, kNfd, kNfkc, kNfkd };
// `text` (valid UTF-8) in the given normalization form.
std::string normalize(std::string_view text, NormalForm form);

// Lowercase code point by code point, as Rust's char::to_lowercase (Hugging Face's Lowercase
// normalizer): the simple case mapping (utf8proc_tolower) except U+0130 İ, whose full mapping is
// "i" + U+0307. No context rules (a final sigma stays σ).
std::string lowercase(std::string_view text);

}  // namespace longbow::hf
