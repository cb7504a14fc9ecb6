#include "model/tokenizer/chat/jinja_interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>

#include "model/tokenizer/chat/jinja_builtins.h"
#include "model/tokenizer/chat/jinja_limits.h"

namespace longbow::jinja {
namespace {

// A variable scope; lookups walk to the parent.
struct Scope {
  ValueDict vars;
  const Scope* parent = nullptr;
  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s != nullptr; s = s->parent) {
      if (const Value* v = s->vars.find(name)) return v;
    }
    return nullptr;
  }
};

enum class Flow { kNormal, kBreak, kContinue };

// Output text, charged to the render's budget.
void append(std::string& out, const std::string& text) {
  RenderBudget::charge_text(text.size());
  RenderBudget::check_text(out.size() + text.size());
  out += text;
}

[[noreturn]] void overflow(int line) {
  throw TemplateError(fmt::format("line {}: integer overflow (beyond 64 bits)", line));
}

// base ** exponent (exponent >= 0) by squaring; nullopt when it does not fit 64 bits.
std::optional<int64_t> checked_power(int64_t base, int64_t exponent) {
  int64_t result = 1;
  while (true) {
    if ((exponent & 1) != 0 && __builtin_mul_overflow(result, base, &result)) return std::nullopt;
    exponent >>= 1;
    if (exponent == 0) return result;
    if (__builtin_mul_overflow(base, base, &base)) return std::nullopt;
  }
}

class Interpreter {
 public:
  explicit Interpreter(const Scope* root) : root_(root) {}

  Flow exec(const Body& body, Scope& scope, std::string& out) {
    for (const StmtPtr& stmt : body) {
      const Flow flow = exec(*stmt, scope, out);
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  Flow exec(const Stmt& s, Scope& scope, std::string& out) {
    const RenderBudget::Nested nested;
    RenderBudget::charge(1);
    switch (s.kind) {
      case Stmt::Kind::kText: append(out, s.text); return Flow::kNormal;
      case Stmt::Kind::kOutput: append(out, eval(*s.expr, scope).str()); return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (const auto& [condition, body] : s.branches) {
          if (eval(*condition, scope).truthy()) return exec(body, scope, out);
        }
        return exec(s.else_body, scope, out);
      case Stmt::Kind::kFor: return exec_for(s, scope, out);
      case Stmt::Kind::kSet: {
        Value value = eval(*s.expr, scope);
        if (!s.attribute.empty()) {
          const Value* target = scope.find(s.targets[0]);
          if (target == nullptr || !target->is_namespace()) {
            throw TemplateError(fmt::format("line {}: cannot assign attribute on non-namespace object '{}'", s.line,
                                            s.targets[0]));
          }
          if (value.holds_reference()) {
            throw TemplateError(fmt::format("line {}: a namespace attribute cannot hold a namespace or a function",
                                            s.line));
          }
          Value ns = *target;
          ns.mutable_dict().set(s.attribute, std::move(value));
          return Flow::kNormal;
        }
        assign(s.targets, std::move(value), scope, s.line);
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec(s.body, scope, captured);
        scope.vars.set(s.targets[0], Value(std::move(captured)));
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro: {
        const Stmt* macro = &s;
        scope.vars.set(s.text, Value::function(s.text, [this, macro](CallArgs& args) { return call_macro(*macro, args); }));
        return Flow::kNormal;
      }
      case Stmt::Kind::kBreak: return Flow::kBreak;
      case Stmt::Kind::kContinue: return Flow::kContinue;
      case Stmt::Kind::kBlock: return exec(s.body, scope, out);
    }
    return Flow::kNormal;
  }

  void assign(const std::vector<std::string>& targets, Value value, Scope& scope, int line) {
    if (targets.size() == 1) {
      scope.vars.set(targets[0], std::move(value));
      return;
    }
    const ValueList items = value.is_string() ? string_chars(value.as_string())
                            : value.is_list() ? value.as_list()
                                              : ValueList();
    if (items.size() != targets.size()) {
      throw TemplateError(fmt::format("line {}: cannot unpack {} values into {} names", line, items.size(), targets.size()));
    }
    for (size_t i = 0; i < targets.size(); ++i) scope.vars.set(targets[i], items[i]);
  }

  Flow exec_for(const Stmt& s, Scope& scope, std::string& out) {
    const Value iterable = eval(*s.expr, scope);
    ValueList items;
    switch (iterable.kind()) {
      case Value::Kind::kList: items = iterable.as_list(); break;
      case Value::Kind::kString: items = string_chars(iterable.as_string()); break;
      case Value::Kind::kUndefined: break;
      case Value::Kind::kDict:
        for (const auto& item : iterable.as_dict().items) items.emplace_back(item.first);
        break;
      default:
        throw TemplateError(fmt::format("line {}: '{}' object is not iterable", s.line, iterable.type_name()));
    }
    if (s.filter) {
      ValueList kept;
      for (const Value& item : items) {
        Scope probe;
        probe.parent = &scope;
        assign(s.targets, item, probe, s.line);
        if (eval(*s.filter, probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, scope, out);
    const auto length = static_cast<int64_t>(items.size());
    RenderBudget::charge(kStepsPerIteration * length);
    for (int64_t i = 0; i < length; ++i) {
      Scope inner;
      inner.parent = &scope;
      ValueDict loop;
      loop.set("index", Value(i + 1));
      loop.set("index0", Value(i));
      loop.set("revindex", Value(length - i));
      loop.set("revindex0", Value(length - i - 1));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == length - 1));
      loop.set("length", Value(length));
      loop.set("depth", Value(int64_t{1}));
      loop.set("depth0", Value(int64_t{0}));
      if (i > 0) loop.set("previtem", items[static_cast<size_t>(i - 1)]);
      if (i + 1 < length) loop.set("nextitem", items[static_cast<size_t>(i + 1)]);
      loop.set("cycle", Value::function("cycle", [i](CallArgs& a) -> Value {
        if (a.positional.empty()) throw TemplateError("loop.cycle needs at least one value");
        return a.positional[static_cast<size_t>(i) % a.positional.size()];
      }));
      inner.vars.set("loop", Value(std::move(loop)));
      assign(s.targets, items[static_cast<size_t>(i)], inner, s.line);
      const Flow flow = exec(s.body, inner, out);
      if (flow == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  Value call_macro(const Stmt& macro, CallArgs& args) {
    const RenderBudget::Nested nested;
    Scope scope;
    scope.parent = root_;
    for (size_t i = 0; i < macro.params.size(); ++i) {
      const auto& [name, fallback] = macro.params[i];
      Value v = args.get(i, name);
      if (v.is_undefined() && fallback) v = eval(*fallback, scope);
      scope.vars.set(name, v);
    }
    std::string out;
    exec(macro.body, scope, out);
    return Value(std::move(out));
  }

  CallArgs eval_args(const Expr& e, size_t first, Scope& scope) {
    CallArgs args;
    for (size_t i = first; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i], scope));
    for (const auto& [key, value] : e.kwargs) args.keywords.emplace_back(key, eval(*value, scope));
    return args;
  }

  Value eval(const Expr& e, Scope& scope) {
    const RenderBudget::Nested nested;
    RenderBudget::charge(1);
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: {
        const Value* v = scope.find(e.name);
        return v != nullptr ? *v : Value();
      }
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        ValueList items;
        for (const ExprPtr& item : e.args) items.push_back(eval(*item, scope));
        return Value(std::move(items));
      }
      case Expr::Kind::kDict: {
        ValueDict dict;
        for (size_t i = 0; i < e.keys.size(); ++i) {
          const Value key = eval(*e.keys[i], scope);
          if (!key.is_string()) throw TemplateError(fmt::format("line {}: dict keys must be strings", e.line));
          dict.set(key.as_string(), eval(*e.args[i], scope));
        }
        return Value(std::move(dict));
      }
      case Expr::Kind::kGetAttr: return get_attribute(eval(*e.args[0], scope), e.name);
      case Expr::Kind::kGetItem: return get_item(eval(*e.args[0], scope), eval(*e.args[1], scope));
      case Expr::Kind::kSlice: return slice(eval(*e.args[0], scope), e, scope);
      case Expr::Kind::kCall: {
        const Value callee = eval(*e.args[0], scope);
        if (callee.kind() != Value::Kind::kFunction) {
          throw TemplateError(fmt::format("line {}: '{}' is not callable", e.line,
                                          callee.is_undefined() ? describe(*e.args[0]) : callee.type_name()));
        }
        CallArgs args = eval_args(e, 1, scope);
        return callee.as_function()(args);
      }
      case Expr::Kind::kFilter: {
        const Value input = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, 1, scope);
        return apply_filter(e.name, input, args);
      }
      case Expr::Kind::kTest: {
        const Value input = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, 1, scope);
        return Value(apply_test(e.name, input, args) != e.negated);
      }
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.args[0], scope);
        if (e.name == "not") return Value(!v.truthy());
        if (v.kind() == Value::Kind::kInt) {
          int64_t negated = 0;
          if (e.name == "-" && __builtin_sub_overflow(int64_t{0}, v.as_int(), &negated)) overflow(e.line);
          return Value(e.name == "-" ? negated : v.as_int());
        }
        if (v.kind() == Value::Kind::kFloat) return Value(e.name == "-" ? -v.as_double() : v.as_double());
        throw TemplateError(fmt::format("line {}: bad operand type for unary {}: '{}'", e.line, e.name, v.type_name()));
      }
      case Expr::Kind::kBinary: return binary(e, scope);
      case Expr::Kind::kCompare: {
        Value left = eval(*e.args[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], scope);
          if (!compare(e.ops[i], left, right, e.line)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::kCondition: {
        if (eval(*e.args[1], scope).truthy()) return eval(*e.args[0], scope);
        return e.args[2] ? eval(*e.args[2], scope) : Value();
      }
    }
    return Value();
  }

  static std::string describe(const Expr& e) {
    if (e.kind == Expr::Kind::kName) return e.name;
    if (e.kind == Expr::Kind::kGetAttr) return describe(*e.args[0]) + "." + e.name;
    return "expression";
  }

  static bool compare(const std::string& op, const Value& a, const Value& b, int line) {
    if (op == "==") return a.equals(b);
    if (op == "!=") return !a.equals(b);
    if (op == "<") return a.less(b);
    if (op == ">") return b.less(a);
    if (op == "<=") return !b.less(a);
    if (op == ">=") return !a.less(b);
    const bool negate = op == "not in";
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) throw TemplateError(fmt::format("line {}: 'in <string>' requires string as left operand", line));
      found = b.as_string().find(a.as_string()) != std::string::npos;
    } else if (b.is_list()) {
      for (const Value& item : b.as_list()) found = found || item.equals(a);
    } else if (b.is_dict()) {
      found = a.is_string() && b.as_dict().find(a.as_string()) != nullptr;
    } else {
      throw TemplateError(fmt::format("line {}: argument of type '{}' is not iterable", line, b.type_name()));
    }
    return found != negate;
  }

  Value slice(const Value& object, const Expr& e, Scope& scope) {
    auto bound = [&](size_t i) -> std::optional<int64_t> {
      if (!e.args[i]) return std::nullopt;
      const Value v = eval(*e.args[i], scope);
      if (v.is_none()) return std::nullopt;
      if (v.kind() != Value::Kind::kInt) throw TemplateError(fmt::format("line {}: slice indices must be integers", e.line));
      return v.as_int();
    };
    const std::optional<int64_t> start_arg = bound(1), stop_arg = bound(2), step_arg = bound(3);
    const int64_t step = step_arg.value_or(1);
    if (step == 0) throw TemplateError(fmt::format("line {}: slice step cannot be zero", e.line));
    const ValueList items = object.is_string() ? string_chars(object.as_string())
                            : object.is_list() ? object.as_list()
                                               : throw TemplateError(fmt::format("line {}: cannot slice '{}'", e.line,
                                                                                 object.type_name()));
    const auto n = static_cast<int64_t>(items.size());
    RenderBudget::charge(n);
    auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
      if (!v) return fallback;
      int64_t x = *v < 0 ? *v + n : *v;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t start = clamp(start_arg, step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(stop_arg, step > 0 ? n : -1);
    ValueList out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(items[static_cast<size_t>(i)]);
    if (object.is_string()) {
      std::string s;
      for (const Value& c : out) s += c.as_string();
      return Value(s);
    }
    return Value(std::move(out));
  }

  Value binary(const Expr& e, Scope& scope) {
    if (e.name == "and") {
      Value left = eval(*e.args[0], scope);
      return left.truthy() ? eval(*e.args[1], scope) : left;
    }
    if (e.name == "or") {
      Value left = eval(*e.args[0], scope);
      return left.truthy() ? left : eval(*e.args[1], scope);
    }
    const Value a = eval(*e.args[0], scope);
    const Value b = eval(*e.args[1], scope);
    const std::string& op = e.name;
    if (op == "~") {
      std::string left = a.str();
      const std::string right = b.str();
      RenderBudget::charge_text(left.size() + right.size());
      return Value(left + right);
    }
    auto fail = [&]() -> Value {
      throw TemplateError(fmt::format("line {}: unsupported operand type(s) for {}: '{}' and '{}'", e.line, op,
                                      a.type_name(), b.type_name()));
    };
    const bool ints = (a.kind() == Value::Kind::kInt || a.kind() == Value::Kind::kBool) &&
                      (b.kind() == Value::Kind::kInt || b.kind() == Value::Kind::kBool);
    auto as_int = [](const Value& v) { return v.kind() == Value::Kind::kBool ? int64_t{v.as_bool()} : v.as_int(); };
    const bool nums = (a.is_number() || a.kind() == Value::Kind::kBool) && (b.is_number() || b.kind() == Value::Kind::kBool);
    auto as_num = [](const Value& v) { return v.kind() == Value::Kind::kBool ? (v.as_bool() ? 1.0 : 0.0) : v.as_double(); };
    int64_t result = 0;
    if (op == "+") {
      if (ints) {
        if (__builtin_add_overflow(as_int(a), as_int(b), &result)) overflow(e.line);
        return Value(result);
      }
      if (nums) return Value(as_num(a) + as_num(b));
      if (a.is_string() && b.is_string()) {
        RenderBudget::charge_text(a.as_string().size() + b.as_string().size());
        return Value(a.as_string() + b.as_string());
      }
      if (a.is_list() && b.is_list()) {
        RenderBudget::charge(static_cast<int64_t>(a.as_list().size() + b.as_list().size()));
        ValueList items = a.as_list();
        items.insert(items.end(), b.as_list().begin(), b.as_list().end());
        return Value(std::move(items));
      }
      return fail();
    }
    if (op == "-") {
      if (ints) {
        if (__builtin_sub_overflow(as_int(a), as_int(b), &result)) overflow(e.line);
        return Value(result);
      }
      if (nums) return Value(as_num(a) - as_num(b));
      return fail();
    }
    if (op == "*") {
      if (ints) {
        if (__builtin_mul_overflow(as_int(a), as_int(b), &result)) overflow(e.line);
        return Value(result);
      }
      if (nums) return Value(as_num(a) * as_num(b));
      const Value* text = a.is_string() ? &a : b.is_string() ? &b : nullptr;
      const Value* count = a.is_string() ? &b : &a;
      if (text != nullptr && (count->kind() == Value::Kind::kInt || count->kind() == Value::Kind::kBool)) {
        const std::string& unit = text->as_string();
        const int64_t times = std::max<int64_t>(as_int(*count), 0);
        if (!unit.empty() && static_cast<uint64_t>(times) > kMaxTextBytes / unit.size()) {
          RenderBudget::check_text(kMaxTextBytes + 1);
        }
        const size_t total = unit.size() * static_cast<size_t>(times);
        RenderBudget::charge_text(total);
        std::string out;
        out.reserve(total);
        if (times > 0) out = unit;
        while (out.size() < total) out.append(out, 0, std::min(out.size(), total - out.size()));
        return Value(std::move(out));
      }
      return fail();
    }
    if (!nums) return fail();
    if (op == "/") {
      if (as_num(b) == 0) throw TemplateError(fmt::format("line {}: division by zero", e.line));
      return Value(as_num(a) / as_num(b));
    }
    if (op == "//" || op == "%") {
      if (as_num(b) == 0) throw TemplateError(fmt::format("line {}: integer division or modulo by zero", e.line));
      if (ints) {
        const int64_t x = as_int(a), y = as_int(b);
        if (x == std::numeric_limits<int64_t>::min() && y == -1) overflow(e.line);
        int64_t q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) --q;  // Python floors
        return op == "//" ? Value(q) : Value(x - q * y);
      }
      const double q = std::floor(as_num(a) / as_num(b));
      return op == "//" ? Value(q) : Value(as_num(a) - q * as_num(b));
    }
    if (op == "**") {
      if (ints && as_int(b) >= 0) {
        const std::optional<int64_t> power = checked_power(as_int(a), as_int(b));
        if (!power) overflow(e.line);
        return Value(*power);
      }
      return Value(std::pow(as_num(a), as_num(b)));
    }
    return fail();
  }

  const Scope* root_;
};

}  // namespace

std::string render_template(const Body& body, const ValueDict& globals) {
  Scope root;
  root.vars = globals;
  // Top-level statements write into a child of the globals' scope; macros see both (their scope's
  // parent is the top level, as template-level variables are visible to jinja2 macros).
  Scope top;
  top.parent = &root;
  Interpreter interpreter(&top);
  const RenderBudget budget;
  std::string out;
  interpreter.exec(body, top, out);
  return out;
}

}  // namespace longbow::jinja
