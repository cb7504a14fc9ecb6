#include "model/tokenizer/chat/jinja_parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "model/tokenizer/chat/jinja_lexer.h"
#include "model/tokenizer/chat/jinja_limits.h"

namespace longbow::jinja {
namespace {

// The height of an expression tree (a leaf is 1), without recursion: operator chains such as
// a + b + c ... build deep trees iteratively, and evaluating one recurses as deep.
int expression_height(const Expr& root) {
  int height = 0;
  std::vector<std::pair<const Expr*, int>> pending{{&root, 1}};
  while (!pending.empty()) {
    const auto [e, depth] = pending.back();
    pending.pop_back();
    height = std::max(height, depth);
    for (const ExprPtr& child : e->args) {
      if (child) pending.emplace_back(child.get(), depth + 1);
    }
    for (const ExprPtr& child : e->keys) pending.emplace_back(child.get(), depth + 1);
    for (const auto& [name, child] : e->kwargs) pending.emplace_back(child.get(), depth + 1);
  }
  return height;
}

// Parses the tokens of one tag.
class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : tokens_(std::move(tokens)), line_(line) {}

  // Counts one level of the parser's own recursion for its lifetime.
  class Nested {
   public:
    explicit Nested(ExprParser* parser) : parser_(parser) {
      if (++parser_->depth_ > kMaxExpressionDepth) {
        parser_->fail(fmt::format("expression nested deeper than {} levels", kMaxExpressionDepth));
      }
    }
    ~Nested() { --parser_->depth_; }
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;

   private:
    ExprParser* parser_;
  };

  const Token& peek(size_t ahead = 0) const { return tokens_[std::min(pos_ + ahead, tokens_.size() - 1)]; }
  bool at_end() const { return peek().kind == Token::Kind::kEnd; }
  bool is_op(std::string_view op, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kOperator && peek(ahead).text == op;
  }
  bool is_name(std::string_view name, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::kName && peek(ahead).text == name;
  }
  Token next() {
    Token t = peek();
    if (pos_ < tokens_.size() - 1) ++pos_;
    return t;
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw TemplateError(fmt::format("line {}: {} (at '{}')", line_, what, at_end() ? "end of tag" : peek().text));
  }
  void expect_op(std::string_view op) {
    if (!is_op(op)) fail(fmt::format("expected '{}'", op));
    next();
  }
  std::string expect_name() {
    if (peek().kind != Token::Kind::kName) fail("expected a name");
    return next().text;
  }
  void expect_end() {
    if (!at_end()) fail("unexpected token");
  }

  ExprPtr make(Expr::Kind kind) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line_;
    return e;
  }

  // expression := or_expr ["if" or_expr ["else" expression]]
  ExprPtr expression(bool with_condition = true) {
    const Nested nested(this);
    ExprPtr e = condition(with_condition);
    if (depth_ == 1 && expression_height(*e) > kMaxExpressionDepth) {
      fail(fmt::format("expression nested deeper than {} levels", kMaxExpressionDepth));
    }
    return e;
  }
  ExprPtr condition(bool with_condition) {
    ExprPtr e = or_expr();
    if (with_condition && is_name("if")) {
      next();
      auto c = make(Expr::Kind::kCondition);
      c->args.push_back(std::move(e));
      c->args.push_back(or_expr());
      if (is_name("else")) {
        next();
        c->args.push_back(expression());
      } else {
        c->args.push_back(nullptr);
      }
      return c;
    }
    return e;
  }
  ExprPtr binary(ExprPtr left, std::string op, ExprPtr right) {
    auto b = make(Expr::Kind::kBinary);
    b->name = std::move(op);
    b->args.push_back(std::move(left));
    b->args.push_back(std::move(right));
    return b;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      next();
      e = binary(std::move(e), "or", and_expr());
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      next();
      e = binary(std::move(e), "and", not_expr());
    }
    return e;
  }
  ExprPtr not_expr() {
    const Nested nested(this);
    if (is_name("not")) {
      next();
      auto u = make(Expr::Kind::kUnary);
      u->name = "not";
      u->args.push_back(not_expr());
      return u;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr first = math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (is_op("==") || is_op("!=") || is_op("<") || is_op(">") || is_op("<=") || is_op(">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      std::string op = next().text;
      e = binary(std::move(e), op, concat());
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      next();
      e = binary(std::move(e), "~", math2());
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = next().text;
      e = binary(std::move(e), op, power());
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary();
    while (is_op("**")) {
      next();
      e = binary(std::move(e), "**", unary());
    }
    return e;
  }
  ExprPtr unary(bool with_filter = true) {
    const Nested nested(this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      auto u = make(Expr::Kind::kUnary);
      u->name = next().text;
      u->args.push_back(unary(false));
      e = std::move(u);
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filters(std::move(e));
    return e;
  }
  ExprPtr primary() {
    const Token t = next();
    switch (t.kind) {
      case Token::Kind::kString: {
        std::string s = t.text;
        while (peek().kind == Token::Kind::kString) s += next().text;  // adjacent literals join
        auto e = make(Expr::Kind::kLiteral);
        e->value = Value(std::move(s));
        return e;
      }
      case Token::Kind::kInt: {
        auto e = make(Expr::Kind::kLiteral);
        e->value = Value(static_cast<int64_t>(std::strtoll(t.text.c_str(), nullptr, 10)));
        return e;
      }
      case Token::Kind::kFloat: {
        auto e = make(Expr::Kind::kLiteral);
        e->value = Value(std::strtod(t.text.c_str(), nullptr));
        return e;
      }
      case Token::Kind::kName: {
        auto e = make(Expr::Kind::kLiteral);
        if (t.text == "true" || t.text == "True") {
          e->value = Value(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::kName;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::kOperator:
        if (t.text == "(") {
          if (is_op(")")) {
            next();
            return make(Expr::Kind::kTuple);
          }
          ExprPtr first = expression();
          if (is_op(",")) {
            auto tuple = make(Expr::Kind::kTuple);
            tuple->args.push_back(std::move(first));
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              tuple->args.push_back(expression());
            }
            expect_op(")");
            return tuple;
          }
          expect_op(")");
          return first;
        }
        if (t.text == "[") {
          auto list = make(Expr::Kind::kList);
          while (!is_op("]")) {
            list->args.push_back(expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("]");
          return list;
        }
        if (t.text == "{") {
          auto dict = make(Expr::Kind::kDict);
          while (!is_op("}")) {
            dict->keys.push_back(expression());
            expect_op(":");
            dict->args.push_back(expression());
            if (!is_op(",")) break;
            next();
          }
          expect_op("}");
          return dict;
        }
        break;
      case Token::Kind::kEnd:
        break;
    }
    throw TemplateError(fmt::format("line {}: unexpected '{}' in an expression", line_,
                                    t.kind == Token::Kind::kEnd ? "end of tag" : t.text));
  }
  void call_arguments(Expr* call) {
    expect_op("(");
    while (!is_op(")")) {
      if (peek().kind == Token::Kind::kName && is_op("=", 1)) {
        std::string key = next().text;
        next();
        call->kwargs.emplace_back(std::move(key), expression());
      } else {
        call->args.push_back(expression());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }
  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        next();
        auto g = make(Expr::Kind::kGetAttr);
        if (peek().kind == Token::Kind::kInt) {
          g->kind = Expr::Kind::kGetItem;
          auto index = make(Expr::Kind::kLiteral);
          index->value = Value(static_cast<int64_t>(std::strtoll(next().text.c_str(), nullptr, 10)));
          g->args.push_back(std::move(e));
          g->args.push_back(std::move(index));
        } else {
          g->name = expect_name();
          g->args.push_back(std::move(e));
        }
        e = std::move(g);
      } else if (is_op("[")) {
        next();
        ExprPtr parts[3];
        int colons = 0;
        if (!is_op(":")) parts[0] = expression();
        while (is_op(":") && colons < 2) {
          next();
          ++colons;
          if (!is_op(":") && !is_op("]")) parts[colons] = expression();
        }
        expect_op("]");
        auto g = make(colons > 0 ? Expr::Kind::kSlice : Expr::Kind::kGetItem);
        g->args.push_back(std::move(e));
        if (colons > 0) {
          for (auto& p : parts) g->args.push_back(std::move(p));
        } else {
          if (!parts[0]) fail("empty subscript");
          g->args.push_back(std::move(parts[0]));
        }
        e = std::move(g);
      } else if (is_op("(")) {
        auto c = make(Expr::Kind::kCall);
        c->args.push_back(std::move(e));
        call_arguments(c.get());
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  ExprPtr filters(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        auto f = make(Expr::Kind::kFilter);
        f->name = expect_name();
        while (is_op(".")) {  // dotted filter names do not exist in the chat environment; keep the error clear
          next();
          f->name += "." + expect_name();
        }
        f->args.push_back(std::move(e));
        if (is_op("(")) call_arguments(f.get());
        e = std::move(f);
      } else if (is_name("is")) {
        next();
        auto t = make(Expr::Kind::kTest);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          call_arguments(t.get());
        } else if (!at_end() && (peek().kind == Token::Kind::kString || peek().kind == Token::Kind::kInt ||
                                 peek().kind == Token::Kind::kFloat ||
                                 (peek().kind == Token::Kind::kName && !is_name("and") && !is_name("or") &&
                                  !is_name("else") && !is_name("if") && !is_name("is") && !is_name("in") &&
                                  !is_name("not")))) {
          t->args.push_back(unary(false));  // "is divisibleby 3", "is equalto x"
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }
  // Assignment targets: "a", "a, b", "(a, b)".
  std::vector<std::string> targets() {
    std::vector<std::string> names;
    const bool paren = is_op("(");
    if (paren) next();
    names.push_back(expect_name());
    while (is_op(",")) {
      next();
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return names;
  }

 private:
  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int line_;
  int depth_ = 0;
};

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Segment> segments) : segments_(std::move(segments)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, &end);
    return body;
  }

 private:
  // Parses statements until one whose keyword is in `stops`; *stop gets that keyword and
  // stop_parser_ its remaining tokens.
  Body parse_body(const std::vector<std::string_view>& stops, std::string* stop) {
    Body body;
    while (pos_ < segments_.size()) {
      const Segment& seg = segments_[pos_++];
      if (seg.kind == Segment::Kind::kText) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kText;
        s->text = seg.text;
        body.push_back(std::move(s));
        continue;
      }
      auto parser = std::make_unique<ExprParser>(tokenize_expression(seg.text, seg.line), seg.line);
      if (seg.kind == Segment::Kind::kExpression) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::kOutput;
        s->line = seg.line;
        s->expr = parser->expression();
        parser->expect_end();
        body.push_back(std::move(s));
        continue;
      }
      if (parser->at_end()) throw TemplateError(fmt::format("line {}: empty statement tag", seg.line));
      const std::string keyword = parser->expect_name();
      for (std::string_view s : stops) {
        if (keyword == s) {
          *stop = keyword;
          stop_parser_ = std::move(parser);
          return body;
        }
      }
      body.push_back(statement(keyword, *parser, seg.line));
    }
    if (!stops.empty()) {
      throw TemplateError(fmt::format("unexpected end of template: expected '{}'", stops.back()));
    }
    return body;
  }

  StmtPtr statement(const std::string& keyword, ExprParser& p, int line) {
    if (++depth_ > kMaxStatementDepth) {
      throw TemplateError(fmt::format("line {}: statements nested deeper than {} levels", line, kMaxStatementDepth));
    }
    StmtPtr s = statement_body(keyword, p, line);
    --depth_;
    return s;
  }

  StmtPtr statement_body(const std::string& keyword, ExprParser& p, int line) {
    auto s = std::make_unique<Stmt>();
    s->line = line;
    if (keyword == "if") {
      s->kind = Stmt::Kind::kIf;
      ExprPtr condition = p.expression();
      p.expect_end();
      while (true) {
        std::string stop;
        Body body = parse_body({"elif", "else", "endif"}, &stop);
        s->branches.emplace_back(std::move(condition), std::move(body));
        if (stop == "elif") {
          condition = stop_parser_->expression();
          stop_parser_->expect_end();
          continue;
        }
        stop_parser_->expect_end();
        if (stop == "else") {
          s->else_body = parse_body({"endif"}, &stop);
          stop_parser_->expect_end();
        }
        break;
      }
      return s;
    }
    if (keyword == "for") {
      s->kind = Stmt::Kind::kFor;
      s->targets = p.targets();
      if (!p.is_name("in")) p.fail("expected 'in'");
      p.next();
      s->expr = p.expression(/*with_condition=*/false);
      if (p.is_name("if")) {
        p.next();
        s->filter = p.expression(false);
      }
      if (p.is_name("recursive")) p.fail("recursive loops are not supported");
      p.expect_end();
      std::string stop;
      s->body = parse_body({"else", "endfor"}, &stop);
      stop_parser_->expect_end();
      if (stop == "else") {
        s->else_body = parse_body({"endfor"}, &stop);
        stop_parser_->expect_end();
      }
      return s;
    }
    if (keyword == "set") {
      std::vector<std::string> names = p.targets();
      if (names.size() == 1 && p.is_op(".")) {
        p.next();
        s->attribute = p.expect_name();
      }
      s->targets = std::move(names);
      if (p.at_end()) {
        if (!s->attribute.empty()) p.fail("a block set cannot assign an attribute");
        s->kind = Stmt::Kind::kSetBlock;
        std::string stop;
        s->body = parse_body({"endset"}, &stop);
        stop_parser_->expect_end();
        return s;
      }
      s->kind = Stmt::Kind::kSet;
      p.expect_op("=");
      ExprPtr value = p.expression();
      if (p.is_op(",")) {  // set a, b = x, y
        auto tuple = p.make(Expr::Kind::kTuple);
        tuple->args.push_back(std::move(value));
        while (p.is_op(",")) {
          p.next();
          tuple->args.push_back(p.expression());
        }
        value = std::move(tuple);
      }
      s->expr = std::move(value);
      p.expect_end();
      return s;
    }
    if (keyword == "macro") {
      s->kind = Stmt::Kind::kMacro;
      s->text = p.expect_name();
      p.expect_op("(");
      while (!p.is_op(")")) {
        std::string param = p.expect_name();
        ExprPtr fallback;
        if (p.is_op("=")) {
          p.next();
          fallback = p.expression();
        }
        s->params.emplace_back(std::move(param), std::move(fallback));
        if (!p.is_op(",")) break;
        p.next();
      }
      p.expect_op(")");
      p.expect_end();
      std::string stop;
      s->body = parse_body({"endmacro"}, &stop);
      return s;
    }
    if (keyword == "break" || keyword == "continue") {
      p.expect_end();
      s->kind = keyword == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
      return s;
    }
    if (keyword == "generation") {
      p.expect_end();
      s->kind = Stmt::Kind::kBlock;
      std::string stop;
      s->body = parse_body({"endgeneration"}, &stop);
      stop_parser_->expect_end();
      return s;
    }
    throw TemplateError(fmt::format("line {}: the '{{% {} %}}' statement is not supported by longbow's chat template "
                                    "interpreter", line, keyword));
  }

  std::vector<Segment> segments_;
  size_t pos_ = 0;
  int depth_ = 0;
  std::unique_ptr<ExprParser> stop_parser_;
};

}  // namespace

Body parse_template(std::string_view source) {
  TemplateParser parser(split_template(source));
  return parser.parse_all();
}

}  // namespace longbow::jinja
