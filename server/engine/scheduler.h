// Scheduler: continuous (iteration-level) batching over the paged KV cache. Pure policy: no device
// code, no clocks, no threads; owned and called only by the engine thread.
//
// Each step shares one token budget (max_batched_tokens) and at most max_num_seqs running sequences:
//  1. running decodes (one token each), oldest first;
//  2. running, partially prefilled sequences, a chunk each (at most max_prefill_chunk tokens);
//  3. waiting sequences in arrival order (strict FCFS: the first that does not fit stops admission),
//     after a prefix-cache lookup, with their first chunk.
// Long prompts are prefilled in chunks, so a 128K prompt never stalls running decodes. When a running
// sequence needs a page and none is free, the newest running sequence is preempted by recompute: its
// pages are released (full pages stay in the prefix cache), num_computed returns to 0 and it goes
// back to the waiting queue in arrival order, to resume with the same tokens. No sequence is admitted
// in a step that preempted one.
//
// Logits rows: a step returns at most max_num_seqs rows (the runtime's workspace): one per sequence,
// or one per token of a chunk that wants prompt logits, whose chunk is cut to the rows left.
//
// Pages are accounted per cache group by the KV manager: a sequence is admitted or grown only when
// every group can serve it (a full group its whole length, a window group the pages of its window
// and the step, a state group one slot). Releasing the pages behind a window is the window group's
// own policy (KvCacheManager::commit), not the scheduler's.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/kv_cache_manager.h"
#include "server/engine/sequence.h"

namespace longbow {

struct SchedulerConfig {
  int max_batched_tokens = 8192;  // tokens in one forward(), decodes and prefill chunks together
  int max_num_seqs = 256;         // running sequences
  int max_prefill_chunk = 0;      // tokens of one sequence per step; 0: up to max_batched_tokens

  // INVALID_ARGUMENT naming the field.
  Status validate() const;
};

// One sequence's share of a step: tokens [start, start + num_tokens) of its token list.
struct ScheduledSeq {
  SeqId id = 0;
  int start = 0;
  int num_tokens = 0;
  bool want_logits = false;  // the chunk ends at the sequence's last token: sample after it
  bool want_all_logits = false;  // logits for every token of the chunk (Sequence::wants_prompt_logits)
};

struct ScheduleResult {
  std::vector<ScheduledSeq> seqs;  // decodes first, then prefill chunks (the order forward() sees)
  std::vector<SeqId> preempted;    // lost their pages this step; back to waiting
  int num_batched_tokens = 0;

  bool empty() const { return seqs.empty(); }
};

class Scheduler {
 public:
  // `kv` must outlive the scheduler; the scheduler is its only mutator while it lives.
  Scheduler(const SchedulerConfig& config, KvCacheManager& kv);

  // Queues a new sequence (status kWaiting, num_computed 0, arrival set by the caller and
  // increasing). INVALID_ARGUMENT for a duplicate id or an empty token list.
  Status add(Sequence seq);

  // Decides the next step and reserves its pages. Does not advance num_computed.
  ScheduleResult schedule();

  // After forward() succeeded: advances num_computed by each scheduled chunk and commits it to the
  // KV manager (newly full pages enter the prefix cache; window groups release what is behind).
  void complete_step(const ScheduleResult& result);

  // Appends a sampled token to a running sequence.
  void append_token(SeqId id, TokenId token);

  // Removes a sequence (finished, cancelled or failed) wherever it is, releasing its pages.
  // Returns false for an unknown id.
  bool remove(SeqId id);

  const Sequence* find(SeqId id) const;
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  bool idle() const { return waiting_.empty() && running_.empty(); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  Sequence& seq(SeqId id) { return seqs_.at(id); }
  // Preempts the newest running sequence; removes it from `result` (refunding its budget) if it was
  // already scheduled this step. Returns its id.
  SeqId preempt_newest(ScheduleResult& result, int& budget, int& rows);
  static int logits_rows(const ScheduledSeq& scheduled);
  void insert_waiting(SeqId id);
  void release_waiters(SeqId leader);
  int chunk_limit(int budget) const;

  SchedulerConfig config_;
  KvCacheManager& kv_;
  std::unordered_map<SeqId, Sequence> seqs_;
  std::deque<SeqId> waiting_;  // sorted by arrival
  std::vector<SeqId> running_;  // sorted by arrival
  int64_t num_preemptions_ = 0;
};

}  // namespace longbow
