// longbow: one binary, one subcommand per mode. Adding a mode = one entry in kSubcommands.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "server/cli/generate_command.h"
#include "server/cli/serve_command.h"

namespace longbow {
namespace {

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(std::span<const std::string> args);  // returns the exit code
};

constexpr Subcommand kSubcommands[] = {
    {"generate", cli::kGenerateSummary, &cli::generate_main},
    {"serve", cli::kServeSummary, &cli::serve_main},
};

void print_usage(std::FILE* out) {
  std::fprintf(out, "usage: longbow <command> [flags]   (longbow <command> --help for its flags)\n\ncommands:\n");
  for (const Subcommand& command : kSubcommands) {
    std::fprintf(out, "  %-10.*s %.*s\n", static_cast<int>(command.name.size()), command.name.data(),
                 static_cast<int>(command.summary.size()), command.summary.data());
  }
  std::fprintf(out, "\n  --help     show this help\n  --version  print the version\n");
}

int run(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_usage(stderr);
    return 2;
  }
  const std::string& first = args[0];
  if (first == "--help" || first == "-h" || first == "help") {
    print_usage(stdout);
    return 0;
  }
  if (first == "--version") {
    std::printf("longbow %s\n", LONGBOW_VERSION);
    return 0;
  }
  for (const Subcommand& command : kSubcommands) {
    if (command.name == first) return command.run(std::span(args).subspan(1));
  }
  std::fprintf(stderr, "longbow: unknown command '%s'\n\n", first.c_str());
  print_usage(stderr);
  return 2;
}

}  // namespace
}  // namespace longbow

int main(int argc, char** argv) {
  try {
    // Logs go to stderr so stdout carries only command output (generated text, ids).
    spdlog::set_default_logger(spdlog::stderr_color_mt("longbow"));
    return longbow::run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "longbow: internal error: %s\n", e.what());
    return 1;
  }
}
