// The sandbox of the chat-template interpreter: how deep a template may nest, how much work one
// render may do and how long a string it may build. A checkpoint's template is operator input and
// a request's messages are client input; neither may hang the server, exhaust its memory or
// overflow a thread's stack. Real templates stay orders of magnitude below every limit; going past
// one is a TemplateError naming it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace longbow::jinja {

// Nesting of one expression (parentheses, operators, filters, subscripts, calls) and of
// statements (if/for/macro/set blocks inside each other), both checked at parse time.
inline constexpr int kMaxExpressionDepth = 96;
inline constexpr int kMaxStatementDepth = 96;
// Nested evaluation at render time: expressions, statements and macro calls together.
inline constexpr int kMaxRenderDepth = 1024;
// Work units per render: one per expression evaluated, statement run and loop iteration, plus one
// per list element or 64 string bytes an operation builds.
inline constexpr int64_t kMaxRenderSteps = int64_t{1} << 23;
// Lists and dicts inside each other, whether from the input or built by the template.
inline constexpr int kMaxValueDepth = 256;
// The longest string a template may build, its output included.
inline constexpr size_t kMaxTextBytes = size_t{64} << 20;
// Work units per character when a string is split into a list of characters (a Value each), and
// per loop iteration (its loop variable's attributes are built afresh each time).
inline constexpr int64_t kStepsPerCharacter = 8;
inline constexpr int64_t kStepsPerIteration = 64;

// The work and nesting of one render. render_template installs one for its thread while it runs,
// so the builtins charge the render they serve without being handed it; with none installed
// (builtins called directly) charging only checks sizes. Every method throws TemplateError past
// a limit.
class RenderBudget {
 public:
  RenderBudget();   // the calling thread's budget until destroyed
  ~RenderBudget();  // the thread's previous budget again
  RenderBudget(const RenderBudget&) = delete;
  RenderBudget& operator=(const RenderBudget&) = delete;

  // `units` of work (see kMaxRenderSteps).
  static void charge(int64_t units);
  // A string of `bytes` about to be built: past kMaxTextBytes is an error; else one unit per 64 bytes.
  static void charge_text(size_t bytes);
  // Only the size check of charge_text (for a string growing in pieces that were charged).
  static void check_text(size_t bytes);

  // One level of nested evaluation (see kMaxRenderDepth) for its lifetime.
  class Nested {
   public:
    Nested();
    ~Nested();
    Nested(const Nested&) = delete;
    Nested& operator=(const Nested&) = delete;
  };

 private:
  int64_t steps_ = 0;
  int depth_ = 0;
  RenderBudget* previous_;
};

}  // namespace longbow::jinja
