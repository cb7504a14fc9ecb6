#include "server/structured/guided.h"

#include <utility>

#include "server/structured/regex.h"

namespace longbow::structured {

StatusOr<Grammar> regex_grammar(std::string_view pattern) {
  StatusOr<ExprPtr> e = regex_to_expr(pattern, RegexOptions{});
  if (!e.ok()) return e.status();
  GrammarBuilder b;
  const int root = b.declare_rule("root");
  b.define_rule(root, std::move(e).value());
  return b.build(root);
}

StatusOr<Grammar> choice_grammar(const std::vector<std::string>& choices) {
  if (choices.empty()) return invalid_argument("guided_choice must list at least one string");
  std::vector<ExprPtr> options;
  for (const std::string& c : choices) options.push_back(literal(c));
  GrammarBuilder b;
  const int root = b.declare_rule("root");
  b.define_rule(root, alt(std::move(options)));
  return b.build(root);
}

}  // namespace longbow::structured
