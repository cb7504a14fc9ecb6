// Grammar: what the structured-output matcher runs. Built in two layers:
//  - Expr, a tree (byte classes, sequences, alternatives, bounded repetition, references to named
//    rules) that the front-end translators (JSON Schema, regex, choice) produce;
//  - Grammar, the flattened form: every rule is a list of alternatives, every alternative a run of
//    elements (a 256-bit byte class or a rule reference) ended by kEnd. Repetition is lowered to
//    counted loops (kLoop: a body rule repeated min..max times, the count kept in the matcher's
//    frame, so a loop of any bound is one grammar position) or, when the body can be empty, to
//    helper rules whose self-reference is in tail position.
// Everything is over bytes: characters outside ASCII are UTF-8 sequences (char_class.h).
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace longbow::structured {

using ByteSet = std::bitset<256>;

// Repetition upper bound meaning "unbounded".
inline constexpr int kUnbounded = -1;

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind { kBytes, kSeq, kAlt, kRepeat, kRuleRef };
  Kind kind = Kind::kSeq;
  ByteSet bytes;                  // kBytes
  std::vector<ExprPtr> children;  // kSeq, kAlt; kRepeat has exactly one
  int min = 0;                    // kRepeat
  int max = 0;                    // kRepeat: >= min, or kUnbounded
  int rule = -1;                  // kRuleRef: an id from GrammarBuilder::declare_rule
};

// Expr constructors. An empty seq is epsilon; an empty alt is the empty language.
ExprPtr bytes_expr(const ByteSet& set);
ExprPtr byte_expr(uint8_t byte);
ExprPtr literal(std::string_view text);  // the exact bytes
ExprPtr seq(std::vector<ExprPtr> parts);
ExprPtr alt(std::vector<ExprPtr> options);
ExprPtr repeat(ExprPtr body, int min, int max);
ExprPtr optional(ExprPtr body);
ExprPtr rule_ref(int rule);
ExprPtr epsilon();

struct Element {
  enum class Kind : uint8_t { kBytes, kRule, kLoop, kEnd };
  Kind kind = Kind::kEnd;
  int32_t index = -1;  // kBytes: into Grammar::byte_sets; kRule: the rule id; kLoop: into Grammar::loops
};

// body_rule repeated min..max times (max kUnbounded: no limit); the body never derives the empty
// string, so every iteration consumes at least one byte.
struct Loop {
  int32_t body_rule = -1;
  int32_t min = 0;
  int32_t max = kUnbounded;
};

struct Grammar {
  std::vector<Element> elements;              // alternatives back to back, each ended by kEnd
  std::vector<ByteSet> byte_sets;
  std::vector<Loop> loops;
  std::vector<std::vector<int32_t>> rules;    // rule id -> start positions of its alternatives
  std::vector<std::string> rule_names;
  int32_t root = 0;
  int32_t start_pos = 0;  // a [kRule root, kEnd] run: the matcher's first frame points here

  // By position: the bytes that can come first in what the elements from that position on derive,
  // and whether they may derive nothing (then the frame below decides: a kEnd is always "may").
  // Supersets are allowed (they only prune less).
  std::vector<ByteSet> first;
  std::vector<bool> may_pass;

  // Human-readable EBNF-like dump (tests, debugging).
  std::string to_string() const;
};

// Collects named rules (possibly mutually recursive, never left-recursive: the matcher expands
// rule references eagerly) and lowers them to a Grammar.
class GrammarBuilder {
 public:
  // A fresh rule id; its body is given later by define_rule (references may precede definitions).
  int declare_rule(std::string name);
  void define_rule(int rule, ExprPtr body);

  // Lowers every defined rule, drops alternatives that cannot derive any string, and fails when
  // the root's language is empty or a declared rule was never defined. Limits the element count
  // (max_elements) so a schema cannot make a grammar of unbounded size.
  StatusOr<Grammar> build(int root, size_t max_elements = 4'000'000) const;

 private:
  std::vector<std::string> names_;
  std::vector<ExprPtr> bodies_;
};

}  // namespace longbow::structured
