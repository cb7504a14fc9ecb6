#include "model/tokenizer/chat/jinja_limits.h"

#include <fmt/format.h>

#include "model/tokenizer/chat/jinja_value.h"

namespace longbow::jinja {
namespace {

thread_local RenderBudget* current_budget = nullptr;

}  // namespace

RenderBudget::RenderBudget() : previous_(current_budget) { current_budget = this; }

RenderBudget::~RenderBudget() { current_budget = previous_; }

void RenderBudget::charge(int64_t units) {
  RenderBudget* budget = current_budget;
  if (budget == nullptr) return;
  budget->steps_ += units;
  if (budget->steps_ > kMaxRenderSteps) {
    throw TemplateError(fmt::format("the template did more work than a render may ({} steps)", kMaxRenderSteps));
  }
}

void RenderBudget::charge_text(size_t bytes) {
  check_text(bytes);
  charge(static_cast<int64_t>(bytes / 64));
}

void RenderBudget::check_text(size_t bytes) {
  if (bytes > kMaxTextBytes) {
    throw TemplateError(fmt::format("the template built a string longer than {} MiB", kMaxTextBytes >> 20));
  }
}

RenderBudget::Nested::Nested() {
  RenderBudget* budget = current_budget;
  if (budget == nullptr) return;
  if (++budget->depth_ > kMaxRenderDepth) {
    --budget->depth_;
    throw TemplateError(fmt::format("the template nested deeper than {} levels (macro recursion?)", kMaxRenderDepth));
  }
}

RenderBudget::Nested::~Nested() {
  if (current_budget != nullptr) --current_budget->depth_;
}

}  // namespace longbow::jinja
