#include "server/engine/scheduler.h"

#include <algorithm>
#include <cassert>

namespace longbow {

Status SchedulerConfig::validate() const {
  if (max_batched_tokens < 1) {
    return invalid_argument("scheduler: max_batched_tokens must be >= 1, got " + std::to_string(max_batched_tokens));
  }
  if (max_num_seqs < 1) {
    return invalid_argument("scheduler: max_num_seqs must be >= 1, got " + std::to_string(max_num_seqs));
  }
  if (max_prefill_chunk < 0) {
    return invalid_argument("scheduler: max_prefill_chunk must be >= 0, got " + std::to_string(max_prefill_chunk));
  }
  return Status::Ok();
}

Scheduler::Scheduler(const SchedulerConfig& config, KvCacheManager& kv) : config_(config), kv_(kv) {}

Status Scheduler::add(Sequence s) {
  if (seqs_.count(s.id)) return invalid_argument("scheduler: duplicate sequence id " + std::to_string(s.id));
  if (s.tokens.empty()) return invalid_argument("scheduler: sequence " + std::to_string(s.id) + " has no tokens");
  s.status = SeqStatus::kWaiting;
  s.num_computed = 0;
  SeqId id = s.id;
  seqs_.emplace(id, std::move(s));
  insert_waiting(id);
  return Status::Ok();
}

const Sequence* Scheduler::find(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second;
}

void Scheduler::insert_waiting(SeqId id) {
  int64_t arrival = seq(id).arrival;
  auto pos = std::upper_bound(waiting_.begin(), waiting_.end(), arrival,
                              [this](int64_t a, SeqId other) { return a < seq(other).arrival; });
  waiting_.insert(pos, id);
}

int Scheduler::logits_rows(const ScheduledSeq& scheduled) {
  // A sequence counts one row even without logits this step: the bound holds without looking ahead.
  return scheduled.want_all_logits ? scheduled.num_tokens : 1;
}

int Scheduler::chunk_limit(int budget) const {
  return config_.max_prefill_chunk > 0 ? std::min(budget, config_.max_prefill_chunk) : budget;
}

SeqId Scheduler::preempt_newest(ScheduleResult& result, int& budget, int& rows) {
  SeqId victim = running_.back();
  running_.pop_back();
  auto scheduled = std::find_if(result.seqs.begin(), result.seqs.end(),
                                [victim](const ScheduledSeq& s) { return s.id == victim; });
  if (scheduled != result.seqs.end()) {
    budget += scheduled->num_tokens;
    rows += logits_rows(*scheduled);
    result.num_batched_tokens -= scheduled->num_tokens;
    result.seqs.erase(scheduled);
  }
  kv_.free(victim);
  Sequence& s = seq(victim);
  s.status = SeqStatus::kWaiting;
  s.num_computed = 0;
  ++s.num_preemptions;
  ++num_preemptions_;
  insert_waiting(victim);
  result.preempted.push_back(victim);
  return victim;
}

ScheduleResult Scheduler::schedule() {
  ScheduleResult result;
  int budget = config_.max_batched_tokens;
  int rows = config_.max_num_seqs;  // logits rows left (see the header)

  // Running sequences: decodes first, then partial prefills, each oldest first.
  std::vector<SeqId> order;
  order.reserve(running_.size());
  for (SeqId id : running_) if (seq(id).decoding()) order.push_back(id);
  for (SeqId id : running_) if (!seq(id).decoding()) order.push_back(id);
  for (SeqId id : order) {
    if (budget == 0 || rows == 0) break;
    Sequence& s = seq(id);
    if (s.status != SeqStatus::kRunning) continue;  // preempted earlier in this step
    const bool all_logits = s.wants_prompt_logits;
    int n = std::min(s.num_uncomputed(), chunk_limit(budget));
    if (all_logits) n = std::min(n, rows);
    if (n <= 0) continue;
    bool preempted_self = false;
    while (!kv_.can_grow(id, s.num_computed + n)) {
      if (preempt_newest(result, budget, rows) == id) {
        preempted_self = true;
        break;
      }
    }
    if (preempted_self) continue;
    Status grown = kv_.grow(id, s.num_computed + n);
    assert(grown.ok());
    (void)grown;
    result.seqs.push_back(ScheduledSeq{id, s.num_computed, n, s.num_computed + n == s.num_tokens(), all_logits});
    result.num_batched_tokens += n;
    budget -= n;
    rows -= logits_rows(result.seqs.back());
  }

  // New and resumed sequences, in arrival order, unless this step had to preempt.
  if (!result.preempted.empty()) return result;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (budget == 0 || rows == 0 || static_cast<int>(running_.size()) >= config_.max_num_seqs) break;
    Sequence& s = seq(*it);
    if (s.wait_for) {
      ++it;
      continue;
    }
    PrefixMatch match = kv_.match_prefix(s.tokens, s.cache_salt);
    if (s.wants_prompt_logits) match.num_pages = 0;  // every prompt token's logits are computed
    int cached = match.num_tokens(kv_.page_size());
    int n = std::min(s.num_tokens() - cached, chunk_limit(budget));
    if (s.wants_prompt_logits) n = std::min(n, rows);
    if (!kv_.can_allocate(match, s.tokens, cached + n)) break;
    Status allocated = kv_.allocate(s.id, match, s.tokens, cached + n, s.num_tokens());
    assert(allocated.ok());
    (void)allocated;
    s.status = SeqStatus::kRunning;
    s.num_computed = cached;
    if (!s.admitted_once) {
      s.admitted_once = true;
      s.num_cached_prompt_tokens = std::min(cached, s.num_prompt_tokens);
    }
    auto pos = std::upper_bound(running_.begin(), running_.end(), s.arrival,
                                [this](int64_t a, SeqId other) { return a < seq(other).arrival; });
    running_.insert(pos, s.id);
    result.seqs.push_back(ScheduledSeq{s.id, cached, n, cached + n == s.num_tokens(), s.wants_prompt_logits});
    result.num_batched_tokens += n;
    budget -= n;
    rows -= logits_rows(result.seqs.back());
    it = waiting_.erase(it);
  }
  return result;
}

void Scheduler::complete_step(const ScheduleResult& result) {
  for (const ScheduledSeq& scheduled : result.seqs) {
    auto it = seqs_.find(scheduled.id);
    if (it == seqs_.end() || it->second.status != SeqStatus::kRunning) continue;
    Sequence& s = it->second;
    bool had_prompt = s.num_computed >= s.num_prompt_tokens;
    s.num_computed = scheduled.start + scheduled.num_tokens;
    kv_.commit(s.id, s.tokens, s.num_computed);
    if (!had_prompt && s.num_computed >= s.num_prompt_tokens) release_waiters(s.id);
    if (s.num_computed >= s.num_prompt_tokens) s.wants_prompt_logits = false;
  }
}

void Scheduler::append_token(SeqId id, TokenId token) {
  auto it = seqs_.find(id);
  if (it != seqs_.end()) it->second.tokens.push_back(token);
}

void Scheduler::release_waiters(SeqId leader) {
  for (SeqId id : waiting_) {
    Sequence& s = seq(id);
    if (s.wait_for == leader) s.wait_for.reset();
  }
}

bool Scheduler::remove(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  if (it->second.status == SeqStatus::kWaiting) {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
  } else {
    running_.erase(std::find(running_.begin(), running_.end(), id));
  }
  kv_.free(id);
  seqs_.erase(it);
  release_waiters(id);
  return true;
}

}  // namespace longbow
