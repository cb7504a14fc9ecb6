// Logging: spdlog with one pattern for the whole process.
//
// Code logs with spdlog::info/warn/error directly; this header only sets the process-wide format and
// provides ProgressLog for long operations (weight loading, demo-model writing).
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace longbow {

// Sets the log pattern and level ("trace", "debug", "info", "warn", "error", "off").
// Unknown level names fall back to "info". Call once from main().
void init_logging(const std::string& level = "info");

// Logs "<what>: 37% (1.2 of 3.4 GB)"-style progress lines, at most one per `interval`,
// plus a final line from finish(). Not thread-safe.
class ProgressLog {
 public:
  ProgressLog(std::string what, uint64_t total_bytes,
              std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  void advance(uint64_t bytes);
  void finish();

 private:
  std::string what_;
  uint64_t total_bytes_;
  uint64_t done_bytes_ = 0;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_report_;
};

}  // namespace longbow
