// Value: the dynamic value of longbow's Jinja interpreter, with Python's semantics where chat
// templates can observe them (what jinja2 inherits from Python): truthiness, equality, ordering,
// str() and repr() text, insertion-ordered dicts, and json.dumps output for the tojson filter.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace longbow::jinja {

// A template error: the render stops and the message reaches the client. Thrown only inside the
// interpreter; ChatTemplate::render turns it into a Status.
class TemplateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
struct CallArgs;
using ValueList = std::vector<Value>;
using Function = std::function<Value(CallArgs&)>;

// An insertion-ordered string-keyed map (Python dict).
struct ValueDict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  void set(const std::string& key, Value value);
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value none();
  Value(bool b);                 // NOLINT(google-explicit-constructor)
  Value(int64_t i);              // NOLINT(google-explicit-constructor)
  Value(int i) : Value(static_cast<int64_t>(i)) {}  // NOLINT(google-explicit-constructor)
  Value(double d);               // NOLINT(google-explicit-constructor)
  Value(std::string s);          // NOLINT(google-explicit-constructor)
  Value(const char* s) : Value(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  // A list or dict: TemplateError when it would nest deeper than kMaxValueDepth, or when a
  // namespace would hold a value that holds_reference().
  Value(ValueList list);         // NOLINT(google-explicit-constructor)
  Value(ValueDict dict, bool is_namespace = false);
  static Value function(std::string name, Function fn);
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kDict && is_namespace_; }
  // Whether this is, or contains, a namespace or a function: the values that can refer back to a
  // namespace, which therefore may not hold them (a namespace is the one mutable value; this keeps
  // values acyclic).
  bool holds_reference() const { return holds_reference_; }
  // Lists and dicts nested inside each other, this one included (0 for any other value).
  int depth() const { return depth_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_double() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : d_; }
  const std::string& as_string() const { return *s_; }
  const ValueList& as_list() const { return *list_; }
  ValueList& mutable_list() { return *list_; }
  const ValueDict& as_dict() const { return *dict_; }
  ValueDict& mutable_dict() { return *dict_; }  // shared: namespaces are mutated in place
  const Function& as_function() const { return *fn_; }
  const std::string& function_name() const { return *s_; }

  // Python truthiness (undefined is false).
  bool truthy() const;
  // Python ==.
  bool equals(const Value& other) const;
  // Python <; TemplateError for incomparable kinds.
  bool less(const Value& other) const;
  // str(): what {{ value }} prints ("" for undefined and None prints "None").
  std::string str() const;
  // repr(): how a value prints inside a list or dict.
  std::string repr() const;
  // json.dumps(value, ensure_ascii=False, indent, separators, sort_keys), as transformers' tojson.
  std::string to_json(int indent, bool sort_keys) const;
  // "string", "int", ... for error messages.
  std::string type_name() const;

 private:
  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool is_namespace_ = false;
  bool holds_reference_ = false;
  int depth_ = 0;
  int64_t i_ = 0;
  double d_ = 0;
  std::shared_ptr<const std::string> s_;
  std::shared_ptr<ValueList> list_;
  std::shared_ptr<ValueDict> dict_;
  std::shared_ptr<const Function> fn_;
};

// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keywords;
  // The argument at `index` or named `name`; `fallback` when absent.
  Value get(size_t index, std::string_view name, Value fallback = Value()) const;
};

// Python's repr of a float (shortest round-trip digits, "1e-05" style exponents, "2.0").
std::string format_python_float(double d);

}  // namespace longbow::jinja
