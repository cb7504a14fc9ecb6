#include "model/kv_cache/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace longbow {
namespace {

constexpr int kPage = 4;  // small pages keep the tables readable

// Every test checks the manager's invariants after every operation through this wrapper.
class Kv {
 public:
  explicit Kv(int num_pages, bool prefix_caching = true)
      : kv_(KvCacheOptions{num_pages, kPage, prefix_caching}) {
    check();
  }

  void check() const {
    Status status = kv_.check_integrity();
    ASSERT_TRUE(status.ok()) << status.to_string();
  }
  // Allocates `seq` for the whole of `tokens` after a prefix lookup; returns cached tokens, or -1.
  int admit(SeqId seq, const std::vector<int32_t>& tokens, uint64_t salt = 0) {
    PrefixMatch match = kv_.match_prefix(tokens, salt);
    int cached = match.num_tokens(kPage);
    Status status = kv_.allocate(seq, match, static_cast<int>(tokens.size()), static_cast<int>(tokens.size()));
    check();
    return status.ok() ? cached : -1;
  }
  void commit(SeqId seq, const std::vector<int32_t>& tokens) {
    kv_.commit(seq, tokens, static_cast<int>(tokens.size()));
    check();
  }
  void free(SeqId seq) {
    kv_.free(seq);
    check();
  }
  std::vector<int32_t> table(SeqId seq) const {
    auto span = kv_.block_table(seq);
    return {span.begin(), span.end()};
  }
  KvCacheManager* operator->() { return &kv_; }

 private:
  KvCacheManager kv_;
};

std::vector<int32_t> iota_tokens(int count, int32_t start = 100) {
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  std::iota(tokens.begin(), tokens.end(), start);
  return tokens;
}

TEST(KvCacheManager, FreshPoolAllocatesInOrderAndFreesEverything) {
  Kv kv(8);
  EXPECT_EQ(kv.admit(1, iota_tokens(10)), 0);
  EXPECT_EQ(kv.table(1), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(kv->num_used(), 3);
  EXPECT_EQ(kv->num_free(), 5);
  kv.free(1);
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_TRUE(kv.table(1).empty());
}

TEST(KvCacheManager, RepeatedPromptSharesFullPagesButNeverTheLastToken) {
  Kv kv(16);
  std::vector<int32_t> prompt = iota_tokens(10);  // pages [0..4) [4..8) + 2 tokens
  ASSERT_EQ(kv.admit(1, prompt), 0);
  kv.commit(1, prompt);
  EXPECT_EQ(kv->stats().num_cached, 2);

  ASSERT_EQ(kv.admit(2, prompt), 8);
  std::vector<int32_t> t1 = kv.table(1), t2 = kv.table(2);
  EXPECT_EQ(t2[0], t1[0]);
  EXPECT_EQ(t2[1], t1[1]);
  EXPECT_NE(t2[2], t1[2]);  // the partial page is private
  EXPECT_EQ(kv->num_used(), 4);

  // A prompt of exactly two pages matches one: its last token must be computed for logits.
  std::vector<int32_t> exact(prompt.begin(), prompt.begin() + 8);
  EXPECT_EQ(kv->match_prefix(exact, 0).pages.size(), 1u);
  // A diverging second page matches only the first.
  std::vector<int32_t> diverge = prompt;
  diverge[5] = 7;
  EXPECT_EQ(kv->match_prefix(diverge, 0).pages.size(), 1u);
  // A different salt shares nothing.
  EXPECT_TRUE(kv->match_prefix(prompt, 42).pages.empty());

  KvCacheStats stats = kv->stats();
  EXPECT_EQ(stats.prefix_query_tokens, 20);
  EXPECT_EQ(stats.prefix_hit_tokens, 8);
  kv.free(1);
  kv.free(2);
  EXPECT_EQ(kv->num_used(), 0);
}

TEST(KvCacheManager, FreedPagesStayCachedUntilNeededLeastRecentlyUsedFirst) {
  Kv kv(6);
  std::vector<int32_t> a = iota_tokens(9, 100), b = iota_tokens(9, 200);
  ASSERT_EQ(kv.admit(1, a), 0);  // pages 0 1 2
  kv.commit(1, a);
  kv.free(1);  // 0 and 1 keep keys; 2 (partial, no key) goes to the head
  ASSERT_EQ(kv.admit(2, b), 0);  // takes 2, then the never-used 3 4
  EXPECT_EQ(kv.table(2), (std::vector<int32_t>{2, 3, 4}));
  kv.commit(2, b);
  kv.free(2);
  EXPECT_EQ(kv->stats().num_cached, 4);
  EXPECT_EQ(kv->num_used(), 0);

  // a's pages are still there.
  ASSERT_EQ(kv.admit(3, a), 8);
  EXPECT_EQ(kv.table(3)[0], 0);
  EXPECT_EQ(kv.table(3)[1], 1);
  kv.free(3);

  // A new 3-page prompt needs the free queue: 4 (partial) , 5 (never used) then the least recently
  // freed cached page. b was released tail first (its page 3 before 2), so b's second page goes.
  std::vector<int32_t> c = iota_tokens(9, 300);
  ASSERT_EQ(kv.admit(4, c), 0);
  EXPECT_EQ(kv->stats().num_evictions, 1);
  EXPECT_EQ(kv->match_prefix(b, 0).pages.size(), 1u);
  EXPECT_EQ(kv->match_prefix(a, 0).pages.size(), 2u);
  kv.free(4);
}

TEST(KvCacheManager, CachedFreePagesCountAgainstTheFreePoolWhenRevived) {
  Kv kv(4);
  std::vector<int32_t> a = iota_tokens(9);
  ASSERT_EQ(kv.admit(1, a), 0);
  kv.commit(1, a);
  kv.free(1);
  PrefixMatch match = kv->match_prefix(a, 0);
  ASSERT_EQ(match.pages.size(), 2u);
  // Two revived cached pages + one new page.
  EXPECT_EQ(kv->pages_needed(match, 9), 3);
  EXPECT_EQ(kv->pages_needed(match, 13), 4);
  EXPECT_FALSE(kv->can_allocate(match, 17));
  Status status = kv->allocate(2, match, 17, 17);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  kv.check();
  EXPECT_FALSE(kv->has_table(2));
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_EQ(kv->stats().num_cached, 2);  // the failed call evicted nothing
}

TEST(KvCacheManager, GrowAppendsPagesAndFailsWithoutChange) {
  Kv kv(3);
  ASSERT_EQ(kv.admit(1, iota_tokens(3)), 0);
  EXPECT_EQ(kv->pages_to_grow(1, 4), 0);
  EXPECT_EQ(kv->pages_to_grow(1, 5), 1);
  ASSERT_TRUE(kv->grow(1, 8).ok());
  kv.check();
  EXPECT_EQ(kv.table(1).size(), 2u);
  Status status = kv->grow(1, 13);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  kv.check();
  EXPECT_EQ(kv.table(1).size(), 2u);
  EXPECT_EQ(kv->grow(99, 4).code(), StatusCode::kInternal);
  kv.free(1);
}

TEST(KvCacheManager, SamePrefixComputedTwiceKeepsOneCachedCopy) {
  Kv kv(8);
  std::vector<int32_t> a = iota_tokens(6);
  ASSERT_EQ(kv.admit(1, a), 0);
  ASSERT_EQ(kv.admit(2, a), 0);  // nothing committed yet: both compute page 0
  kv.commit(1, a);
  kv.commit(2, a);
  EXPECT_EQ(kv->stats().num_cached, 1);
  ASSERT_EQ(kv.admit(3, a), 4);
  EXPECT_EQ(kv.table(3)[0], kv.table(1)[0]);
  kv.free(1);
  kv.free(2);
  kv.free(3);
  EXPECT_EQ(kv->num_used(), 0);
}

TEST(KvCacheManager, GeneratedTokensAreCachedToo) {
  Kv kv(8);
  std::vector<int32_t> tokens = iota_tokens(3);
  ASSERT_EQ(kv.admit(1, tokens), 0);
  for (int32_t t = 0; t < 6; ++t) {  // decode six tokens
    tokens.push_back(t);
    ASSERT_TRUE(kv->grow(1, static_cast<int>(tokens.size())).ok());
    kv.commit(1, tokens);
  }
  EXPECT_EQ(kv->stats().num_cached, 2);
  tokens.push_back(50);
  EXPECT_EQ(kv->match_prefix(tokens, 0).pages.size(), 2u);
  kv.free(1);
}

TEST(KvCacheManager, PrefixCachingOffSharesNothing) {
  Kv kv(8, /*prefix_caching=*/false);
  std::vector<int32_t> a = iota_tokens(9);
  ASSERT_EQ(kv.admit(1, a), 0);
  kv.commit(1, a);
  EXPECT_EQ(kv.admit(2, a), 0);
  EXPECT_EQ(kv->stats().num_cached, 0);
  kv.free(1);
  kv.free(2);
}

TEST(KvCacheManager, AllocatingTwiceForOneSequenceIsRefused) {
  KvCacheManager kv(KvCacheOptions{4, kPage, true});
  ASSERT_TRUE(kv.allocate(1, kv.match_prefix({}, 0), 4, 4).ok());
  EXPECT_EQ(kv.allocate(1, kv.match_prefix({}, 0), 4, 4).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(kv.check_integrity().ok());
}

// Random admissions (prompts drawn from a few shared prefixes), chunked computation, decode
// growth, commits and frees, against a fake device that stores the token written to each slot.
// After every operation: the integrity check holds, every matched page holds exactly the tokens of
// the prefix it was matched for, and no sequence writes into a page another sequence references.
// Sliding-window release: entries become kReleasedPage, shared pages stay alive while shared, keyed
// pages stay in the prefix cache, and grow/commit/free work on a table with a released run.
TEST(KvCacheManager, ReleasedLeadingPagesReturnToThePoolButStayCached) {
  Kv kv(8);
  std::vector<int32_t> prompt = iota_tokens(10);  // pages 0 1 2
  ASSERT_EQ(kv.admit(1, prompt), 0);
  kv.commit(1, prompt);
  ASSERT_EQ(kv.admit(2, prompt), 8);  // shares 0 1, private 3
  EXPECT_EQ(kv->num_used(), 4);

  kv->release_leading(1, 2);
  kv.check();
  EXPECT_EQ(kv.table(1), (std::vector<int32_t>{kReleasedPage, kReleasedPage, 2}));
  EXPECT_EQ(kv->num_used(), 4);  // 0 and 1 are still sequence 2's
  kv.free(2);
  EXPECT_EQ(kv->num_used(), 1);
  EXPECT_EQ(kv->match_prefix(prompt, 0).pages, (std::vector<int32_t>{0, 1}));  // free but cached

  kv->release_leading(1, 1);  // already released: nothing changes
  kv.check();
  EXPECT_EQ(kv->num_used(), 1);
  kv->release_leading(1, 99);  // past the end: the whole table
  kv.check();
  EXPECT_EQ(kv->num_used(), 0);

  std::vector<int32_t> longer = iota_tokens(14);
  ASSERT_TRUE(kv->grow(1, 14).ok());
  kv.check();
  ASSERT_EQ(kv.table(1).size(), 4u);
  EXPECT_EQ(kv.table(1)[2], kReleasedPage);
  EXPECT_NE(kv.table(1)[3], kReleasedPage);
  kv.commit(1, longer);  // the key chain runs over released entries
  kv.free(1);
  EXPECT_EQ(kv->num_used(), 0);
}

TEST(KvCacheManager, RandomOperationsKeepPagesConsistent) {
  constexpr int kPages = 24;
  Kv kv(kPages);
  std::vector<int32_t> device(kPages * kPage, -1);
  std::mt19937 rng(1234);
  std::vector<std::vector<int32_t>> stems;
  for (int i = 0; i < 3; ++i) stems.push_back(iota_tokens(12, 1000 * (i + 1)));

  struct Live {
    std::vector<int32_t> tokens;
    int computed = 0;
  };
  std::map<SeqId, Live> live;
  SeqId next_id = 1;

  auto holders = [&](int32_t page) {
    int n = 0;
    for (const auto& [id, seq] : live) {
      auto table = kv.table(id);
      n += static_cast<int>(std::count(table.begin(), table.end(), page));
    }
    return n;
  };
  auto compute = [&](SeqId id, int upto) {
    Live& seq = live[id];
    auto table = kv.table(id);
    for (int i = seq.computed; i < upto; ++i) {
      int32_t page = table[static_cast<size_t>(i / kPage)];
      ASSERT_EQ(holders(page), 1) << "write into shared page " << page;
      device[static_cast<size_t>(page * kPage + i % kPage)] = seq.tokens[static_cast<size_t>(i)];
    }
    seq.computed = upto;
    kv->commit(id, seq.tokens, seq.computed);
    kv.check();
  };

  for (int op = 0; op < 3000; ++op) {
    int action = static_cast<int>(rng() % 5);
    if (action == 0 || live.empty()) {
      std::vector<int32_t> tokens = stems[rng() % stems.size()];
      tokens.resize(rng() % 12 + 1);
      int extra = static_cast<int>(rng() % 10);
      for (int i = 0; i < extra; ++i) tokens.push_back(static_cast<int32_t>(rng() % 5));
      PrefixMatch match = kv->match_prefix(tokens, 0);
      for (size_t p = 0; p < match.pages.size(); ++p) {
        for (int i = 0; i < kPage; ++i) {
          ASSERT_EQ(device[static_cast<size_t>(match.pages[p] * kPage + i)], tokens[p * kPage + static_cast<size_t>(i)]);
        }
      }
      int cached = match.num_tokens(kPage);
      int first_chunk = std::min(static_cast<int>(tokens.size()), cached + 1 + static_cast<int>(rng() % 8));
      if (!kv->can_allocate(match, first_chunk)) continue;
      SeqId id = next_id++;
      ASSERT_TRUE(kv->allocate(id, match, first_chunk, static_cast<int>(tokens.size())).ok());
      kv.check();
      live[id] = Live{tokens, cached};
      compute(id, first_chunk);
    } else if (action == 1) {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      Live& seq = it->second;
      int target = seq.computed + 1;
      if (seq.computed >= static_cast<int>(seq.tokens.size())) seq.tokens.push_back(static_cast<int32_t>(rng() % 5));
      if (!kv->can_grow(it->first, target)) continue;
      ASSERT_TRUE(kv->grow(it->first, target).ok());
      kv.check();
      compute(it->first, target);
    } else if (action == 2) {
      // A sliding window: release some leading pages that hold only computed tokens.
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      const int n = static_cast<int>(rng() % static_cast<uint32_t>(it->second.computed / kPage + 1));
      kv->release_leading(it->first, n);
      kv.check();
      auto table = kv.table(it->first);
      for (int i = 0; i < n; ++i) ASSERT_EQ(table[static_cast<size_t>(i)], kReleasedPage);
    } else {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      kv.free(it->first);
      live.erase(it);
    }
  }
  for (const auto& [id, seq] : live) kv->free(id);
  kv.check();
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_GT(kv->stats().prefix_hit_tokens, 0);
  EXPECT_GT(kv->stats().num_evictions, 0);
}

}  // namespace
}  // namespace longbow
