#include "server/engine/detokenizer.h"

#include <algorithm>

namespace longbow {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

int utf8_next_char(std::string_view bytes) {
  if (bytes.empty()) return 0;
  auto b0 = static_cast<unsigned char>(bytes[0]);
  if (b0 < 0x80) return 1;
  int length;
  // The valid range of the second byte narrows for E0, ED, F0 and F4 (no overlongs, surrogates or
  // code points past U+10FFFF); C0, C1 and F5..FF never start a character.
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  for (int i = 1; i < length; ++i) {
    if (i >= static_cast<int>(bytes.size())) return 0;  // valid so far: wait for more
    auto b = static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
    unsigned char min = i == 1 ? lo : 0x80;
    unsigned char max = i == 1 ? hi : 0xBF;
    if (b < min || b > max) return -i;
  }
  return length;
}

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, std::vector<std::string> stop_strings)
    : tokenizer_(tokenizer), stop_strings_(std::move(stop_strings)) {
  std::erase_if(stop_strings_, [](const std::string& s) { return s.empty(); });
}

void StreamingDetokenizer::decode_complete(bool at_end) {
  size_t pos = 0;
  while (pos < bytes_.size()) {
    int n = utf8_next_char(std::string_view(bytes_).substr(pos));
    if (n > 0) {
      held_.append(bytes_, pos, static_cast<size_t>(n));
      pos += static_cast<size_t>(n);
    } else if (n < 0) {
      held_ += kReplacement;
      pos += static_cast<size_t>(-n);
    } else if (at_end) {
      held_ += kReplacement;  // a truncated character at the very end
      pos = bytes_.size();
    } else {
      break;
    }
  }
  bytes_.erase(0, pos);
}

StreamingDetokenizer::Delta StreamingDetokenizer::release_held() {
  Delta delta;
  // The earliest stop string wins; emitted text never ends with a stop-string prefix, so a match
  // cannot start before held_.
  size_t best = std::string::npos;
  const std::string* best_stop = nullptr;
  for (const std::string& stop : stop_strings_) {
    size_t at = held_.find(stop);
    if (at < best) {
      best = at;
      best_stop = &stop;
    }
  }
  if (best_stop != nullptr) {
    delta.text = held_.substr(0, best);
    delta.stop = *best_stop;
    held_.clear();
    bytes_.clear();
    stopped_ = true;
    return delta;
  }
  // Hold back the longest suffix of held_ that is a proper prefix of some stop string.
  size_t keep = 0;
  for (const std::string& stop : stop_strings_) {
    size_t max = std::min(stop.size() - 1, held_.size());
    for (size_t len = max; len > keep; --len) {
      if (held_.compare(held_.size() - len, len, stop, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  delta.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return delta;
}

StreamingDetokenizer::Delta StreamingDetokenizer::add_token(TokenId token) {
  if (stopped_) return {};
  bytes_ += tokenizer_.token_bytes(token);
  decode_complete(/*at_end=*/false);
  return release_held();
}

std::string StreamingDetokenizer::flush() {
  if (stopped_) return {};
  decode_complete(/*at_end=*/true);
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace longbow
