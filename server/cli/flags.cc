#include "server/cli/flags.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace longbow::cli {
namespace {

std::string format_number(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

}  // namespace

void FlagSet::add_string(std::string name, std::string value_name, std::string help, std::string* target) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(help), Kind::kString, target});
}

void FlagSet::add_optional_string(std::string name, std::string value_name, std::string help,
                                  std::optional<std::string>* target) {
  flags_.push_back({std::move(name), std::move(value_name), std::move(help), Kind::kOptionalString, target});
}

void FlagSet::add_int(std::string name, std::string help, int min, int max, int* target) {
  flags_.push_back({std::move(name), "N", std::move(help), Kind::kInt, target, min, max});
}

void FlagSet::add_fraction(std::string name, std::string help, double min_exclusive, double max, double* target) {
  Flag flag{std::move(name), "X", std::move(help), Kind::kDouble, target};
  flag.min_exclusive = min_exclusive;
  flag.max_double = max;
  flags_.push_back(std::move(flag));
}

void FlagSet::add_bool(std::string name, std::string help, bool* target) {
  flags_.push_back({std::move(name), "", std::move(help), Kind::kBool, target});
}

const FlagSet::Flag* FlagSet::find(std::string_view name) const {
  for (const Flag& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

Status FlagSet::assign(const Flag& flag, const std::string& value) const {
  switch (flag.kind) {
    case Kind::kString:
      *static_cast<std::string*>(flag.target) = value;
      return Status::Ok();
    case Kind::kOptionalString:
      *static_cast<std::optional<std::string>*>(flag.target) = value;
      return Status::Ok();
    case Kind::kInt: {
      int parsed = 0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (error != std::errc() || end != value.data() + value.size()) {
        return invalid_argument("--" + flag.name + " expects an integer, got '" + value + "'");
      }
      if (parsed < flag.min || parsed > flag.max) {
        return invalid_argument("--" + flag.name + " must be in [" + std::to_string(flag.min) + ", " +
                                std::to_string(flag.max) + "], got " + value);
      }
      *static_cast<int*>(flag.target) = parsed;
      return Status::Ok();
    }
    case Kind::kDouble: {
      double parsed = 0.0;
      auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
      if (value.empty() || error != std::errc() || end != value.data() + value.size() || !std::isfinite(parsed)) {
        return invalid_argument("--" + flag.name + " expects a number, got '" + value + "'");
      }
      if (!(parsed > flag.min_exclusive && parsed <= flag.max_double)) {
        return invalid_argument("--" + flag.name + " must be in (" + format_number(flag.min_exclusive) + ", " +
                                format_number(flag.max_double) + "], got " + value);
      }
      *static_cast<double*>(flag.target) = parsed;
      return Status::Ok();
    }
    case Kind::kBool:
      if (value != "true" && value != "false") {
        return invalid_argument("--" + flag.name + " takes no value (or =true/=false), got '" + value + "'");
      }
      *static_cast<bool*>(flag.target) = value == "true";
      return Status::Ok();
  }
  return internal_error("flag kind");
}

Status FlagSet::parse(std::span<const std::string> args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!arg.starts_with("--") || arg.size() == 2) {
      if (positional_ != nullptr && !positional_->has_value() && arg != "--" && !arg.starts_with("-")) {
        *positional_ = arg;
        continue;
      }
      if (positional_ != nullptr && positional_->has_value()) {
        return invalid_argument("unexpected argument '" + arg + "' (" + positional_name_ + " was already given as '" +
                                **positional_ + "')");
      }
      return invalid_argument("unexpected argument '" + arg + "' (flags start with --)");
    }
    size_t equals = arg.find('=');
    std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    const Flag* flag = find(name);
    if (flag == nullptr) return invalid_argument("unknown flag --" + name);
    if (equals != std::string::npos) {
      RETURN_IF_ERROR(assign(*flag, arg.substr(equals + 1)));
    } else if (flag->kind == Kind::kBool) {
      *static_cast<bool*>(flag->target) = true;
    } else if (i + 1 >= args.size()) {
      return invalid_argument("--" + name + " needs a value");
    } else {
      RETURN_IF_ERROR(assign(*flag, args[++i]));
    }
  }
  return Status::Ok();
}

void FlagSet::set_positional(std::string value_name, std::optional<std::string>* target) {
  positional_name_ = std::move(value_name);
  positional_ = target;
}

std::string FlagSet::usage() const {
  size_t width = 0;
  auto left = [](const Flag& flag) {
    return "--" + flag.name + (flag.value_name.empty() ? "" : " " + flag.value_name);
  };
  for (const Flag& flag : flags_) width = std::max(width, left(flag).size());
  std::string out;
  for (const Flag& flag : flags_) {
    std::string l = left(flag);
    out += "  " + l + std::string(width - l.size() + 3, ' ') + flag.help + "\n";
  }
  return out;
}

}  // namespace longbow::cli
