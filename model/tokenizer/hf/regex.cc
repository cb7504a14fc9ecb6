#include "model/tokenizer/hf/regex.h"

#include <oniguruma.h>
#include <fmt/format.h>

#include <mutex>

namespace longbow::hf {
namespace {

void initialize_oniguruma() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
  });
}

// Bytes in the UTF-8 character that starts with `lead` (1 for anything that is not a lead byte).
size_t char_length(unsigned char lead) {
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  if (lead >= 0xC0) return 2;
  return 1;
}

}  // namespace

struct Regex::Impl {
  OnigRegex regex = nullptr;
  ~Impl() {
    if (regex != nullptr) onig_free(regex);
  }
};

Regex::Regex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

StatusOr<Regex> Regex::compile(std::string_view pattern) {
  initialize_oniguruma();
  auto impl = std::make_unique<Impl>();
  OnigErrorInfo error_info;
  const auto* begin = reinterpret_cast<const OnigUChar*>(pattern.data());
  const int rc = onig_new(&impl->regex, begin, begin + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                          ONIG_SYNTAX_DEFAULT, &error_info);
  if (rc != ONIG_NORMAL) {
    OnigUChar message[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(message, rc, &error_info);
    impl->regex = nullptr;
    return invalid_argument(fmt::format("regex /{}/: {}", pattern, reinterpret_cast<const char*>(message)));
  }
  return Regex(std::move(impl));
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  OnigRegion* region = onig_region_new();
  const auto* begin = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = begin + text.size();
  size_t pos = 0;
  while (pos <= text.size()) {
    const int at = onig_search(impl_->regex, begin, end, begin + pos, end, region, ONIG_OPTION_NONE);
    if (at < 0) break;
    const auto match_begin = static_cast<size_t>(region->beg[0]);
    const auto match_end = static_cast<size_t>(region->end[0]);
    matches.emplace_back(match_begin, match_end);
    if (match_end > match_begin) {
      pos = match_end;
    } else if (match_end < text.size()) {
      pos = match_end + char_length(static_cast<unsigned char>(text[match_end]));
    } else {
      break;
    }
  }
  onig_region_free(region, 1);
  return matches;
}

}  // namespace longbow::hf
