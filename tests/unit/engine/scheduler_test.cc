// Golden step tables for the scheduler. Each row is one step: "a+3" means sequence a computes 3
// tokens, "-b" that b was preempted. After each step the harness plays the engine: it completes the
// step, appends a token to every sequence whose chunk reached its end, and finishes sequences that
// reached their output length. The KV manager's integrity check runs after every step.
#include "server/engine/scheduler.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace longbow {
namespace {

constexpr int kPage = 4;

class Harness {
 public:
  // One full group of `num_pages` usable pages (its pool also holds the null page).
  Harness(SchedulerConfig config, int num_pages, bool prefix_caching = false)
      : Harness(config, KvCacheOptions::single_group(num_pages + 1, kPage, prefix_caching)) {}
  Harness(SchedulerConfig config, const KvCacheOptions& options)
      : kv_(KvCacheManager::create(options).value()), scheduler_(config, *kv_) {}

  // Adds sequence `name` with a prompt of `prompt_len` tokens (distinct per name unless `prompt`
  // is given) that finishes after `max_tokens` outputs.
  void add(const std::string& name, int prompt_len, int max_tokens, std::vector<TokenId> prompt = {},
           std::optional<std::string> wait_for = std::nullopt, bool prompt_logits = false) {
    SeqId id = static_cast<SeqId>(names_.size()) + 1;
    names_[id] = name;
    ids_[name] = id;
    if (prompt.empty()) {
      prompt.resize(static_cast<size_t>(prompt_len));
      std::iota(prompt.begin(), prompt.end(), static_cast<TokenId>(1000 * id));
    }
    Sequence s;
    s.id = id;
    s.tokens = prompt;
    s.num_prompt_tokens = static_cast<int>(prompt.size());
    s.arrival = id;
    if (wait_for) s.wait_for = ids_.at(*wait_for);
    s.wants_prompt_logits = prompt_logits;
    max_tokens_[id] = max_tokens;
    ASSERT_TRUE(scheduler_.add(std::move(s)).ok());
  }

  std::string step() {
    ScheduleResult result = scheduler_.schedule();
    std::string row;
    for (const ScheduledSeq& s : result.seqs) {
      if (!row.empty()) row += " ";
      // "a*3@8": a chunk of 3 tokens from position 8 with logits for every token (prompt logprobs).
      row += s.want_all_logits ? fmt::format("{}*{}@{}", names_[s.id], s.num_tokens, s.start)
                               : names_[s.id] + "+" + std::to_string(s.num_tokens);
    }
    if (!result.preempted.empty()) {
      row += " |";
      for (SeqId id : result.preempted) row += " -" + names_[id];
    }
    scheduler_.complete_step(result);
    for (const ScheduledSeq& s : result.seqs) {
      if (!s.want_logits) continue;
      const Sequence* seq = scheduler_.find(s.id);
      scheduler_.append_token(s.id, next_token(seq->tokens));
      if (seq->num_output_tokens() >= max_tokens_[s.id]) {
        outputs_[names_[s.id]] = seq->tokens;
        scheduler_.remove(s.id);
      }
    }
    Status integrity = kv_->check_integrity();
    EXPECT_TRUE(integrity.ok()) << integrity.to_string();
    return row.empty() ? "idle" : row;
  }

  std::vector<std::string> steps(int count) {
    std::vector<std::string> rows;
    for (int i = 0; i < count; ++i) rows.push_back(step());
    return rows;
  }

  // Runs until idle; returns each sequence's final token list.
  std::map<std::string, std::vector<TokenId>> run_to_end() {
    for (int i = 0; i < 1000 && !scheduler_.idle(); ++i) step();
    EXPECT_TRUE(scheduler_.idle());
    return outputs_;
  }

  // A deterministic "model": the next token depends on the whole context, like greedy decoding.
  static TokenId next_token(const std::vector<TokenId>& tokens) {
    uint64_t h = 1469598103934665603ull;
    for (TokenId t : tokens) h = (h ^ static_cast<uint64_t>(t)) * 1099511628211ull;
    return static_cast<TokenId>(h % 50);
  }

  SeqId id(const std::string& name) const { return ids_.at(name); }
  Scheduler& scheduler() { return scheduler_; }
  KvCacheManager& kv() { return *kv_; }

 private:
  std::unique_ptr<KvCacheManager> kv_;
  Scheduler scheduler_;
  std::map<SeqId, std::string> names_;
  std::map<std::string, SeqId> ids_;
  std::map<SeqId, int> max_tokens_;
  std::map<std::string, std::vector<TokenId>> outputs_;
};

using Rows = std::vector<std::string>;

TEST(Scheduler, DecodesFirstThenPartialPrefillsThenNewWithinTheBudget) {
  Harness h({.max_batched_tokens = 8, .max_num_seqs = 8}, 64);
  h.add("a", 3, 3);
  h.add("b", 10, 3);
  h.add("c", 2, 3);
  EXPECT_EQ(h.steps(5), (Rows{
                            "a+3 b+5",      // the budget runs out inside b's prompt; c waits
                            "a+1 b+5 c+2",  // a decodes, b finishes its prompt, c is admitted
                            "a+1 b+1 c+1",  // a finishes (3 outputs)
                            "b+1 c+1",      // b and c finish (3 outputs)
                            "idle",
                        }));
}

TEST(Scheduler, LongPromptIsChunkedAndNeverStallsRunningDecodes) {
  Harness h({.max_batched_tokens = 8, .max_num_seqs = 8, .max_prefill_chunk = 6}, 64);
  h.add("a", 2, 6);
  h.add("b", 2, 6);
  EXPECT_EQ(h.step(), "a+2 b+2");
  h.add("long", 20, 1);
  EXPECT_EQ(h.steps(7), (Rows{
                            "a+1 b+1 long+6",
                            "a+1 b+1 long+6",
                            "a+1 b+1 long+6",
                            "a+1 b+1 long+2",  // the last chunk: long samples its only token
                            "a+1 b+1",         // a and b reach 6 outputs
                            "idle",
                            "idle",
                        }));
}

TEST(Scheduler, MaxNumSeqsHoldsNewSequencesBack) {
  Harness h({.max_batched_tokens = 64, .max_num_seqs = 2}, 64);
  h.add("a", 2, 2);
  h.add("b", 2, 3);
  h.add("c", 2, 1);
  EXPECT_EQ(h.steps(4), (Rows{"a+2 b+2", "a+1 b+1", "b+1 c+2", "idle"}));
}

TEST(Scheduler, AdmissionIsStrictlyFirstComeFirstServed) {
  Harness h({.max_batched_tokens = 64, .max_num_seqs = 8}, 4);
  h.add("a", 10, 1);  // 3 pages
  h.add("b", 10, 1);  // 3 pages: must wait for a
  h.add("c", 2, 1);   // would fit, but does not jump the queue
  EXPECT_EQ(h.steps(3), (Rows{"a+10", "b+10 c+2", "idle"}));
}

// Four pages of four tokens. a and b fill the pool; when a needs a third page, the newest (b) is
// preempted. b resumes once a finishes, recomputing its prompt and outputs minus the one page the
// prefix cache kept.
TEST(Scheduler, PreemptsTheNewestAndResumesIt) {
  Harness h({.max_batched_tokens = 16, .max_num_seqs = 8}, 4, /*prefix_caching=*/true);
  h.add("a", 6, 6);
  h.add("b", 6, 6);
  EXPECT_EQ(h.steps(10), (Rows{
                             "a+6 b+6",
                             "a+1 b+1",
                             "a+1 b+1",
                             "a+1 | -b",  // a's 9th token needs a page; b's pages go back
                             "a+1",       // b (9 tokens, 3 pages) does not fit yet
                             "a+1",       // a finishes
                             "b+5",       // 4 tokens from the prefix cache, 5 recomputed
                             "b+1",
                             "b+1",
                             "idle",
                         }));
  EXPECT_EQ(h.scheduler().num_preemptions(), 1);
  EXPECT_EQ(h.kv().num_used(), 0);

  Harness roomy({.max_batched_tokens = 16, .max_num_seqs = 8}, 64);
  roomy.add("a", 6, 6);
  roomy.add("b", 6, 6);
  EXPECT_EQ(h.run_to_end(), roomy.run_to_end());
}

// b is decoding and already in the step when the older a, still prefilling, needs a page: b is
// taken out of the step again and its budget returned.
TEST(Scheduler, PreemptionCanUnscheduleANewerDecode) {
  Harness h({.max_batched_tokens = 16, .max_num_seqs = 8, .max_prefill_chunk = 4}, 3);
  h.add("a", 12, 1);
  h.add("b", 2, 4);
  EXPECT_EQ(h.steps(6), (Rows{
                            "a+4 b+2",
                            "b+1 a+4",
                            "a+4 | -b",
                            "b+4",  // a finished; b recomputes its 2 prompt and 2 output tokens
                            "b+1",
                            "idle",
                        }));
}

TEST(Scheduler, RepeatedPromptHitsThePrefixCacheAndSiblingsWaitForTheFirstChoice) {
  Harness h({.max_batched_tokens = 64, .max_num_seqs = 8}, 16, /*prefix_caching=*/true);
  std::vector<TokenId> prompt(10);
  std::iota(prompt.begin(), prompt.end(), 7);
  h.add("a", 10, 2, prompt);
  h.add("a2", 10, 2, prompt, "a");
  h.add("a3", 10, 2, prompt, "a");
  EXPECT_EQ(h.steps(4), (Rows{
                            "a+10",            // the siblings wait for a's prompt
                            "a+1 a2+2 a3+2",   // and find its two full pages cached
                            "a2+1 a3+1",
                            "idle",
                        }));
  EXPECT_EQ(h.kv().stats().prefix_hit_tokens, 16);
  h.add("again", 10, 1, prompt);
  EXPECT_EQ(h.step(), "again+2");
}

TEST(Scheduler, RemovingWaitingAndRunningSequencesReturnsEveryPage) {
  Harness h({.max_batched_tokens = 8, .max_num_seqs = 8}, 8, /*prefix_caching=*/true);
  h.add("a", 6, 100);
  h.add("b", 20, 100);
  h.add("c", 4, 100);
  EXPECT_EQ(h.steps(2), (Rows{"a+6 b+2", "a+1 b+7"}));
  EXPECT_GT(h.kv().num_used(), 0);
  EXPECT_TRUE(h.scheduler().remove(h.id("b")));  // running, mid-prefill
  EXPECT_TRUE(h.scheduler().remove(h.id("c")));  // waiting
  EXPECT_TRUE(h.scheduler().remove(h.id("a")));  // running, decoding
  EXPECT_FALSE(h.scheduler().remove(h.id("a")));
  EXPECT_TRUE(h.scheduler().idle());
  EXPECT_EQ(h.kv().num_used(), 0);
  EXPECT_TRUE(h.kv().check_integrity().ok());
}

// Many sequences in a pool too small for all of them preempt each other repeatedly; every sequence
// still ends with exactly the tokens it produces when it runs without preemption.
TEST(Scheduler, OutputsUnderHeavyPreemptionMatchARoomyPool) {
  auto add_all = [](Harness& h) {
    for (int i = 0; i < 8; ++i) h.add("s" + std::to_string(i), 5 + i % 5, 8 + i % 5);
  };
  Harness tight({.max_batched_tokens = 12, .max_num_seqs = 8}, 8, /*prefix_caching=*/true);
  Harness roomy({.max_batched_tokens = 12, .max_num_seqs = 8}, 256, /*prefix_caching=*/true);
  add_all(tight);
  add_all(roomy);
  auto tight_out = tight.run_to_end();
  EXPECT_EQ(tight_out.size(), 8u);
  EXPECT_EQ(tight_out, roomy.run_to_end());
  EXPECT_GT(tight.scheduler().num_preemptions(), 3);
  EXPECT_EQ(roomy.scheduler().num_preemptions(), 0);
  EXPECT_EQ(tight.kv().num_used(), 0);
}

TEST(Scheduler, PromptLogitsChunksFitTheLogitsRowsAndTakeNoPrefixHit) {
  // 4 logits rows a step (max_num_seqs); every other scheduled sequence takes one.
  Harness h({.max_batched_tokens = 32, .max_num_seqs = 4}, 64, /*prefix_caching=*/true);
  std::vector<TokenId> prompt(12);
  std::iota(prompt.begin(), prompt.end(), 500);
  h.add("a", 10, 3);
  h.add("b", 12, 2, prompt, std::nullopt, /*prompt_logits=*/true);
  EXPECT_EQ(h.steps(6), (Rows{
                            "a+10 b*3@0",  // a's row leaves b 3 rows
                            "a+1 b*3@3",
                            "a+1 b*3@6",   // a finishes (3 outputs)
                            "b*3@9",       // b's prompt is done: it samples
                            "b+1",         // decodes take one row again
                            "idle",
                        }));
  // b's full pages are in the prefix cache: a plain sequence hits them, one wanting prompt logits does not.
  h.add("c", 12, 1, prompt);
  h.add("d", 12, 1, prompt, std::nullopt, /*prompt_logits=*/true);
  EXPECT_EQ(h.steps(5), (Rows{
                            "c+4 d*3@0",  // c starts at 8 (two full pages hit)
                            "d*4@3",
                            "d*4@7",
                            "d*1@11",
                            "idle",
                        }));
}

TEST(Scheduler, RejectsBadConfigAndDuplicateIds) {
  EXPECT_FALSE((SchedulerConfig{.max_batched_tokens = 0}).validate().ok());
  EXPECT_FALSE((SchedulerConfig{.max_num_seqs = 0}).validate().ok());
  EXPECT_FALSE((SchedulerConfig{.max_prefill_chunk = -1}).validate().ok());
  EXPECT_TRUE(SchedulerConfig{}.validate().ok());
  auto kv = KvCacheManager::create(KvCacheOptions::single_group(5, kPage, false)).value();
  Scheduler scheduler(SchedulerConfig{}, *kv);
  Sequence s;
  s.id = 1;
  s.tokens = {1, 2};
  s.num_prompt_tokens = 2;
  EXPECT_TRUE(scheduler.add(s).ok());
  EXPECT_EQ(scheduler.add(s).code(), StatusCode::kInvalidArgument);
  s.id = 2;
  s.tokens.clear();
  EXPECT_EQ(scheduler.add(s).code(), StatusCode::kInvalidArgument);
}

// A local/global model: a window group of 8 tokens next to a full group. Admission and growth need
// pages in both groups; the window group holds a bounded number per sequence however long it gets,
// so the full group's pool is what preempts.
TEST(Scheduler, AccountsPagesPerGroupWithAWindowGroup) {
  KvCacheOptions options;
  CacheGroup full, local;
  full.layers = {1};
  local.window = 8;
  local.layers = {0};
  options.groups = {local, full};
  // Full: 12 usable pages (48 tokens); window: 2 sequences × window_live_pages_bound(8, 4, 4) = 5.
  options.pool_sizes = {11, 13};
  options.page_size = kPage;
  options.enable_prefix_caching = false;
  ASSERT_EQ(window_live_pages_bound(8, 4, kPage), 5);
  Harness h(SchedulerConfig{.max_batched_tokens = 8, .max_num_seqs = 4, .max_prefill_chunk = 4}, options);
  h.add("a", 10, 20);  // 30 tokens: 8 full pages
  h.add("b", 10, 20);
  int max_window_used = 0;
  int max_full_used = 0;
  for (int i = 0; i < 200 && !h.scheduler().idle(); ++i) {
    h.step();
    KvCacheStats stats = h.kv().stats();
    max_window_used = std::max(max_window_used, stats.groups[0].num_used);
    max_full_used = std::max(max_full_used, stats.groups[1].num_used);
  }
  EXPECT_TRUE(h.scheduler().idle());
  EXPECT_LE(max_window_used, 10);   // never more than both sequences' windows
  EXPECT_EQ(max_full_used, 12);     // the full group ran out ...
  EXPECT_GT(h.scheduler().num_preemptions(), 0);  // ... and preempted
  EXPECT_EQ(h.kv().num_used(), 0);
}

}  // namespace
}  // namespace longbow
