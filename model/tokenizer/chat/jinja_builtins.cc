#include "model/tokenizer/chat/jinja_builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "model/tokenizer/chat/jinja_limits.h"

namespace longbow::jinja {
namespace {

constexpr std::string_view kPythonSpace = " \t\n\r\f\v";

std::string strip_chars(const std::string& s, const Value& chars, bool left, bool right) {
  const std::string set = chars.is_string() ? chars.as_string() : std::string(kPythonSpace);
  size_t begin = 0, end = s.size();
  if (left) {
    while (begin < end && set.find(s[begin]) != std::string::npos) ++begin;
  }
  if (right) {
    while (end > begin && set.find(s[end - 1]) != std::string::npos) --end;
  }
  return s.substr(begin, end - begin);
}

const std::string& need_string(const Value& v, std::string_view what) {
  if (!v.is_string()) throw TemplateError(fmt::format("{} expects a string, got {}", what, v.type_name()));
  return v.as_string();
}

int64_t need_int(const Value& v, std::string_view what) {
  if (v.kind() == Value::Kind::kInt) return v.as_int();
  if (v.kind() == Value::Kind::kBool) return v.as_bool() ? 1 : 0;
  throw TemplateError(fmt::format("{} expects an integer, got {}", what, v.type_name()));
}

// The items a filter iterates over: a list, a dict's keys, a string's characters.
ValueList iterate(const Value& v, std::string_view what) {
  switch (v.kind()) {
    case Value::Kind::kList: return v.as_list();
    case Value::Kind::kUndefined: return {};
    case Value::Kind::kString: return string_chars(v.as_string());
    case Value::Kind::kDict: {
      ValueList keys;
      for (const auto& item : v.as_dict().items) keys.emplace_back(item.first);
      return keys;
    }
    default: throw TemplateError(fmt::format("{}: '{}' object is not iterable", what, v.type_name()));
  }
}

// A dotted attribute path ("function.name") of an item, as jinja2's make_attrgetter.
Value attribute_path(const Value& item, const std::string& path) {
  Value current = item;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && current.is_list()) {
      current = get_item(current, Value(static_cast<int64_t>(std::stoll(part))));
    } else {
      current = get_attribute(current, part);
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return current;
}

std::string python_title(const std::string& s) {
  std::string out = s;
  bool previous_cased = false;
  for (char& c : out) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c)) != 0;
    if (alpha) {
      c = static_cast<char>(previous_cased ? std::tolower(static_cast<unsigned char>(c))
                                           : std::toupper(static_cast<unsigned char>(c)));
    }
    previous_cased = alpha;
  }
  return out;
}

std::string map_ascii(const std::string& s, int (*f)(int)) {
  std::string out = s;
  for (char& c : out) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return out;
}

Value python_split(const std::string& s, const Value& sep, int64_t max_split) {
  ValueList parts;
  if (sep.is_none() || sep.is_undefined()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && kPythonSpace.find(s[i]) != std::string_view::npos) ++i;
      if (i >= s.size()) break;
      if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
        size_t end = s.size();
        while (end > i && kPythonSpace.find(s[end - 1]) != std::string_view::npos) --end;
        parts.emplace_back(s.substr(i, end - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && kPythonSpace.find(s[j]) == std::string_view::npos) ++j;
      parts.emplace_back(s.substr(i, j - i));
      i = j;
    }
    return Value(std::move(parts));
  }
  const std::string& separator = need_string(sep, "split");
  if (separator.empty()) throw TemplateError("split: empty separator");
  size_t start = 0;
  while (true) {
    const size_t at = s.find(separator, start);
    if (at == std::string::npos || (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split)) {
      parts.emplace_back(s.substr(start));
      break;
    }
    parts.emplace_back(s.substr(start, at - start));
    start = at + separator.size();
  }
  return Value(std::move(parts));
}

std::string python_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  std::string out;
  size_t start = 0;
  int64_t done = 0;
  if (from.empty()) {
    // Python inserts `to` between every character (and at both ends).
    for (char c : s) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      out += c;
      RenderBudget::check_text(out.size());
    }
    if (count < 0 || done < count) out += to;
    RenderBudget::charge_text(out.size());
    return out;
  }
  while (count < 0 || done < count) {
    const size_t at = s.find(from, start);
    if (at == std::string::npos) break;
    out += s.substr(start, at - start) + to;
    RenderBudget::check_text(out.size());
    start = at + from.size();
    ++done;
  }
  out += s.substr(start);
  RenderBudget::charge_text(out.size());
  return out;
}

// printf-style formatting of the "format" filter: %s, %d, %i, %f, %r and %%.
std::string percent_format(const std::string& fmt_text, const ValueList& args) {
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < fmt_text.size(); ++i) {
    if (fmt_text[i] != '%' || i + 1 >= fmt_text.size()) {
      out += fmt_text[i];
      continue;
    }
    const char spec = fmt_text[++i];
    if (spec == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) throw TemplateError("format: not enough arguments for format string");
    const Value& v = args[next++];
    switch (spec) {
      case 's': out += v.str(); break;
      case 'r': out += v.repr(); break;
      case 'd':
      case 'i': out += std::to_string(v.is_number() ? static_cast<int64_t>(v.as_double()) : need_int(v, "format")); break;
      case 'f': out += fmt::format("{:.6f}", v.as_double()); break;
      default: throw TemplateError(fmt::format("format: unsupported conversion '%{}'", spec));
    }
  }
  return out;
}

Value bound(std::string name, Function fn) { return Value::function(std::move(name), std::move(fn)); }

Value string_method(const std::string& s, const std::string& name) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    return bound(name, [s, name](CallArgs& a) {
      return Value(strip_chars(s, a.get(0, "chars"), name != "rstrip", name != "lstrip"));
    });
  }
  if (name == "split") {
    return bound(name, [s](CallArgs& a) {
      const Value max = a.get(1, "maxsplit", Value(static_cast<int64_t>(-1)));
      return python_split(s, a.get(0, "sep"), need_int(max, "split"));
    });
  }
  if (name == "startswith" || name == "endswith") {
    return bound(name, [s, name](CallArgs& a) {
      const Value arg = a.get(0, "prefix");
      ValueList options = arg.is_list() ? arg.as_list() : ValueList{arg};
      for (const Value& o : options) {
        const std::string& p = need_string(o, name);
        const bool hit = name == "startswith" ? s.compare(0, p.size(), p) == 0
                                              : s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
        if (hit) return Value(true);
      }
      return Value(false);
    });
  }
  if (name == "upper") return bound(name, [s](CallArgs&) { return Value(map_ascii(s, ::toupper)); });
  if (name == "lower") return bound(name, [s](CallArgs&) { return Value(map_ascii(s, ::tolower)); });
  if (name == "title") return bound(name, [s](CallArgs&) { return Value(python_title(s)); });
  if (name == "capitalize") {
    return bound(name, [s](CallArgs&) {
      std::string out = map_ascii(s, ::tolower);
      if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
      return Value(out);
    });
  }
  if (name == "replace") {
    return bound(name, [s](CallArgs& a) {
      return Value(python_replace(s, need_string(a.get(0, "old"), "replace"), need_string(a.get(1, "new"), "replace"),
                                  need_int(a.get(2, "count", Value(static_cast<int64_t>(-1))), "replace")));
    });
  }
  if (name == "find" || name == "count") {
    return bound(name, [s, name](CallArgs& a) {
      const std::string& sub = need_string(a.get(0, "sub"), name);
      if (name == "find") {
        const size_t at = s.find(sub);
        return Value(at == std::string::npos ? int64_t{-1} : static_cast<int64_t>(at));
      }
      int64_t n = 0;
      for (size_t at = s.find(sub); at != std::string::npos && !sub.empty(); at = s.find(sub, at + sub.size())) ++n;
      return Value(n);
    });
  }
  if (name == "join") {
    return bound(name, [s](CallArgs& a) {
      std::string out;
      const ValueList items = iterate(a.get(0, "iterable"), "join");
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) out += s;
        out += need_string(items[i], "join");
        RenderBudget::check_text(out.size());
      }
      RenderBudget::charge_text(out.size());
      return Value(out);
    });
  }
  if (name == "isdigit" || name == "isspace" || name == "isalpha" || name == "isalnum") {
    return bound(name, [s, name](CallArgs&) {
      if (s.empty()) return Value(false);
      for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        const bool ok = name == "isdigit" ? std::isdigit(u) != 0
                        : name == "isspace" ? kPythonSpace.find(c) != std::string_view::npos
                        : name == "isalpha" ? std::isalpha(u) != 0
                                            : std::isalnum(u) != 0;
        if (!ok) return Value(false);
      }
      return Value(true);
    });
  }
  if (name == "format") {
    return bound(name, [s](CallArgs& a) {
      // str.format with positional "{}" / "{0}" fields only.
      std::string out;
      size_t next = 0;
      for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
          out += '{';
          ++i;
        } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
          out += '}';
          ++i;
        } else if (s[i] == '{') {
          const size_t close = s.find('}', i);
          if (close == std::string::npos) throw TemplateError("str.format: unmatched '{'");
          const std::string field = s.substr(i + 1, close - i - 1);
          size_t index = field.empty() ? next++ : static_cast<size_t>(std::stoul(field));
          if (index >= a.positional.size()) throw TemplateError("str.format: not enough arguments");
          out += a.positional[index].str();
          i = close;
        } else {
          out += s[i];
        }
      }
      return Value(out);
    });
  }
  return Value();
}

Value dict_method(const Value& dict, const std::string& name) {
  if (name == "items") {
    return bound(name, [dict](CallArgs&) {
      ValueList items;
      for (const auto& [k, v] : dict.as_dict().items) items.emplace_back(ValueList{Value(k), v});
      return Value(std::move(items));
    });
  }
  if (name == "keys") {
    return bound(name, [dict](CallArgs&) {
      ValueList keys;
      for (const auto& item : dict.as_dict().items) keys.emplace_back(item.first);
      return Value(std::move(keys));
    });
  }
  if (name == "values") {
    return bound(name, [dict](CallArgs&) {
      ValueList values;
      for (const auto& item : dict.as_dict().items) values.push_back(item.second);
      return Value(std::move(values));
    });
  }
  if (name == "get") {
    return bound(name, [dict](CallArgs& a) {
      const Value key = a.get(0, "key");
      const Value* found = key.is_string() ? dict.as_dict().find(key.as_string()) : nullptr;
      return found != nullptr ? *found : a.get(1, "default", Value::none());
    });
  }
  return Value();
}

int64_t to_int(const Value& v, int64_t fallback) {
  switch (v.kind()) {
    case Value::Kind::kInt: return v.as_int();
    case Value::Kind::kBool: return v.as_bool() ? 1 : 0;
    case Value::Kind::kFloat: return static_cast<int64_t>(v.as_double());
    case Value::Kind::kString: {
      const std::string s = strip_chars(v.as_string(), Value(), true, true);
      char* end = nullptr;
      const long long i = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end == s.c_str() + s.size()) return i;
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end == s.c_str() + s.size()) return static_cast<int64_t>(d);
      return fallback;
    }
    default: return fallback;
  }
}

double to_float(const Value& v, double fallback) {
  if (v.is_number()) return v.as_double();
  if (v.kind() == Value::Kind::kBool) return v.as_bool() ? 1 : 0;
  if (v.is_string()) {
    char* end = nullptr;
    const std::string s = strip_chars(v.as_string(), Value(), true, true);
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end == s.c_str() + s.size()) return d;
  }
  return fallback;
}

ValueList sorted(ValueList items, bool reverse, const Value& attribute, bool case_sensitive) {
  auto key = [&](const Value& v) {
    Value k = attribute.is_string() ? attribute_path(v, attribute.as_string()) : v;
    if (!case_sensitive && k.is_string()) k = Value(map_ascii(k.as_string(), ::tolower));
    return k;
  };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    return reverse ? key(b).less(key(a)) : key(a).less(key(b));
  });
  return items;
}

}  // namespace

ValueList string_chars(const std::string& s) {
  RenderBudget::charge(kStepsPerCharacter * static_cast<int64_t>(s.size()));
  ValueList chars;
  for (size_t i = 0; i < s.size();) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const size_t n = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    chars.emplace_back(s.substr(i, n));
    i += n;
  }
  return chars;
}

Value get_attribute(const Value& object, const std::string& name) {
  switch (object.kind()) {
    case Value::Kind::kDict: {
      if (const Value* v = object.as_dict().find(name)) return *v;
      if (object.is_namespace()) return Value();
      return dict_method(object, name);
    }
    case Value::Kind::kString: return string_method(object.as_string(), name);
    case Value::Kind::kUndefined: throw TemplateError(fmt::format("'{}' is undefined (attribute of an undefined value)", name));
    default: return Value();
  }
}

Value get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case Value::Kind::kDict:
      if (key.is_string()) {
        if (const Value* v = object.as_dict().find(key.as_string())) return *v;
        return Value();
      }
      return Value();
    case Value::Kind::kList:
    case Value::Kind::kString: {
      if (key.kind() != Value::Kind::kInt) {
        if (object.is_string() && key.is_string()) return string_method(object.as_string(), key.as_string());
        return Value();
      }
      const ValueList chars = object.is_string() ? string_chars(object.as_string()) : ValueList();
      const ValueList& items = object.is_string() ? chars : object.as_list();
      int64_t i = key.as_int();
      if (i < 0) i += static_cast<int64_t>(items.size());
      if (i < 0 || i >= static_cast<int64_t>(items.size())) return Value();
      return items[static_cast<size_t>(i)];
    }
    case Value::Kind::kUndefined: throw TemplateError("subscript of an undefined value");
    default: return Value();
  }
}

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  if (name == "trim") {
    if (input.is_undefined()) return Value("");
    return Value(strip_chars(input.str(), args.get(0, "chars"), true, true));
  }
  if (name == "tojson") {
    const Value indent = args.get(0, "indent");
    const int n = indent.kind() == Value::Kind::kInt ? static_cast<int>(indent.as_int()) : -1;
    return Value(input.to_json(n, args.get(2, "sort_keys").truthy()));
  }
  if (name == "length" || name == "count") {
    switch (input.kind()) {
      case Value::Kind::kString: return Value(static_cast<int64_t>(string_chars(input.as_string()).size()));
      case Value::Kind::kList: return Value(static_cast<int64_t>(input.as_list().size()));
      case Value::Kind::kDict: return Value(static_cast<int64_t>(input.as_dict().items.size()));
      case Value::Kind::kUndefined: return Value(int64_t{0});
      default: throw TemplateError(fmt::format("length: object of type '{}' has no len()", input.type_name()));
    }
  }
  if (name == "string") return Value(input.str());
  if (name == "upper") return Value(map_ascii(input.str(), ::toupper));
  if (name == "lower") return Value(map_ascii(input.str(), ::tolower));
  if (name == "title") return Value(python_title(input.str()));
  if (name == "capitalize") {
    std::string out = map_ascii(input.str(), ::tolower);
    if (!out.empty()) out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
    return Value(out);
  }
  if (name == "replace") {
    return Value(python_replace(input.str(), args.get(0, "old").str(), args.get(1, "new").str(),
                                need_int(args.get(2, "count", Value(static_cast<int64_t>(-1))), "replace")));
  }
  if (name == "default" || name == "d") {
    const bool boolean = args.get(1, "boolean").truthy();
    if (input.is_undefined() || (boolean && !input.truthy())) return args.get(0, "default_value", Value(""));
    return input;
  }
  if (name == "join") {
    const ValueList items = iterate(input, "join");
    const Value attribute = args.get(1, "attribute");
    std::string sep = args.get(0, "d", Value("")).str();
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0) out += sep;
      out += (attribute.is_undefined() ? items[i] : attribute_path(items[i], attribute.str())).str();
      RenderBudget::check_text(out.size());
    }
    RenderBudget::charge_text(out.size());
    return Value(out);
  }
  if (name == "first" || name == "last") {
    const ValueList items = iterate(input, name);
    if (items.empty()) return Value();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "list") return Value(iterate(input, "list"));
  if (name == "reverse") {
    if (input.is_string()) {
      ValueList chars = string_chars(input.as_string());
      std::string out;
      for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += it->as_string();
      return Value(out);
    }
    ValueList items = iterate(input, "reverse");
    std::reverse(items.begin(), items.end());
    return Value(std::move(items));
  }
  if (name == "unique") {
    ValueList out;
    for (const Value& v : iterate(input, "unique")) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return o.equals(v); })) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "sort") {
    return Value(sorted(iterate(input, "sort"), args.get(0, "reverse").truthy(), args.get(2, "attribute"),
                        args.get(1, "case_sensitive").truthy()));
  }
  if (name == "dictsort") {
    if (!input.is_dict()) throw TemplateError("dictsort expects a dict");
    ValueList pairs;
    for (const auto& [k, v] : input.as_dict().items) pairs.emplace_back(ValueList{Value(k), v});
    const bool by_value = args.get(1, "by").str() == "value";
    std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& a, const Value& b) {
      const Value& ka = a.as_list()[by_value ? 1 : 0];
      const Value& kb = b.as_list()[by_value ? 1 : 0];
      auto fold = [](const Value& v) { return v.is_string() ? Value(map_ascii(v.as_string(), ::tolower)) : v; };
      return args.get(0, "case_sensitive").truthy() ? ka.less(kb) : fold(ka).less(fold(kb));
    });
    if (args.get(2, "reverse").truthy()) std::reverse(pairs.begin(), pairs.end());
    return Value(std::move(pairs));
  }
  if (name == "items") {
    if (input.is_undefined()) return Value(ValueList{});
    if (!input.is_dict()) throw TemplateError("items expects a dict");
    ValueList pairs;
    for (const auto& [k, v] : input.as_dict().items) pairs.emplace_back(ValueList{Value(k), v});
    return Value(std::move(pairs));
  }
  if (name == "map") {
    ValueList out;
    const Value attribute = args.get(99, "attribute");
    if (!attribute.is_undefined()) {
      const Value fallback = args.get(99, "default");
      for (const Value& v : iterate(input, "map")) {
        Value a = attribute_path(v, attribute.str());
        out.push_back(a.is_undefined() && !fallback.is_undefined() ? fallback : a);
      }
      return Value(std::move(out));
    }
    if (args.positional.empty()) throw TemplateError("map needs a filter name or attribute=");
    const std::string filter = args.positional[0].str();
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keywords = args.keywords;
    for (const Value& v : iterate(input, "map")) out.push_back(apply_filter(filter, v, rest));
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject" || name == "selectattr" || name == "rejectattr") {
    const bool by_attribute = name == "selectattr" || name == "rejectattr";
    const bool keep_if = name == "select" || name == "selectattr";
    size_t first = 0;
    Value attribute;
    if (by_attribute) {
      if (args.positional.empty()) throw TemplateError(fmt::format("{} needs an attribute", name));
      attribute = args.positional[0];
      first = 1;
    }
    std::string test = first < args.positional.size() ? args.positional[first].str() : "";
    CallArgs test_args;
    if (first + 1 < args.positional.size()) {
      test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(first + 1), args.positional.end());
    }
    ValueList out;
    for (const Value& v : iterate(input, name)) {
      const Value subject = by_attribute ? attribute_path(v, attribute.str()) : v;
      const bool pass = test.empty() ? subject.truthy() : apply_test(test, subject, test_args);
      if (pass == keep_if) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "int") return Value(to_int(input, to_int(args.get(0, "default", Value(int64_t{0})), 0)));
  if (name == "float") return Value(to_float(input, to_float(args.get(0, "default", Value(0.0)), 0.0)));
  if (name == "abs") {
    if (input.kind() == Value::Kind::kInt) return Value(input.as_int() < 0 ? -input.as_int() : input.as_int());
    if (input.is_number()) return Value(std::fabs(input.as_double()));
    throw TemplateError("abs expects a number");
  }
  if (name == "round") {
    const int64_t precision = need_int(args.get(0, "precision", Value(int64_t{0})), "round");
    const std::string method = args.get(1, "method", Value("common")).str();
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = to_float(input, 0) * scale;
    const double r = method == "ceil" ? std::ceil(x) : method == "floor" ? std::floor(x) : std::round(x);
    return Value(r / scale);
  }
  if (name == "sum") {
    const Value attribute = args.get(0, "attribute");
    Value total = args.get(1, "start", Value(int64_t{0}));
    for (const Value& v : iterate(input, "sum")) {
      const Value x = attribute.is_undefined() ? v : attribute_path(v, attribute.str());
      if (total.kind() == Value::Kind::kInt && x.kind() == Value::Kind::kInt) {
        total = Value(total.as_int() + x.as_int());
      } else {
        total = Value(total.as_double() + x.as_double());
      }
    }
    return total;
  }
  if (name == "indent") {
    const Value width = args.get(0, "width", Value(int64_t{4}));
    std::string pad;
    if (width.is_string()) {
      pad = width.as_string();
    } else {
      const int64_t spaces = std::max<int64_t>(need_int(width, "indent"), 0);  // as Python's ' ' * n
      RenderBudget::charge_text(static_cast<uint64_t>(spaces));
      pad.assign(static_cast<size_t>(spaces), ' ');
    }
    const bool first = args.get(1, "first").truthy();
    const bool blank = args.get(2, "blank").truthy();
    const std::string s = input.str();
    std::string out;
    size_t start = 0;
    bool is_first = true;
    while (start <= s.size()) {
      const size_t nl = s.find('\n', start);
      const std::string line = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      if ((!is_first || first) && (blank || !line.empty())) out += pad;
      out += line;
      RenderBudget::check_text(out.size());
      if (nl == std::string::npos) break;
      out += '\n';
      start = nl + 1;
      is_first = false;
    }
    RenderBudget::charge_text(out.size());
    return Value(out);
  }
  if (name == "safe" || name == "e" || name == "escape" || name == "forceescape") {
    if (name == "safe") return input;
    std::string out;
    for (char c : input.str()) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&#34;"; break;
        case '\'': out += "&#39;"; break;
        default: out += c;
      }
    }
    return Value(out);
  }
  if (name == "format") {
    ValueList values = args.positional;
    return Value(percent_format(input.str(), values));
  }
  if (name == "wordcount") return Value(static_cast<int64_t>(python_split(input.str(), Value(), -1).as_list().size()));
  if (name == "center") {
    const int64_t requested = need_int(args.get(0, "width", Value(int64_t{80})), "center");
    const std::string s = input.str();
    if (requested <= static_cast<int64_t>(s.size())) return Value(s);
    const auto width = static_cast<size_t>(requested);
    RenderBudget::charge_text(width);
    const size_t total = width - s.size();
    const size_t left = total / 2 + (total & width & 1);
    return Value(std::string(left, ' ') + s + std::string(total - left, ' '));
  }
  throw TemplateError(fmt::format("the filter '{}' is not supported by longbow's chat template interpreter", name));
}

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind() == Value::Kind::kBool;
  if (name == "true") return v.kind() == Value::Kind::kBool && v.as_bool();
  if (name == "false") return v.kind() == Value::Kind::kBool && !v.as_bool();
  if (name == "integer") return v.kind() == Value::Kind::kInt;
  if (name == "float") return v.kind() == Value::Kind::kFloat;
  if (name == "number") return v.is_number() || v.kind() == Value::Kind::kBool;
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "callable") return v.kind() == Value::Kind::kFunction;
  if (name == "odd" || name == "even") {
    const int64_t i = need_int(v, name);
    return (i % 2 != 0) == (name == "odd");
  }
  if (name == "divisibleby") {
    const int64_t d = need_int(args.get(0, "num"), name);
    return d != 0 && need_int(v, name) % d == 0;
  }
  const Value other = args.get(0, "other");
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return v.equals(other);
  if (name == "ne" || name == "!=") return !v.equals(other);
  if (name == "lt" || name == "lessthan" || name == "<") return v.less(other);
  if (name == "gt" || name == "greaterthan" || name == ">") return other.less(v);
  if (name == "le" || name == "<=") return !other.less(v);
  if (name == "ge" || name == ">=") return !v.less(other);
  if (name == "in") {
    const Value container = args.get(0, "seq");
    for (const Value& item : iterate(container, "in")) {
      if (item.equals(v)) return true;
    }
    return container.is_string() && v.is_string() && container.as_string().find(v.as_string()) != std::string::npos;
  }
  if (name == "lower" || name == "upper") {
    const std::string s = v.str();
    return std::none_of(s.begin(), s.end(), [&](char c) {
      return name == "lower" ? std::isupper(static_cast<unsigned char>(c)) : std::islower(static_cast<unsigned char>(c));
    });
  }
  throw TemplateError(fmt::format("the test '{}' is not supported by longbow's chat template interpreter", name));
}

ValueDict global_functions(std::function<std::chrono::system_clock::time_point()> now) {
  ValueDict globals;
  globals.set("range", Value::function("range", [](CallArgs& a) {
    int64_t start = 0, stop = 0, step = 1;
    if (a.positional.size() == 1) {
      stop = need_int(a.positional[0], "range");
    } else if (a.positional.size() >= 2) {
      start = need_int(a.positional[0], "range");
      stop = need_int(a.positional[1], "range");
      if (a.positional.size() >= 3) step = need_int(a.positional[2], "range");
    }
    if (step == 0) throw TemplateError("range() arg 3 must not be zero");
    // Unsigned, modulo 2^64: the span between two 64-bit bounds fits, and every element lies
    // between them, but neither need fit a signed 64-bit intermediate.
    const auto ustart = static_cast<uint64_t>(start), ustop = static_cast<uint64_t>(stop), ustep = static_cast<uint64_t>(step);
    const bool up = step > 0;
    const uint64_t span = up ? (stop > start ? ustop - ustart : 0) : (start > stop ? ustart - ustop : 0);
    const uint64_t stride = up ? ustep : 0 - ustep;
    const uint64_t count = span / stride + (span % stride != 0 ? 1 : 0);
    if (count > 1000000) throw TemplateError("range() too large");
    RenderBudget::charge(static_cast<int64_t>(count));
    ValueList out;
    out.reserve(static_cast<size_t>(count));
    for (uint64_t k = 0; k < count; ++k) out.emplace_back(static_cast<int64_t>(ustart + k * ustep));
    return Value(std::move(out));
  }));
  globals.set("namespace", Value::function("namespace", [](CallArgs& a) {
    ValueDict attrs;
    if (!a.positional.empty() && a.positional[0].is_dict()) attrs = a.positional[0].as_dict();
    for (const auto& [k, v] : a.keywords) attrs.set(k, v);
    return Value(std::move(attrs), /*is_namespace=*/true);
  }));
  globals.set("dict", Value::function("dict", [](CallArgs& a) {
    ValueDict d;
    for (const auto& [k, v] : a.keywords) d.set(k, v);
    return Value(std::move(d));
  }));
  globals.set("raise_exception", Value::function("raise_exception", [](CallArgs& a) -> Value {
    throw TemplateError(a.get(0, "message").str());
  }));
  globals.set("strftime_now", Value::function("strftime_now", [now](CallArgs& a) {
    const std::time_t t = std::chrono::system_clock::to_time_t(now());
    std::tm local{};
    localtime_r(&t, &local);
    char buffer[256];
    const size_t n = std::strftime(buffer, sizeof(buffer), a.get(0, "format").str().c_str(), &local);
    return Value(std::string(buffer, n));
  }));
  return globals;
}

}  // namespace longbow::jinja
