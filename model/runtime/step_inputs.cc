#include "model/runtime/step_inputs.h"

#include <algorithm>
#include <string>

#include "model/backend/backend.h"

namespace longbow {
namespace {

std::string step_name(size_t s) { return fmt::format("step {}", s); }

// One group's table of step s: long enough for `needed` pages, every needed entry in the pool.
Status check_table(size_t s, size_t group, std::span<const int32_t> table, int needed, int64_t context,
                   int num_pages) {
  if (table.size() < static_cast<size_t>(needed)) {
    return invalid_argument(fmt::format("forward: {} has a block table of {} pages for {} tokens (needs {}) in cache "
                                        "group {}", step_name(s), table.size(), context, needed, group));
  }
  for (int b = 0; b < needed; ++b) {
    const int32_t page = table[static_cast<size_t>(b)];
    if (page < 0 || page >= num_pages) {
      return invalid_argument(fmt::format("forward: {} block_table[{}] = {} is outside the KV pool [0, {}) of cache "
                                          "group {}", step_name(s), b, page, num_pages, group));
    }
  }
  return Status::Ok();
}

}  // namespace

StatusOr<StepInputs> build_step_inputs(std::span<const SequenceStep> steps, const StepLimits& limits) {
  if (steps.size() > static_cast<size_t>(limits.max_seqs)) {
    return invalid_argument(fmt::format("forward: {} sequences exceed max_num_seqs {}", steps.size(), limits.max_seqs));
  }
  size_t total_tokens = 0;
  for (const SequenceStep& step : steps) total_tokens += step.tokens.size();
  if (total_tokens > static_cast<size_t>(limits.max_tokens)) {
    return invalid_argument(
        fmt::format("forward: {} tokens exceed max_batched_tokens {}", total_tokens, limits.max_tokens));
  }
  size_t logit_rows = 0;
  for (const SequenceStep& step : steps) logit_rows += step.want_all_logits ? step.tokens.size() : (step.want_logits ? 1u : 0u);
  if (logit_rows > static_cast<size_t>(limits.max_seqs)) {
    return invalid_argument(fmt::format("forward: {} logits rows exceed max_num_seqs {} (the workspace's logits rows)",
                                        logit_rows, limits.max_seqs));
  }

  const size_t groups = limits.num_pages.size();
  StepInputs in;
  in.slots.resize(groups);
  in.query_start.push_back(0);
  for (size_t s = 0; s < steps.size(); ++s) {
    const SequenceStep& step = steps[s];
    if (step.tokens.empty()) return invalid_argument("forward: " + step_name(s) + " has no tokens");
    if (step.num_cached < 0) {
      return invalid_argument(fmt::format("forward: {} has num_cached {}", step_name(s), step.num_cached));
    }
    const int64_t context = int64_t{step.num_cached} + static_cast<int64_t>(step.tokens.size());
    if (context > limits.max_context_len) {
      return out_of_range(fmt::format("forward: {} reaches context length {}, beyond the limit of {} tokens "
                                      "(max_position_embeddings, or the KV pool size)",
                                      step_name(s), context, limits.max_context_len));
    }
    if (step.block_tables.size() != groups) {
      return invalid_argument(fmt::format("forward: {} has {} block tables for {} cache groups", step_name(s),
                                          step.block_tables.size(), groups));
    }
    const int needed_pages = static_cast<int>((context + kPageSize - 1) / kPageSize);
    for (size_t g = 0; g < groups; ++g) {
      RETURN_IF_ERROR(check_table(s, g, step.block_tables[g], needed_pages, context, limits.num_pages[g]));
    }
    for (size_t i = 0; i < step.tokens.size(); ++i) {
      const int32_t id = step.tokens[i];
      if (id < 0 || id >= limits.vocab_size) {
        return invalid_argument(fmt::format("forward: {} token {} has id {} outside the vocabulary [0, {})",
                                            step_name(s), i, id, limits.vocab_size));
      }
      const int32_t pos = step.num_cached + static_cast<int32_t>(i);
      in.token_ids.push_back(id);
      in.positions.push_back(pos);
      for (size_t g = 0; g < groups; ++g) {
        in.slots[g].push_back(step.block_tables[g][static_cast<size_t>(pos / kPageSize)] * kPageSize +
                              pos % kPageSize);
      }
    }
    if (limits.has_state && (step.state_slot < 0 || step.state_slot >= limits.num_state_slots)) {
      return invalid_argument(fmt::format("forward: {} has state slot {} outside [0, {})", step_name(s),
                                          step.state_slot, limits.num_state_slots));
    }
    in.state_slots.push_back(limits.has_state ? step.state_slot : -1);
    in.query_start.push_back(static_cast<int32_t>(in.token_ids.size()));
    in.context_lens.push_back(static_cast<int32_t>(context));
    if (step.want_all_logits) {
      for (size_t i = step.tokens.size(); i > 0; --i) in.logit_rows.push_back(static_cast<int32_t>(in.token_ids.size() - i));
    } else if (step.want_logits) {
      in.logit_rows.push_back(static_cast<int32_t>(in.token_ids.size()) - 1);
    }
    in.pages_per_seq = std::max(in.pages_per_seq, needed_pages);
    in.max_query_len = std::max(in.max_query_len, static_cast<int>(step.tokens.size()));
    in.max_context_len = std::max(in.max_context_len, static_cast<int>(context));
  }

  for (size_t g = 0; g < groups; ++g) {
    std::vector<int32_t> sorted_slots = in.slots[g];
    std::sort(sorted_slots.begin(), sorted_slots.end());
    auto duplicate = std::adjacent_find(sorted_slots.begin(), sorted_slots.end());
    if (duplicate != sorted_slots.end()) {
      return invalid_argument(fmt::format("forward: two new tokens write KV slot {} (page {}) of cache group {}; "
                                          "sequences share a page they append to",
                                          *duplicate, *duplicate / kPageSize, g));
    }
  }

  if (limits.has_state) {
    std::vector<int32_t> sorted_slots = in.state_slots;
    std::sort(sorted_slots.begin(), sorted_slots.end());
    auto duplicate = std::adjacent_find(sorted_slots.begin(), sorted_slots.end());
    if (duplicate != sorted_slots.end()) {
      return invalid_argument(fmt::format("forward: two sequences hold state slot {}", *duplicate));
    }
  }

  in.block_tables.assign(groups, std::vector<int32_t>(steps.size() * static_cast<size_t>(in.pages_per_seq), -1));
  for (size_t g = 0; g < groups; ++g) {
    for (size_t s = 0; s < steps.size(); ++s) {
      const int needed = (in.context_lens[s] + kPageSize - 1) / kPageSize;
      std::copy_n(steps[s].block_tables[g].begin(), needed,
                  in.block_tables[g].begin() + static_cast<std::ptrdiff_t>(s * static_cast<size_t>(in.pages_per_seq)));
    }
  }
  return in;
}

}  // namespace longbow
