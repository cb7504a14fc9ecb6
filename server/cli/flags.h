// FlagSet: the command-line flags of one subcommand.
//
// Accepts `--name value` and `--name=value`; boolean flags take no value. Parsing never exits or
// throws: an unknown flag, a missing or malformed value, or a stray positional argument is an
// INVALID_ARGUMENT whose message names the flag. A subcommand may take one positional argument. usage() lists the flags with their help text.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::cli {

class FlagSet {
 public:
  // Each add_* binds a flag (name without "--") to a variable that keeps its default unless given.
  void add_string(std::string name, std::string value_name, std::string help, std::string* target);
  void add_optional_string(std::string name, std::string value_name, std::string help,
                           std::optional<std::string>* target);
  // Integers must lie in [min, max].
  void add_int(std::string name, std::string help, int min, int max, int* target);
  // Decimal numbers must be finite and lie in (min, max] (a fraction: (0, 1]).
  void add_fraction(std::string name, std::string help, double min_exclusive, double max, double* target);
  void add_bool(std::string name, std::string help, bool* target);
  // At most one positional argument (e.g. the model directory), bound to `target`; a second one is
  // an error. Without this, any positional argument is an error.
  void set_positional(std::string value_name, std::optional<std::string>* target);

  Status parse(std::span<const std::string> args);
  // "  --name VALUE   help" lines, one per flag, in the order added.
  std::string usage() const;

 private:
  enum class Kind { kString, kOptionalString, kInt, kDouble, kBool };
  struct Flag {
    std::string name;
    std::string value_name;
    std::string help;
    Kind kind;
    void* target;
    int min = 0, max = 0;
    double min_exclusive = 0.0, max_double = 0.0;
  };
  const Flag* find(std::string_view name) const;
  Status assign(const Flag& flag, const std::string& value) const;

  std::vector<Flag> flags_;
  std::string positional_name_;
  std::optional<std::string>* positional_ = nullptr;
};

}  // namespace longbow::cli
