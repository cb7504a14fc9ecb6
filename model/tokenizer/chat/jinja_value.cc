#include "model/tokenizer/chat/jinja_value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model/tokenizer/chat/jinja_limits.h"

namespace longbow::jinja {
namespace {

// json.dumps string escaping with ensure_ascii=False: only ", \ and control characters.
void append_json_string(std::string_view s, std::string* out) {
  out->push_back('"');
  for (const char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          *out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
}

// Python's repr of a str: single quotes unless the text holds ' and no ".
std::string python_string_repr(std::string_view s) {
  const bool use_double = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char quote = use_double ? '"' : '\'';
  std::string out(1, quote);
  for (const char c : s) {
    if (c == quote || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out.push_back(quote);
  return out;
}

void to_json_impl(const Value& v, int indent, bool sort_keys, int depth, std::string* out) {
  auto newline = [&](int level) {
    const size_t width = static_cast<size_t>(indent) * static_cast<size_t>(level);
    RenderBudget::charge_text(width);
    RenderBudget::check_text(out->size() + width);
    out->push_back('\n');
    out->append(width, ' ');
  };
  switch (v.kind()) {
    case Value::Kind::kUndefined:
    case Value::Kind::kNone: *out += "null"; return;
    case Value::Kind::kBool: *out += v.as_bool() ? "true" : "false"; return;
    case Value::Kind::kInt: *out += std::to_string(v.as_int()); return;
    case Value::Kind::kFloat: {
      const double d = v.as_double();
      if (std::isnan(d)) {
        *out += "NaN";
      } else if (std::isinf(d)) {
        *out += d > 0 ? "Infinity" : "-Infinity";
      } else {
        *out += format_python_float(d);
      }
      return;
    }
    case Value::Kind::kString: append_json_string(v.as_string(), out); return;
    case Value::Kind::kFunction: throw TemplateError("tojson: a function is not JSON serializable");
    case Value::Kind::kList: {
      const ValueList& list = v.as_list();
      if (list.empty()) {
        *out += "[]";
        return;
      }
      out->push_back('[');
      for (size_t i = 0; i < list.size(); ++i) {
        if (i > 0) *out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        to_json_impl(list[i], indent, sort_keys, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& item : v.as_dict().items) items.push_back(&item);
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      if (items.empty()) {
        *out += "{}";
        return;
      }
      out->push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) *out += indent >= 0 ? "," : ", ";
        if (indent >= 0) newline(depth + 1);
        append_json_string(items[i]->first, out);
        *out += ": ";
        to_json_impl(items[i]->second, indent, sort_keys, depth + 1, out);
      }
      if (indent >= 0) newline(depth);
      out->push_back('}');
      return;
    }
  }
}

}  // namespace

std::string format_python_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  if (d == 0) return std::signbit(d) ? "-0.0" : "0.0";
  // Shortest digits that round-trip, then Python's choice between fixed and exponent notation.
  char buffer[64];
  int precision = 1;
  for (; precision <= 17; ++precision) {
    std::snprintf(buffer, sizeof(buffer), "%.*e", precision - 1, d);
    if (std::strtod(buffer, nullptr) == d) break;
  }
  std::string sci = buffer;  // d.ddde[+-]XX
  const size_t e = sci.find('e');
  const int exponent = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (size_t i = 0; i < e; ++i) {
    if (std::isdigit(static_cast<unsigned char>(sci[i]))) digits.push_back(sci[i]);
  }
  const bool negative = d < 0;
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
    return out;
  }
  if (exponent < 0) {
    out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    return out;
  }
  const auto int_digits = static_cast<size_t>(exponent + 1);
  if (digits.size() <= int_digits) {
    out += digits + std::string(int_digits - digits.size(), '0') + ".0";
  } else {
    out += digits.substr(0, int_digits) + "." + digits.substr(int_digits);
  }
  return out;
}

const Value* ValueDict::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

Value* ValueDict::find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

void ValueDict::set(const std::string& key, Value value) {
  if (Value* existing = find(key)) {
    *existing = std::move(value);
  } else {
    items.emplace_back(key, std::move(value));
  }
}

Value Value::none() {
  Value v;
  v.kind_ = Kind::kNone;
  return v;
}
Value::Value(bool b) : kind_(Kind::kBool), b_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), i_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), d_(d) {}
Value::Value(std::string s) : kind_(Kind::kString), s_(std::make_shared<const std::string>(std::move(s))) {}
Value::Value(ValueList list) : kind_(Kind::kList) {
  for (const Value& item : list) {
    depth_ = std::max(depth_, item.depth_);
    holds_reference_ = holds_reference_ || item.holds_reference_;
  }
  if (++depth_ > kMaxValueDepth) throw TemplateError(fmt::format("lists and dicts nested deeper than {}", kMaxValueDepth));
  list_ = std::make_shared<ValueList>(std::move(list));
}

Value::Value(ValueDict dict, bool is_namespace) : kind_(Kind::kDict), is_namespace_(is_namespace) {
  for (const auto& [key, item] : dict.items) {
    depth_ = std::max(depth_, item.depth_);
    holds_reference_ = holds_reference_ || item.holds_reference_;
  }
  if (++depth_ > kMaxValueDepth) throw TemplateError(fmt::format("lists and dicts nested deeper than {}", kMaxValueDepth));
  if (is_namespace && holds_reference_) throw TemplateError("a namespace cannot hold a namespace or a function");
  holds_reference_ = holds_reference_ || is_namespace;
  dict_ = std::make_shared<ValueDict>(std::move(dict));
}

Value Value::function(std::string name, Function fn) {
  Value v;
  v.kind_ = Kind::kFunction;
  v.holds_reference_ = true;
  v.s_ = std::make_shared<const std::string>(std::move(name));
  v.fn_ = std::make_shared<const Function>(std::move(fn));
  return v;
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return none();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: return Value(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      ValueList list;
      list.reserve(j.size());
      for (const auto& item : j) list.push_back(from_json(item));
      return Value(std::move(list));
    }
    case nlohmann::ordered_json::value_t::object: {
      ValueDict dict;
      for (const auto& [key, item] : j.items()) dict.set(key, from_json(item));
      return Value(std::move(dict));
    }
    default: return Value();
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return d_ != 0;
    case Kind::kString: return !s_->empty();
    case Kind::kList: return !list_->empty();
    case Kind::kDict: return is_namespace_ || !dict_->items.empty();
    case Kind::kFunction: return true;
  }
  return false;
}

bool Value::equals(const Value& other) const {
  if ((is_number() || kind_ == Kind::kBool) && (other.is_number() || other.kind_ == Kind::kBool)) {
    auto as_num = [](const Value& v) { return v.kind_ == Kind::kBool ? (v.b_ ? 1.0 : 0.0) : v.as_double(); };
    if (kind_ == Kind::kInt && other.kind_ == Kind::kInt) return i_ == other.i_;
    return as_num(*this) == as_num(other);
  }
  if (kind_ != other.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kString: return *s_ == *other.s_;
    case Kind::kList: {
      if (list_->size() != other.list_->size()) return false;
      for (size_t i = 0; i < list_->size(); ++i) {
        if (!(*list_)[i].equals((*other.list_)[i])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (dict_->items.size() != other.dict_->items.size()) return false;
      for (const auto& [k, v] : dict_->items) {
        const Value* o = other.dict_->find(k);
        if (o == nullptr || !v.equals(*o)) return false;
      }
      return true;
    }
    case Kind::kFunction: return fn_ == other.fn_;
    default: return false;
  }
}

bool Value::less(const Value& other) const {
  if ((is_number() || kind_ == Kind::kBool) && (other.is_number() || other.kind_ == Kind::kBool)) {
    auto as_num = [](const Value& v) { return v.kind_ == Kind::kBool ? (v.b_ ? 1.0 : 0.0) : v.as_double(); };
    if (kind_ == Kind::kInt && other.kind_ == Kind::kInt) return i_ < other.i_;
    return as_num(*this) < as_num(other);
  }
  if (kind_ == Kind::kString && other.kind_ == Kind::kString) return *s_ < *other.s_;
  if (kind_ == Kind::kList && other.kind_ == Kind::kList) {
    const size_t n = std::min(list_->size(), other.list_->size());
    for (size_t i = 0; i < n; ++i) {
      if ((*list_)[i].less((*other.list_)[i])) return true;
      if ((*other.list_)[i].less((*list_)[i])) return false;
    }
    return list_->size() < other.list_->size();
  }
  throw TemplateError(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(), other.type_name()));
}

std::string Value::str() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return b_ ? "True" : "False";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return format_python_float(d_);
    case Kind::kString: return *s_;
    default: return repr();
  }
}

std::string Value::repr() const {
  switch (kind_) {
    case Kind::kString: return python_string_repr(*s_);
    case Kind::kList: {
      std::string out = "[";
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i > 0) out += ", ";
        out += (*list_)[i].repr();
      }
      return out + "]";
    }
    case Kind::kDict: {
      if (is_namespace_) return "<Namespace>";
      std::string out = "{";
      for (size_t i = 0; i < dict_->items.size(); ++i) {
        if (i > 0) out += ", ";
        out += python_string_repr(dict_->items[i].first) + ": " + dict_->items[i].second.repr();
      }
      return out + "}";
    }
    case Kind::kFunction: return fmt::format("<function {}>", *s_);
    case Kind::kUndefined: return "";
    default: return str();
  }
}

std::string Value::to_json(int indent, bool sort_keys) const {
  std::string out;
  to_json_impl(*this, indent, sort_keys, 0, &out);
  return out;
}

std::string Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "NoneType";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kDict: return is_namespace_ ? "Namespace" : "dict";
    case Kind::kFunction: return "function";
  }
  return "?";
}

Value CallArgs::get(size_t index, std::string_view name, Value fallback) const {
  for (const auto& [key, value] : keywords) {
    if (key == name) return value;
  }
  if (index < positional.size()) return positional[index];
  return fallback;
}

}  // namespace longbow::jinja
