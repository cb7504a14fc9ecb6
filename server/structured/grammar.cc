#include "server/structured/grammar.h"

#include <utility>

#include <fmt/format.h>

namespace longbow::structured {

ExprPtr bytes_expr(const ByteSet& set) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kBytes;
  e->bytes = set;
  return e;
}

ExprPtr byte_expr(uint8_t byte) {
  ByteSet set;
  set.set(byte);
  return bytes_expr(set);
}

ExprPtr literal(std::string_view text) {
  std::vector<ExprPtr> parts;
  parts.reserve(text.size());
  for (const char c : text) parts.push_back(byte_expr(static_cast<uint8_t>(c)));
  return seq(std::move(parts));
}

ExprPtr seq(std::vector<ExprPtr> parts) {
  if (parts.size() == 1) return parts[0];
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kSeq;
  e->children = std::move(parts);
  return e;
}

ExprPtr alt(std::vector<ExprPtr> options) {
  if (options.size() == 1) return options[0];
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kAlt;
  e->children = std::move(options);
  return e;
}

ExprPtr repeat(ExprPtr body, int min, int max) {
  if (min == 1 && max == 1) return body;
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kRepeat;
  e->children.push_back(std::move(body));
  e->min = min;
  e->max = max;
  return e;
}

ExprPtr optional(ExprPtr body) { return repeat(std::move(body), 0, 1); }

ExprPtr rule_ref(int rule) {
  auto e = std::make_shared<Expr>();
  e->kind = Expr::Kind::kRuleRef;
  e->rule = rule;
  return e;
}

ExprPtr epsilon() { return seq({}); }

int GrammarBuilder::declare_rule(std::string name) {
  names_.push_back(std::move(name));
  bodies_.push_back(nullptr);
  return static_cast<int>(names_.size()) - 1;
}

void GrammarBuilder::define_rule(int rule, ExprPtr body) { bodies_.at(static_cast<size_t>(rule)) = std::move(body); }

namespace {

// Whether `e` derives the empty string, given which rules do.
bool expr_nullable(const Expr& e, const std::vector<bool>& rule_nullable) {
  switch (e.kind) {
    case Expr::Kind::kBytes: return false;
    case Expr::Kind::kSeq:
      for (const ExprPtr& c : e.children) {
        if (!expr_nullable(*c, rule_nullable)) return false;
      }
      return true;
    case Expr::Kind::kAlt:
      for (const ExprPtr& c : e.children) {
        if (expr_nullable(*c, rule_nullable)) return true;
      }
      return false;
    case Expr::Kind::kRepeat: return e.min == 0 || expr_nullable(*e.children[0], rule_nullable);
    case Expr::Kind::kRuleRef:
      return e.rule < 0 || static_cast<size_t>(e.rule) >= rule_nullable.size() || rule_nullable[static_cast<size_t>(e.rule)];
  }
  return true;
}

// Lowers Expr trees into a Grammar. Alternatives of a rule are emitted contiguously, so helper rules
// created while lowering one alternative are first collected as pending bodies and emitted after it.
class Lowerer {
 public:
  Lowerer(Grammar& g, size_t max_elements, std::vector<bool> rule_nullable)
      : g_(g), max_elements_(max_elements), rule_nullable_(std::move(rule_nullable)) {}

  Status add_rule_alternatives(int rule, const std::vector<ExprPtr>& alternatives) {
    for (const ExprPtr& a : alternatives) {
      std::vector<Element> run;
      if (Status s = lower(*a, run); !s.ok()) return s;
      g_.rules[static_cast<size_t>(rule)].push_back(static_cast<int32_t>(g_.elements.size()));
      g_.elements.insert(g_.elements.end(), run.begin(), run.end());
      g_.elements.push_back(Element{Element::Kind::kEnd, -1});
      if (g_.elements.size() > max_elements_) {
        return resource_exhausted(fmt::format("grammar exceeds {} elements (bounds too large)", max_elements_));
      }
    }
    return Status::Ok();
  }

  // Emits the helper rules created so far; they may create more.
  Status flush() {
    while (!pending_.empty()) {
      auto [rule, alternatives] = std::move(pending_.back());
      pending_.pop_back();
      if (Status s = add_rule_alternatives(rule, alternatives); !s.ok()) return s;
    }
    return Status::Ok();
  }

 private:
  int new_helper(const std::string& name, std::vector<ExprPtr> alternatives) {
    g_.rules.emplace_back();
    g_.rule_names.push_back(name);
    const int id = static_cast<int>(g_.rules.size()) - 1;
    pending_.emplace_back(id, std::move(alternatives));
    return id;
  }

  Element ref(int rule) { return Element{Element::Kind::kRule, rule}; }

  // One element standing for `e`: itself when it lowers to a single element, else a helper rule.
  Status single(const ExprPtr& e, Element& out) {
    std::vector<Element> run;
    if (Status s = lower(*e, run); !s.ok()) return s;
    if (run.size() == 1) {
      out = run[0];
      return Status::Ok();
    }
    g_.rules.emplace_back();
    g_.rule_names.push_back("group");
    const int group = static_cast<int>(g_.rules.size()) - 1;
    emit_now(group, {run});
    out = ref(group);
    return Status::Ok();
  }

  Status lower(const Expr& e, std::vector<Element>& out) {
    if (++steps_ > max_elements_) return resource_exhausted("grammar too large");
    switch (e.kind) {
      case Expr::Kind::kBytes:
        g_.byte_sets.push_back(e.bytes);
        out.push_back(Element{Element::Kind::kBytes, static_cast<int32_t>(g_.byte_sets.size()) - 1});
        return Status::Ok();
      case Expr::Kind::kSeq:
        for (const ExprPtr& c : e.children) {
          if (Status s = lower(*c, out); !s.ok()) return s;
        }
        return Status::Ok();
      case Expr::Kind::kAlt:
        out.push_back(ref(new_helper("alt", e.children)));
        return Status::Ok();
      case Expr::Kind::kRuleRef:
        out.push_back(ref(e.rule));
        return Status::Ok();
      case Expr::Kind::kRepeat: {
        if (e.max != kUnbounded && (e.max < e.min || e.min < 0)) {
          return invalid_argument(fmt::format("bad repetition bounds {{{},{}}}", e.min, e.max));
        }
        if (e.max == 0) return Status::Ok();
        Element body;
        if (Status s = single(e.children[0], body); !s.ok()) return s;
        if (!(e.max == 1 && e.min <= 1) && !expr_nullable(*e.children[0], rule_nullable_)) {
          int body_rule = body.index;
          if (body.kind != Element::Kind::kRule) {
            g_.rules.emplace_back();
            g_.rule_names.push_back("loop_body");
            body_rule = static_cast<int>(g_.rules.size()) - 1;
            emit_now(body_rule, {{body}});
          }
          g_.loops.push_back(Loop{body_rule, e.min, e.max});
          out.push_back(Element{Element::Kind::kLoop, static_cast<int32_t>(g_.loops.size()) - 1});
          return Status::Ok();
        }
        for (int i = 0; i < e.min; ++i) out.push_back(body);
        if (e.max == kUnbounded) {
          // star ::= body star | epsilon  (self-reference in tail position)
          g_.rules.emplace_back();
          g_.rule_names.push_back("star");
          const int star = static_cast<int>(g_.rules.size()) - 1;
          emit_now(star, {{body, ref(star)}, {}});
          out.push_back(ref(star));
          return Status::Ok();
        }
        // opt_k ::= body opt_{k-1} | epsilon, opt_1 ::= body | epsilon
        int prev = -1;
        for (int k = 1; k <= e.max - e.min; ++k) {
          g_.rules.emplace_back();
          g_.rule_names.push_back(fmt::format("upto{}", k));
          const int opt = static_cast<int>(g_.rules.size()) - 1;
          if (prev < 0) {
            emit_now(opt, {{body}, {}});
          } else {
            emit_now(opt, {{body, ref(prev)}, {}});
          }
          prev = opt;
          if (g_.elements.size() > max_elements_) return resource_exhausted("grammar too large");
        }
        if (prev >= 0) out.push_back(ref(prev));
        return Status::Ok();
      }
    }
    return internal_error("unknown expression kind");
  }

  // Emits a rule made only of already-lowered elements (no nested lowering, so contiguity holds).
  void emit_now(int rule, const std::vector<std::vector<Element>>& alternatives) {
    for (const auto& run : alternatives) {
      g_.rules[static_cast<size_t>(rule)].push_back(static_cast<int32_t>(g_.elements.size()));
      g_.elements.insert(g_.elements.end(), run.begin(), run.end());
      g_.elements.push_back(Element{Element::Kind::kEnd, -1});
    }
  }

  Grammar& g_;
  size_t max_elements_;
  std::vector<bool> rule_nullable_;
  size_t steps_ = 0;
  std::vector<std::pair<int, std::vector<ExprPtr>>> pending_;
};

// Drops alternatives that cannot derive a finite string (an empty byte set or a rule with no such
// alternative): the matcher may then assume every live stack can still complete.
void prune_unproductive(Grammar& g) {
  const size_t n = g.rules.size();
  std::vector<bool> productive(n, false);
  auto alt_ok = [&](int32_t start) {
    for (int32_t p = start; g.elements[static_cast<size_t>(p)].kind != Element::Kind::kEnd; ++p) {
      const Element& el = g.elements[static_cast<size_t>(p)];
      if (el.kind == Element::Kind::kBytes && g.byte_sets[static_cast<size_t>(el.index)].none()) return false;
      if (el.kind == Element::Kind::kRule && !productive[static_cast<size_t>(el.index)]) return false;
      if (el.kind == Element::Kind::kLoop) {
        const Loop& loop = g.loops[static_cast<size_t>(el.index)];
        if (loop.min > 0 && !productive[static_cast<size_t>(loop.body_rule)]) return false;
      }
    }
    return true;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < n; ++r) {
      if (productive[r]) continue;
      for (const int32_t start : g.rules[r]) {
        if (alt_ok(start)) {
          productive[r] = true;
          changed = true;
          break;
        }
      }
    }
  }
  for (auto& alternatives : g.rules) {
    std::vector<int32_t> kept;
    for (const int32_t start : alternatives) {
      if (alt_ok(start)) kept.push_back(start);
    }
    alternatives = std::move(kept);
  }
}

// Grammar::first / may_pass by a fixed point over positions (each position depends on the rules it
// references and on the next position).
void compute_first_sets(Grammar& g) {
  const size_t n = g.elements.size();
  g.first.assign(n, ByteSet());
  g.may_pass.assign(n, false);
  std::vector<ByteSet> rule_first(g.rules.size());
  std::vector<bool> rule_nullable(g.rules.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t p = n; p-- > 0;) {
      const Element& el = g.elements[p];
      ByteSet f;
      bool pass = false;
      switch (el.kind) {
        case Element::Kind::kEnd: pass = true; break;
        case Element::Kind::kBytes: f = g.byte_sets[static_cast<size_t>(el.index)]; break;
        case Element::Kind::kRule: {
          const auto r = static_cast<size_t>(el.index);
          f = rule_first[r];
          if (rule_nullable[r]) {
            f |= g.first[p + 1];
            pass = g.may_pass[p + 1];
          }
          break;
        }
        case Element::Kind::kLoop: {
          const Loop& loop = g.loops[static_cast<size_t>(el.index)];
          f = rule_first[static_cast<size_t>(loop.body_rule)] | g.first[p + 1];
          pass = g.may_pass[p + 1];  // a superset: iterations done may already reach min
          break;
        }
      }
      if (f != g.first[p] || pass != g.may_pass[p]) {
        g.first[p] = f;
        g.may_pass[p] = pass;
        changed = true;
      }
    }
    for (size_t r = 0; r < g.rules.size(); ++r) {
      ByteSet f;
      bool nullable = false;
      for (const int32_t start : g.rules[r]) {
        f |= g.first[static_cast<size_t>(start)];
        // An alternative that can reach its kEnd without a byte makes the rule nullable.
        bool empty = true;
        for (int32_t q = start; g.elements[static_cast<size_t>(q)].kind != Element::Kind::kEnd; ++q) {
          const Element& el = g.elements[static_cast<size_t>(q)];
          const bool el_nullable =
              (el.kind == Element::Kind::kRule && rule_nullable[static_cast<size_t>(el.index)]) ||
              (el.kind == Element::Kind::kLoop && g.loops[static_cast<size_t>(el.index)].min == 0);
          if (!el_nullable) {
            empty = false;
            break;
          }
        }
        nullable = nullable || empty;
      }
      if (f != rule_first[r] || nullable != rule_nullable[r]) {
        rule_first[r] = f;
        rule_nullable[r] = nullable;
        changed = true;
      }
    }
  }
}

std::string byte_set_to_string(const ByteSet& set) {
  if (set.count() == 1) {
    for (int b = 0; b < 256; ++b) {
      if (set.test(static_cast<size_t>(b))) {
        if (b >= 0x21 && b < 0x7f && b != '\'' && b != '\\') return fmt::format("'{}'", static_cast<char>(b));
        return fmt::format("\\x{:02x}", b);
      }
    }
  }
  std::string out = "[";
  for (int b = 0; b < 256;) {
    if (!set.test(static_cast<size_t>(b))) {
      ++b;
      continue;
    }
    int e = b;
    while (e + 1 < 256 && set.test(static_cast<size_t>(e + 1))) ++e;
    out += e == b ? fmt::format("\\x{:02x}", b) : fmt::format("\\x{:02x}-\\x{:02x}", b, e);
    b = e + 1;
  }
  return out + "]";
}

}  // namespace

StatusOr<Grammar> GrammarBuilder::build(int root, size_t max_elements) const {
  Grammar g;
  g.rules.resize(names_.size());
  g.rule_names = names_;
  g.root = root;
  // Rule nullability (a fixed point over the bodies) decides which repetitions become counted loops.
  std::vector<bool> nullable(names_.size(), false);
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t r = 0; r < bodies_.size(); ++r) {
      if (!nullable[r] && bodies_[r] && expr_nullable(*bodies_[r], nullable)) {
        nullable[r] = true;
        changed = true;
      }
    }
  }
  Lowerer lowerer(g, max_elements, std::move(nullable));
  for (size_t r = 0; r < bodies_.size(); ++r) {
    if (!bodies_[r]) return internal_error(fmt::format("grammar rule '{}' declared but never defined", names_[r]));
    const Expr& body = *bodies_[r];
    // A top-level alternation becomes the rule's own alternatives (no helper indirection).
    const std::vector<ExprPtr> alternatives =
        body.kind == Expr::Kind::kAlt ? body.children : std::vector<ExprPtr>{bodies_[r]};
    if (Status s = lowerer.add_rule_alternatives(static_cast<int>(r), alternatives); !s.ok()) return s;
    if (Status s = lowerer.flush(); !s.ok()) return s;
  }
  prune_unproductive(g);
  g.start_pos = static_cast<int32_t>(g.elements.size());
  g.elements.push_back(Element{Element::Kind::kRule, root});
  g.elements.push_back(Element{Element::Kind::kEnd, -1});
  compute_first_sets(g);
  if (root < 0 || static_cast<size_t>(root) >= g.rules.size() || g.rules[static_cast<size_t>(root)].empty()) {
    return invalid_argument("the grammar's language is empty (no string satisfies it)");
  }
  return g;
}

std::string Grammar::to_string() const {
  std::string out;
  for (size_t r = 0; r < rules.size(); ++r) {
    out += fmt::format("{}_{} ::=", rule_names[r], r);
    for (size_t a = 0; a < rules[r].size(); ++a) {
      if (a > 0) out += " |";
      for (int32_t p = rules[r][a]; elements[static_cast<size_t>(p)].kind != Element::Kind::kEnd; ++p) {
        const Element& el = elements[static_cast<size_t>(p)];
        if (el.kind == Element::Kind::kBytes) {
          out += " " + byte_set_to_string(byte_sets[static_cast<size_t>(el.index)]);
        } else if (el.kind == Element::Kind::kLoop) {
          const Loop& loop = loops[static_cast<size_t>(el.index)];
          out += fmt::format(" {}_{}{{{},{}}}", rule_names[static_cast<size_t>(loop.body_rule)], loop.body_rule, loop.min,
                             loop.max == kUnbounded ? std::string() : std::to_string(loop.max));
        } else {
          out += fmt::format(" {}_{}", rule_names[static_cast<size_t>(el.index)], el.index);
        }
      }
      if (elements[static_cast<size_t>(rules[r][a])].kind == Element::Kind::kEnd) out += " ()";
    }
    out += "\n";
  }
  return out;
}

}  // namespace longbow::structured
