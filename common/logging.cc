#include "common/logging.h"

namespace longbow {

void init_logging(const std::string& level) {
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ %v");
  spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") parsed = spdlog::level::info;
  spdlog::set_level(parsed);
}

ProgressLog::ProgressLog(std::string what, uint64_t total_bytes, std::chrono::milliseconds interval)
    : what_(std::move(what)),
      total_bytes_(total_bytes),
      interval_(interval),
      start_(std::chrono::steady_clock::now()),
      last_report_(start_) {}

void ProgressLog::advance(uint64_t bytes) {
  done_bytes_ += bytes;
  auto now = std::chrono::steady_clock::now();
  if (now - last_report_ < interval_) return;
  last_report_ = now;
  double percent = total_bytes_ == 0 ? 100.0 : 100.0 * static_cast<double>(done_bytes_) / total_bytes_;
  spdlog::info("{}: {:.0f}% ({:.2f} of {:.2f} GB)", what_, percent, done_bytes_ / 1e9, total_bytes_ / 1e9);
}

void ProgressLog::finish() {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  spdlog::info("{}: done, {:.2f} GB in {:.1f} s", what_, done_bytes_ / 1e9, seconds);
}

}  // namespace longbow
