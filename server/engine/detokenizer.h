// StreamingDetokenizer: turns one choice's tokens into text deltas, as they are generated.
//
// It concatenates Tokenizer::token_bytes() and emits only complete UTF-8 characters, so a character
// split across tokens is never emitted as U+FFFD; bytes that can never become valid UTF-8 are
// replaced by U+FFFD, one per maximal ill-formed subsequence (as Unicode recommends). Text that could
// still be the beginning of a stop string is held back until the next tokens resolve it; a stop
// string, and everything after it, is never emitted.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/tokenizer/tokenizer.h"

namespace longbow {

class StreamingDetokenizer {
 public:
  struct Delta {
    std::string text;                  // text that became final with this token (may be empty)
    std::optional<std::string> stop;   // the stop string that ended the text; the choice is done
  };

  // `tokenizer` must outlive this object. Stop strings must be non-empty.
  StreamingDetokenizer(const Tokenizer& tokenizer, std::vector<std::string> stop_strings);

  // Feeds one generated token. After a Delta with `stop`, further tokens produce nothing.
  Delta add_token(TokenId token);

  // The choice ended without a stop string (EOS, stop token, length): returns the held-back text,
  // with a trailing incomplete UTF-8 sequence as U+FFFD.
  std::string flush();

  bool stopped() const { return stopped_; }

 private:
  // Moves the complete characters at the front of bytes_ into held_ (as valid UTF-8).
  void decode_complete(bool at_end);
  // Emits what of held_ cannot be part of a stop string; detects a stop string.
  Delta release_held();

  const Tokenizer& tokenizer_;
  std::vector<std::string> stop_strings_;
  std::string bytes_;  // raw bytes not yet decoded (an incomplete trailing character)
  std::string held_;   // decoded text not yet emitted (a possible stop-string prefix)
  bool stopped_ = false;
};

// Length of the valid UTF-8 character at the front of `bytes` (1..4); 0 when `bytes` holds only the
// beginning of a valid character (more bytes may complete it); -n when the first n bytes are a
// maximal ill-formed subsequence (to be replaced by one U+FFFD).
int utf8_next_char(std::string_view bytes);

}  // namespace longbow
