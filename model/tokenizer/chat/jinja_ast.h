// The syntax tree of a parsed Jinja template: expressions and statements.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/tokenizer/chat/jinja_value.h"

namespace longbow::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // items
    kTuple,      // items
    kDict,       // keys[i]: items[i]
    kGetAttr,    // object.name
    kGetItem,    // object[args[0]]
    kSlice,      // object[args[0]:args[1]:args[2]] (null: omitted)
    kCall,       // object(args, kwargs)
    kFilter,     // args[0] | name(args[1:], kwargs)
    kTest,       // args[0] is [not] name(args[1:])
    kUnary,      // op args[0]   ("not", "-", "+")
    kBinary,     // args[0] op args[1]
    kCompare,    // args[0] ops[0] args[1] ops[1] args[2] ...
    kCondition,  // args[0] if args[1] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;  // name, attribute, filter or test name, or operator
  bool negated = false;  // "is not"
  std::vector<ExprPtr> args;
  std::vector<ExprPtr> keys;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // branches: (condition, body)...; else_body
    kFor,       // targets in expr [if filter]: body; else_body
    kSet,       // targets (or target.attribute) = expr
    kSetBlock,  // {% set target %}body{% endset %}
    kMacro,     // name(params with defaults): body
    kBreak,
    kContinue,
    kBlock,     // a body rendered in place ({% generation %})
  };
  Kind kind;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;                  // for: the "if" filter
  std::vector<std::string> targets;
  std::string attribute;           // set ns.attribute
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body;
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters (default may be null)
};

}  // namespace longbow::jinja
