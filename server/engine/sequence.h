// Sequence: the scheduling state of one generated sequence (one choice of a request).
//
// A sequence is its token list (prompt, then outputs) and how many of those tokens have K/V in the
// cache. There is no separate prefill or decode phase: each step the scheduler lets num_computed
// catch up with num_tokens(); the step that computes the last token yields logits for the next one.
// Preemption resets num_computed to 0, so a resumed sequence recomputes (mostly from the prefix
// cache) and continues with the same tokens.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/kv_cache/kv_cache_manager.h"
#include "model/tokenizer/tokenizer.h"

namespace longbow {

enum class SeqStatus { kWaiting, kRunning };

struct Sequence {
  SeqId id = 0;
  std::vector<TokenId> tokens;  // prompt, then generated tokens
  int num_prompt_tokens = 0;
  int num_computed = 0;  // leading tokens whose K/V is in the cache (0 while waiting)
  uint64_t cache_salt = 0;
  // Admission order: lower is older. Preemption picks the highest; the waiting queue is sorted by it.
  int64_t arrival = 0;
  // Not admitted until this sequence has computed its prompt once (n > 1: siblings wait for the
  // first choice so they find the prompt's pages in the prefix cache instead of recomputing them).
  std::optional<SeqId> wait_for;
  SeqStatus status = SeqStatus::kWaiting;
  int num_preemptions = 0;
  int num_cached_prompt_tokens = 0;  // prompt tokens served by the prefix cache at first admission
  bool admitted_once = false;
  // Logits for every prompt token until the prompt has been computed once (prompt logprobs): no
  // prefix-cache hit, and prompt chunks no longer than the step's free logits rows.
  bool wants_prompt_logits = false;

  int num_tokens() const { return static_cast<int>(tokens.size()); }
  int num_output_tokens() const { return num_tokens() - num_prompt_tokens; }
  int num_uncomputed() const { return num_tokens() - num_computed; }
  // Running and one token behind: the next step is an ordinary decode.
  bool decoding() const { return status == SeqStatus::kRunning && num_uncomputed() == 1; }
};

}  // namespace longbow
