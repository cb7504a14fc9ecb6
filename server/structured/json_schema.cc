#include "server/structured/json_schema.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "server/structured/char_class.h"
#include "server/structured/integer_range.h"
#include "server/structured/regex.h"

namespace longbow::structured {

namespace {

using Json = nlohmann::ordered_json;

const std::set<std::string>& annotation_keys() {
  static const std::set<std::string> keys{"title", "description", "default", "examples", "$schema", "$id", "$comment"};
  return keys;
}

const std::set<std::string>& supported_keys() {
  static const std::set<std::string> keys{"type",      "properties", "required",         "additionalProperties",
                                          "items",     "minItems",   "maxItems",         "enum",
                                          "const",     "minLength",  "maxLength",        "pattern",
                                          "minimum",   "maximum",    "exclusiveMinimum", "exclusiveMaximum",
                                          "anyOf"};
  return keys;
}

// Alternatives of `e` as a flat list (an alternation's children, or just e).
std::vector<ExprPtr> options_of(const ExprPtr& e) {
  if (e->kind == Expr::Kind::kAlt) return e->children;
  return {e};
}

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const JsonGrammarOptions& options) : opt_(options) {
    if (opt_.max_whitespace > 0) {
      ByteSet space;
      space.set(' ');
      space.set('\t');
      space.set('\n');
      ws_ = repeat(bytes_expr(space), 0, opt_.max_whitespace);
    } else {
      ws_ = epsilon();
    }
  }

  StatusOr<Grammar> build_from_schema(const Json& schema) {
    const int root = b_.declare_rule("root");
    StatusOr<ExprPtr> body = compile(schema, "#");
    if (!body.ok()) return body.status();
    b_.define_rule(root, std::move(body).value());
    return finish(root);
  }

  StatusOr<Grammar> build_any_object() {
    const int root = b_.declare_rule("root");
    any_value();
    b_.define_rule(root, rule_ref(any_object_));
    return finish(root);
  }

 private:
  StatusOr<Grammar> finish(int root) {
    StatusOr<Grammar> g = b_.build(root);
    if (!g.ok()) return g.status().with_context("JSON schema");
    return g;
  }

  static Status unsupported(const std::string& path, const std::string& what) {
    return unimplemented(fmt::format("JSON schema at {}: {} is not supported", path, what));
  }
  static Status bad(const std::string& path, const std::string& what) {
    return invalid_argument(fmt::format("JSON schema at {}: {}", path, what));
  }

  // One character of a JSON string: unescaped (not ", \ or a control) or an escape; \u escapes
  // exclude surrogates, so every sentence decodes to valid Unicode.
  ExprPtr json_char() {
    if (char_rule_ < 0) {
      char_rule_ = b_.declare_rule("char");
      CharClass special;
      special.add(0, 0x1F);
      special.add('"', '"');
      special.add('\\', '\\');
      std::vector<ExprPtr> options = options_of(CharClass::any().minus(special).to_utf8_expr());
      ByteSet simple;
      for (const char c : std::string("\"\\/bfnrt")) simple.set(static_cast<uint8_t>(c));
      auto hex = [](std::string_view set) {
        ByteSet b;
        for (const char c : set) b.set(static_cast<uint8_t>(c));
        return bytes_expr(b);
      };
      const ExprPtr h = hex("0123456789abcdefABCDEF");
      const ExprPtr non_surrogate = alt({seq({hex("0123456789abcABCefEF"), h, h, h}), seq({hex("dD"), hex("01234567"), h, h})});
      options.push_back(seq({literal("\\"), alt({bytes_expr(simple), seq({literal("u"), non_surrogate})})}));
      b_.define_rule(char_rule_, alt(std::move(options)));
    }
    return rule_ref(char_rule_);
  }

  ExprPtr string_of(int min, int max) { return seq({literal("\""), repeat(json_char(), min, max), literal("\"")}); }

  ExprPtr number() {
    ByteSet digit;
    for (char c = '0'; c <= '9'; ++c) digit.set(static_cast<uint8_t>(c));
    ByteSet nonzero = digit;
    nonzero.reset('0');
    const ExprPtr d = bytes_expr(digit);
    const ExprPtr integer_part = alt({literal("0"), seq({bytes_expr(nonzero), repeat(d, 0, 15)})});
    ByteSet e;
    e.set('e');
    e.set('E');
    ByteSet sign;
    sign.set('+');
    sign.set('-');
    return seq({optional(literal("-")), integer_part, optional(seq({literal("."), repeat(d, 1, 15)})),
                optional(seq({bytes_expr(e), optional(bytes_expr(sign)), repeat(d, 1, 2)}))});
  }

  ExprPtr comma() { return seq({ws_, literal(","), ws_}); }

  // The generic JSON value rules (any value; objects and arrays of any size and depth).
  ExprPtr any_value() {
    if (any_value_ < 0) {
      any_value_ = b_.declare_rule("value");
      any_object_ = b_.declare_rule("object");
      const int array = b_.declare_rule("array");
      const ExprPtr value = rule_ref(any_value_);
      const ExprPtr member = seq({string_of(0, kUnbounded), ws_, literal(":"), ws_, value});
      b_.define_rule(any_object_, seq({literal("{"), ws_, optional(seq({member, repeat(seq({comma(), member}), 0, kUnbounded)})), ws_, literal("}")}));
      b_.define_rule(array, seq({literal("["), ws_, optional(seq({value, repeat(seq({comma(), value}), 0, kUnbounded)})), ws_, literal("]")}));
      b_.define_rule(any_value_, alt({rule_ref(any_object_), rule_ref(array), string_of(0, kUnbounded), number(),
                                      literal("true"), literal("false"), literal("null")}));
    }
    return rule_ref(any_value_);
  }

  StatusOr<int> non_negative(const Json& s, const char* key, const std::string& path, int fallback) {
    if (!s.contains(key)) return fallback;
    const Json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) return bad(path, fmt::format("'{}' must be a non-negative integer", key));
    const int64_t n = v.get<int64_t>();
    if (n > 100000) return unsupported(path, fmt::format("'{}' above 100000", key));
    return static_cast<int>(n);
  }

  StatusOr<ExprPtr> compile(const Json& s, const std::string& path) {
    if (++depth_ > 64) return unsupported(path, "schema nesting deeper than 64");
    StatusOr<ExprPtr> out = compile_inner(s, path);
    --depth_;
    return out;
  }

  StatusOr<ExprPtr> compile_inner(const Json& s, const std::string& path) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return any_value();
      return bad(path, "the schema false admits no value");
    }
    if (!s.is_object()) return bad(path, "a schema must be an object or a boolean");
    std::vector<std::string> constraints;
    for (const auto& [key, value] : s.items()) {
      if (annotation_keys().count(key)) continue;
      if (!supported_keys().count(key)) return unsupported(path, fmt::format("the keyword '{}'", key));
      constraints.push_back(key);
    }
    if (s.contains("anyOf")) {
      for (const std::string& k : constraints) {
        if (k != "anyOf") return unsupported(path, fmt::format("'anyOf' together with '{}'", k));
      }
      const Json& list = s["anyOf"];
      if (!list.is_array() || list.empty()) return bad(path, "'anyOf' must be a non-empty array");
      std::vector<ExprPtr> options;
      for (size_t i = 0; i < list.size(); ++i) {
        StatusOr<ExprPtr> e = compile(list[i], fmt::format("{}/anyOf/{}", path, i));
        if (!e.ok()) return e.status();
        options.push_back(std::move(e).value());
      }
      return alt(std::move(options));
    }
    if (s.contains("const")) return literal(s["const"].dump());
    if (s.contains("enum")) {
      const Json& list = s["enum"];
      if (!list.is_array() || list.empty()) return bad(path, "'enum' must be a non-empty array");
      std::vector<ExprPtr> options;
      for (const Json& v : list) options.push_back(literal(v.dump()));
      return alt(std::move(options));
    }
    std::vector<std::string> types;
    if (s.contains("type")) {
      const Json& t = s["type"];
      if (t.is_string()) {
        types.push_back(t.get<std::string>());
      } else if (t.is_array() && !t.empty()) {
        for (const Json& x : t) {
          if (!x.is_string()) return bad(path, "'type' entries must be strings");
          types.push_back(x.get<std::string>());
        }
      } else {
        return bad(path, "'type' must be a string or a non-empty array of strings");
      }
    } else if (s.contains("properties") || s.contains("additionalProperties") || s.contains("required")) {
      types.push_back("object");
    } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
      types.push_back("array");
    } else if (s.contains("minLength") || s.contains("maxLength") || s.contains("pattern")) {
      types.push_back("string");
    } else if (s.contains("minimum") || s.contains("maximum") || s.contains("exclusiveMinimum") || s.contains("exclusiveMaximum")) {
      types.push_back("number");
    } else {
      return any_value();
    }
    std::vector<ExprPtr> options;
    for (const std::string& t : types) {
      StatusOr<ExprPtr> e = compile_typed(t, s, path);
      if (!e.ok()) return e.status();
      options.push_back(std::move(e).value());
    }
    return alt(std::move(options));
  }

  StatusOr<ExprPtr> compile_typed(const std::string& type, const Json& s, const std::string& path) {
    if (type == "object") return compile_object(s, path);
    if (type == "array") return compile_array(s, path);
    if (type == "string") return compile_string(s, path);
    if (type == "integer") return compile_integer(s, path);
    if (type == "number") {
      for (const char* k : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
        if (s.contains(k)) return unsupported(path, fmt::format("'{}' on a number (only on an integer)", k));
      }
      return number();
    }
    if (type == "boolean") return alt({literal("true"), literal("false")});
    if (type == "null") return literal("null");
    return bad(path, fmt::format("unknown type '{}'", type));
  }

  StatusOr<ExprPtr> compile_object(const Json& s, const std::string& path) {
    const Json empty = Json::object();
    const Json& props = s.contains("properties") ? s["properties"] : empty;
    if (!props.is_object()) return bad(path, "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return bad(path, "'required' must be an array");
      for (const Json& r : s["required"]) {
        if (!r.is_string()) return bad(path, "'required' entries must be strings");
        if (!props.contains(r.get<std::string>())) {
          return unsupported(path, fmt::format("required property '{}' that is not in 'properties'", r.get<std::string>()));
        }
        required.insert(r.get<std::string>());
      }
    }
    const Json additional = s.contains("additionalProperties") ? s["additionalProperties"] : Json(true);
    if (!additional.is_boolean() && !additional.is_object()) return bad(path, "'additionalProperties' must be a boolean or a schema");
    if (props.empty()) {
      // Only additional properties: any keys, each value matching `additional`.
      if (additional.is_boolean() && !additional.get<bool>()) return seq({literal("{"), ws_, literal("}")});
      ExprPtr value;
      if (additional.is_boolean()) {
        value = any_value();
      } else {
        StatusOr<ExprPtr> v = compile(additional, path + "/additionalProperties");
        if (!v.ok()) return v.status();
        value = std::move(v).value();
      }
      const int member_rule = b_.declare_rule("member");
      b_.define_rule(member_rule, seq({string_of(0, kUnbounded), ws_, literal(":"), ws_, value}));
      const ExprPtr member = rule_ref(member_rule);
      return seq({literal("{"), ws_, optional(seq({member, repeat(seq({comma(), member}), 0, kUnbounded)})), ws_, literal("}")});
    }
    // Declared properties only, in schema order (additional ones are allowed but never produced).
    // first_i: properties i.. with none written yet; rest_i: properties i.. after one was written.
    struct Prop {
      ExprPtr expr;
      bool required;
    };
    std::vector<Prop> list;
    for (const auto& [name, sub] : props.items()) {
      StatusOr<ExprPtr> v = compile(sub, fmt::format("{}/properties/{}", path, name));
      if (!v.ok()) return v.status();
      list.push_back(Prop{seq({literal(Json(name).dump()), ws_, literal(":"), ws_, std::move(v).value()}), required.count(name) > 0});
    }
    ExprPtr first = epsilon();
    ExprPtr rest = epsilon();
    for (size_t i = list.size(); i-- > 0;) {
      const int rest_rule = b_.declare_rule("props_rest");
      const int first_rule = b_.declare_rule("props");
      const ExprPtr with_comma = seq({comma(), list[i].expr});
      if (list[i].required) {
        b_.define_rule(rest_rule, seq({with_comma, rest}));
        b_.define_rule(first_rule, seq({list[i].expr, rest}));
      } else {
        b_.define_rule(rest_rule, seq({optional(with_comma), rest}));
        b_.define_rule(first_rule, alt({seq({list[i].expr, rest}), first}));
      }
      rest = rule_ref(rest_rule);
      first = rule_ref(first_rule);
    }
    return seq({literal("{"), ws_, first, ws_, literal("}")});
  }

  StatusOr<ExprPtr> compile_array(const Json& s, const std::string& path) {
    ExprPtr item;
    if (s.contains("items")) {
      if (s["items"].is_array()) return unsupported(path, "'items' as an array (tuple validation)");
      StatusOr<ExprPtr> e = compile(s["items"], path + "/items");
      if (!e.ok()) return e.status();
      const int item_rule = b_.declare_rule("item");
      b_.define_rule(item_rule, std::move(e).value());
      item = rule_ref(item_rule);
    } else {
      item = any_value();
    }
    StatusOr<int> min = non_negative(s, "minItems", path, 0);
    if (!min.ok()) return min.status();
    StatusOr<int> max = non_negative(s, "maxItems", path, kUnbounded);
    if (!max.ok()) return max.status();
    const int lo = min.value();
    const int hi = max.value();
    if (hi != kUnbounded && hi < lo) return bad(path, "'maxItems' is below 'minItems'");
    if (hi == 0) return seq({literal("["), ws_, literal("]")});
    ExprPtr items = seq({item, repeat(seq({comma(), item}), std::max(lo - 1, 0), hi == kUnbounded ? kUnbounded : hi - 1)});
    if (lo == 0) items = optional(items);
    return seq({literal("["), ws_, items, ws_, literal("]")});
  }

  StatusOr<ExprPtr> compile_string(const Json& s, const std::string& path) {
    StatusOr<int> min = non_negative(s, "minLength", path, 0);
    if (!min.ok()) return min.status();
    StatusOr<int> max = non_negative(s, "maxLength", path, kUnbounded);
    if (!max.ok()) return max.status();
    if (max.value() != kUnbounded && max.value() < min.value()) return bad(path, "'maxLength' is below 'minLength'");
    if (s.contains("pattern")) {
      if (s.contains("minLength") || s.contains("maxLength")) {
        return unsupported(path, "'pattern' together with 'minLength'/'maxLength'");
      }
      if (!s["pattern"].is_string()) return bad(path, "'pattern' must be a string");
      RegexOptions ro;
      ro.json_string = true;
      ro.search = true;
      StatusOr<ExprPtr> e = regex_to_expr(s["pattern"].get<std::string>(), ro);
      if (!e.ok()) return e.status().with_context(fmt::format("JSON schema at {}", path));
      return seq({literal("\""), std::move(e).value(), literal("\"")});
    }
    return string_of(min.value(), max.value());
  }

  StatusOr<ExprPtr> compile_integer(const Json& s, const std::string& path) {
    int64_t lo = -kMaxIntegerMagnitude;
    int64_t hi = kMaxIntegerMagnitude;
    auto bound = [&](const char* key, bool lower, bool exclusive) -> Status {
      if (!s.contains(key)) return Status::Ok();
      const Json& v = s[key];
      if (!v.is_number()) return bad(path, fmt::format("'{}' must be a number (draft 4 boolean forms are not supported)", key));
      const double x = v.get<double>();
      if (std::abs(x) > static_cast<double>(kMaxIntegerMagnitude)) return unsupported(path, fmt::format("'{}' beyond 18 digits", key));
      int64_t b = 0;
      if (lower) {
        b = exclusive ? static_cast<int64_t>(std::floor(x)) + 1 : static_cast<int64_t>(std::ceil(x));
        lo = std::max(lo, b);
      } else {
        b = exclusive ? static_cast<int64_t>(std::ceil(x)) - 1 : static_cast<int64_t>(std::floor(x));
        hi = std::min(hi, b);
      }
      return Status::Ok();
    };
    for (const auto& [key, lower, exclusive] : {std::tuple{"minimum", true, false}, std::tuple{"maximum", false, false},
                                                std::tuple{"exclusiveMinimum", true, true},
                                                std::tuple{"exclusiveMaximum", false, true}}) {
      if (Status st = bound(key, lower, exclusive); !st.ok()) return st;
    }
    if (lo > hi) return bad(path, "no integer lies between the bounds");
    return integer_range(lo, hi);
  }

  JsonGrammarOptions opt_;
  GrammarBuilder b_;
  ExprPtr ws_;
  int char_rule_ = -1;
  int any_value_ = -1;
  int any_object_ = -1;
  int depth_ = 0;
};

}  // namespace

StatusOr<Grammar> json_schema_value_to_grammar(const nlohmann::ordered_json& schema, const JsonGrammarOptions& options) {
  return SchemaCompiler(options).build_from_schema(schema);
}

StatusOr<Grammar> json_schema_to_grammar(std::string_view schema_text, const JsonGrammarOptions& options) {
  Json schema = Json::parse(schema_text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return invalid_argument("JSON schema: not valid JSON");
  return json_schema_value_to_grammar(schema, options);
}

StatusOr<Grammar> json_object_grammar(const JsonGrammarOptions& options) {
  return SchemaCompiler(options).build_any_object();
}

}  // namespace longbow::structured
