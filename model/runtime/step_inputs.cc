#include "model/runtime/step_inputs.h"

#include <algorithm>
#include <string>

#include "model/backend/backend.h"

namespace longbow {
namespace {

std::string step_name(size_t s) { return "step " + std::to_string(s); }

}  // namespace

StatusOr<StepInputs> build_step_inputs(std::span<const SequenceStep> steps, const StepLimits& limits) {
  if (steps.size() > static_cast<size_t>(limits.max_seqs)) {
    return invalid_argument("forward: " + std::to_string(steps.size()) + " sequences exceed max_num_seqs " +
                            std::to_string(limits.max_seqs));
  }
  size_t total_tokens = 0;
  for (const SequenceStep& step : steps) total_tokens += step.tokens.size();
  if (total_tokens > static_cast<size_t>(limits.max_tokens)) {
    return invalid_argument("forward: " + std::to_string(total_tokens) + " tokens exceed max_batched_tokens " +
                            std::to_string(limits.max_tokens));
  }

  StepInputs in;
  in.query_start.push_back(0);
  for (size_t s = 0; s < steps.size(); ++s) {
    const SequenceStep& step = steps[s];
    if (step.tokens.empty()) return invalid_argument("forward: " + step_name(s) + " has no tokens");
    if (step.num_cached < 0) {
      return invalid_argument("forward: " + step_name(s) + " has num_cached " + std::to_string(step.num_cached));
    }
    int64_t context = int64_t{step.num_cached} + static_cast<int64_t>(step.tokens.size());
    if (context > limits.max_context_len) {
      return out_of_range("forward: " + step_name(s) + " reaches context length " + std::to_string(context) +
                          ", beyond the limit of " + std::to_string(limits.max_context_len) +
                          " tokens (max_position_embeddings, or the KV pool size)");
    }
    // [kv: interim until the layer-kind runtime] the model's one cache group.
    if (step.block_tables.size() != 1) {
      return invalid_argument("forward: " + step_name(s) + " has " + std::to_string(step.block_tables.size()) +
                              " block tables for the model's 1 cache group");
    }
    std::span<const int32_t> block_table = step.block_tables[0];
    int needed_pages = static_cast<int>((context + kPageSize - 1) / kPageSize);
    if (block_table.size() < static_cast<size_t>(needed_pages)) {
      return invalid_argument("forward: " + step_name(s) + " has a block table of " +
                              std::to_string(block_table.size()) + " pages for " + std::to_string(context) +
                              " tokens (needs " + std::to_string(needed_pages) + ")");
    }
    // Entries behind a window are kNullPage (0): an ordinary, readable page id.
    for (int b = 0; b < needed_pages; ++b) {
      int32_t page = block_table[static_cast<size_t>(b)];
      if (page < 0 || page >= limits.num_pages) {
        return invalid_argument("forward: " + step_name(s) + " block_table[" + std::to_string(b) + "] = " +
                                std::to_string(page) + " is outside the KV pool [0, " +
                                std::to_string(limits.num_pages) + ")");
      }
    }
    for (size_t i = 0; i < step.tokens.size(); ++i) {
      int32_t id = step.tokens[i];
      if (id < 0 || id >= limits.vocab_size) {
        return invalid_argument("forward: " + step_name(s) + " token " + std::to_string(i) + " has id " +
                                std::to_string(id) + " outside the vocabulary [0, " +
                                std::to_string(limits.vocab_size) + ")");
      }
      int32_t pos = step.num_cached + static_cast<int32_t>(i);
      in.token_ids.push_back(id);
      in.positions.push_back(pos);
      in.slots.push_back(block_table[static_cast<size_t>(pos / kPageSize)] * kPageSize + pos % kPageSize);
    }
    in.query_start.push_back(static_cast<int32_t>(in.token_ids.size()));
    in.context_lens.push_back(static_cast<int32_t>(context));
    if (step.want_logits) in.logit_rows.push_back(static_cast<int32_t>(in.token_ids.size()) - 1);
    in.pages_per_seq = std::max(in.pages_per_seq, needed_pages);
    in.max_query_len = std::max(in.max_query_len, static_cast<int>(step.tokens.size()));
    in.max_context_len = std::max(in.max_context_len, static_cast<int>(context));
  }

  std::vector<int32_t> sorted_slots = in.slots;
  std::sort(sorted_slots.begin(), sorted_slots.end());
  auto duplicate = std::adjacent_find(sorted_slots.begin(), sorted_slots.end());
  if (duplicate != sorted_slots.end()) {
    return invalid_argument("forward: two new tokens write KV slot " + std::to_string(*duplicate) +
                            " (page " + std::to_string(*duplicate / kPageSize) + "); sequences share a page they append to");
  }

  in.block_tables.assign(steps.size() * static_cast<size_t>(in.pages_per_seq), -1);
  for (size_t s = 0; s < steps.size(); ++s) {
    int needed = (in.context_lens[s] + kPageSize - 1) / kPageSize;
    std::copy_n(steps[s].block_tables[0].begin(), needed,
                in.block_tables.begin() + static_cast<std::ptrdiff_t>(s * static_cast<size_t>(in.pages_per_seq)));
  }
  return in;
}

}  // namespace longbow
