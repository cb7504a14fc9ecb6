#include "model/kv_cache/kv_cache_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <vector>

namespace longbow {
namespace {

constexpr int kPage = 4;  // small pages keep the tables readable

CacheGroup full_group(std::vector<int> layers = {0}) {
  CacheGroup g;
  g.layers = std::move(layers);
  return g;
}

CacheGroup window_group(int window, std::vector<int> layers = {1}) {
  CacheGroup g;
  g.window = window;
  g.layers = std::move(layers);
  return g;
}

CacheGroup state_group(std::vector<int> layers = {2}) {
  CacheGroup g;
  g.is_state = true;
  g.layers = std::move(layers);
  return g;
}

// Every test checks the manager's invariants after every operation through this wrapper.
class Kv {
 public:
  // One full group of `usable_pages` pages (page 0 is the null page; pages 1.. are handed out).
  explicit Kv(int usable_pages, bool prefix_caching = true)
      : Kv({full_group()}, {usable_pages + 1}, prefix_caching) {}
  Kv(std::vector<CacheGroup> groups, std::vector<int> pool_sizes, bool prefix_caching = true) {
    KvCacheOptions options;
    options.groups = std::move(groups);
    options.pool_sizes = std::move(pool_sizes);
    options.page_size = kPage;
    options.enable_prefix_caching = prefix_caching;
    auto kv = KvCacheManager::create(options);
    EXPECT_TRUE(kv.ok()) << kv.status().to_string();
    if (kv.ok()) kv_ = std::move(kv).value();
    check();
  }

  void check() const {
    Status status = kv_->check_integrity();
    ASSERT_TRUE(status.ok()) << status.to_string();
  }
  // Allocates `seq` for the whole of `tokens` after a prefix lookup; returns cached tokens, or -1.
  int admit(SeqId seq, const std::vector<int32_t>& tokens, uint64_t salt = 0) {
    PrefixMatch match = kv_->match_prefix(tokens, salt);
    int cached = match.num_tokens(kPage);
    Status status =
        kv_->allocate(seq, match, tokens, static_cast<int>(tokens.size()), static_cast<int>(tokens.size()));
    check();
    return status.ok() ? cached : -1;
  }
  void commit(SeqId seq, const std::vector<int32_t>& tokens) {
    kv_->commit(seq, tokens, static_cast<int>(tokens.size()));
    check();
  }
  void free(SeqId seq) {
    kv_->free(seq);
    check();
  }
  std::vector<int32_t> table(SeqId seq, int group = 0) const {
    auto span = kv_->block_table(seq, group);
    return {span.begin(), span.end()};
  }
  int hit_pages(const std::vector<int32_t>& tokens) const { return kv_->match_prefix(tokens, 0).num_pages; }
  KvCacheManager* operator->() { return kv_.get(); }

 private:
  std::unique_ptr<KvCacheManager> kv_;
};

std::vector<int32_t> iota_tokens(int count, int32_t start = 100) {
  std::vector<int32_t> tokens(static_cast<size_t>(count));
  std::iota(tokens.begin(), tokens.end(), start);
  return tokens;
}

TEST(KvCacheManager, FreshPoolAllocatesInOrderAfterTheNullPageAndFreesEverything) {
  Kv kv(8);
  EXPECT_EQ(kv.admit(1, iota_tokens(10)), 0);
  EXPECT_EQ(kv.table(1), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(kv->num_pages(), 8);
  EXPECT_EQ(kv->num_used(), 3);
  EXPECT_EQ(kv->num_free(), 5);
  kv.free(1);
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_TRUE(kv.table(1).empty());
}

TEST(KvCacheManager, CreateRejectsPoolsThatDoNotMatchTheGroups) {
  KvCacheOptions options;
  options.groups = {full_group(), window_group(8)};
  options.pool_sizes = {4};
  EXPECT_EQ(KvCacheManager::create(options).status().code(), StatusCode::kInvalidArgument);
  options.pool_sizes = {4, 1};  // only the null page
  EXPECT_EQ(KvCacheManager::create(options).status().code(), StatusCode::kInvalidArgument);
  options.pool_sizes = {4, 2};
  EXPECT_TRUE(KvCacheManager::create(options).ok());
  EXPECT_EQ(KvCacheManager::create(KvCacheOptions{}).status().code(), StatusCode::kInvalidArgument);
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
  EXPECT_EQ(kv.hit_pages(exact), 1);
  // A diverging second page matches only the first.
  std::vector<int32_t> diverge = prompt;
  diverge[5] = 7;
  EXPECT_EQ(kv.hit_pages(diverge), 1);
  // A different salt shares nothing.
  EXPECT_EQ(kv->match_prefix(prompt, 42).num_pages, 0);

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
  ASSERT_EQ(kv.admit(1, a), 0);  // pages 1 2 3
  kv.commit(1, a);
  kv.free(1);  // 1 and 2 keep keys; 3 (partial, no key) goes to the head
  ASSERT_EQ(kv.admit(2, b), 0);  // takes 3, then the never-used 4 5
  EXPECT_EQ(kv.table(2), (std::vector<int32_t>{3, 4, 5}));
  kv.commit(2, b);
  kv.free(2);
  EXPECT_EQ(kv->stats().num_cached, 4);
  EXPECT_EQ(kv->num_used(), 0);

  // a's pages are still there.
  ASSERT_EQ(kv.admit(3, a), 8);
  EXPECT_EQ(kv.table(3)[0], 1);
  EXPECT_EQ(kv.table(3)[1], 2);
  kv.free(3);

  // A new 3-page prompt needs the free queue: 5 (partial), 6 (never used) then the least recently
  // freed cached page. b was released tail first (its page 4 before 3), so b's second page goes.
  std::vector<int32_t> c = iota_tokens(9, 300);
  ASSERT_EQ(kv.admit(4, c), 0);
  EXPECT_EQ(kv->stats().num_evictions, 1);
  EXPECT_EQ(kv.hit_pages(b), 1);
  EXPECT_EQ(kv.hit_pages(a), 2);
  kv.free(4);
}

TEST(KvCacheManager, CachedFreePagesCountAgainstTheFreePoolWhenRevived) {
  Kv kv(4);
  std::vector<int32_t> a = iota_tokens(9);
  ASSERT_EQ(kv.admit(1, a), 0);
  kv.commit(1, a);
  kv.free(1);
  PrefixMatch match = kv->match_prefix(a, 0);
  ASSERT_EQ(match.num_pages, 2);
  // Two revived cached pages + one or two new pages.
  EXPECT_EQ(kv->page_group(0).pages_needed(match.chain, a, match.num_pages, 9), 3);
  EXPECT_EQ(kv->page_group(0).pages_needed(match.chain, a, match.num_pages, 13), 4);
  EXPECT_TRUE(kv->can_allocate(match, a, 13));
  EXPECT_FALSE(kv->can_allocate(match, a, 17));
  Status status = kv->allocate(2, match, a, 17, 17);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  kv.check();
  EXPECT_FALSE(kv->has_table(2));
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_EQ(kv->stats().num_cached, 2);  // the failed call evicted nothing
}

TEST(KvCacheManager, GrowAppendsPagesAndFailsWithoutChange) {
  Kv kv(3);
  ASSERT_EQ(kv.admit(1, iota_tokens(3)), 0);
  EXPECT_EQ(kv->page_group(0).pages_to_grow(1, 4), 0);
  EXPECT_EQ(kv->page_group(0).pages_to_grow(1, 5), 1);
  ASSERT_TRUE(kv->grow(1, 8).ok());
  kv.check();
  EXPECT_EQ(kv.table(1).size(), 2u);
  EXPECT_FALSE(kv->can_grow(1, 13));
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
  EXPECT_EQ(kv.hit_pages(tokens), 2);
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
  Kv kv(4);
  std::vector<int32_t> a = iota_tokens(4);
  ASSERT_TRUE(kv->allocate(1, kv->match_prefix(a, 0), a, 4, 4).ok());
  EXPECT_EQ(kv->allocate(1, kv->match_prefix(a, 0), a, 4, 4).code(), StatusCode::kInvalidArgument);
  kv.check();
}

// ---- several groups (DESIGN §5) ----------------------------------------------------------------

// A window group of 8 tokens (2 pages) next to a full group: as a sequence decodes, the window
// group's live entries stay bounded (released entries read kNullPage) while the full group keeps
// every page; free returns both groups' pages.
TEST(KvCacheManager, WindowGroupStaysBoundedWhileTheFullGroupGrows) {
  Kv kv({full_group(), window_group(8)}, {32, 8});
  std::vector<int32_t> tokens = iota_tokens(5);
  ASSERT_EQ(kv.admit(1, tokens), 0);
  kv.commit(1, tokens);
  int max_window_live = 0;
  while (tokens.size() < 100) {
    tokens.push_back(static_cast<int32_t>(tokens.size()));
    ASSERT_TRUE(kv->can_grow(1, static_cast<int>(tokens.size())));
    ASSERT_TRUE(kv->grow(1, static_cast<int>(tokens.size())).ok());
    max_window_live = std::max(max_window_live, kv->page_group(1).live_pages(1));
    kv.commit(1, tokens);
  }
  // The full group holds all 25 pages; the window group at most the bound (4 for W 8, 1-token steps).
  EXPECT_EQ(kv->page_group(0).live_pages(1), 25);
  EXPECT_EQ(kv.table(1, 0).size(), 25u);
  EXPECT_EQ(kv.table(1, 1).size(), 25u);  // logical length kept
  EXPECT_LE(max_window_live, static_cast<int>(window_live_pages_bound(8, 1, kPage)));
  EXPECT_EQ(window_live_pages_bound(8, 1, kPage), 4);
  EXPECT_LE(kv->page_group(1).live_pages(1), 3);
  // Position 100 reads keys 93..100: pages 23 and 24 (and 22, as pairs are released together).
  std::vector<int32_t> window_table = kv.table(1, 1);
  EXPECT_EQ(window_table[21], kNullPage);
  EXPECT_NE(window_table[22], kNullPage);
  EXPECT_EQ(kv->block_tables(1).size(), 2u);
  EXPECT_EQ(kv->state_slot(1), -1);

  KvCacheStats stats = kv->stats();
  ASSERT_EQ(stats.groups.size(), 2u);
  EXPECT_EQ(stats.groups[0].num_used, 25);
  EXPECT_EQ(stats.groups[1].num_used, kv->page_group(1).live_pages(1));
  EXPECT_EQ(stats.groups[1].window, 8);
  EXPECT_EQ(stats.num_used, stats.groups[0].num_used + stats.groups[1].num_used);
  kv.free(1);
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_EQ(kv->stats().groups[1].num_used, 0);
}

// The window group's small pool bounds nothing but the window: a 100-token sequence runs in 7
// window pages, while its full group needs 25.
TEST(KvCacheManager, LongestSequenceCountsOnlyTheWindowOfAWindowGroup) {
  Kv kv({full_group(), window_group(8)}, {26, 5});
  EXPECT_EQ(kv->max_sequence_tokens(1), 25 * kPage);  // the window's 4 pages fit in 4 usable
  EXPECT_EQ(kv->max_sequence_tokens(8), 4 * kPage);   // 8-token steps need 1 + ceil(22/4) = 7 > 4
}

// A repeated prompt hits the prefix cache only as far as every group can honour it: the full group
// needs all pages from the left, the window group only the pages of the last W tokens.
TEST(KvCacheManager, PrefixHitIsWhatEveryGroupAccepts) {
  Kv kv({full_group(), window_group(8)}, {32, 7});
  std::vector<int32_t> prompt = iota_tokens(21, 100);  // 5 full pages + 1 token
  ASSERT_EQ(kv.admit(1, prompt), 0);                   // 6 window pages: 1..6
  kv.commit(1, prompt);  // releases window entries 0 and 1 (pages 1 2): tokens 14.. are read next
  EXPECT_EQ(kv.table(1, 1)[0], kNullPage);
  EXPECT_EQ(kv.table(1, 1)[1], kNullPage);
  kv.free(1);
  EXPECT_EQ(kv->stats().groups[1].num_cached, 5);

  // A 5-token prompt takes the window group's head pages: 6 (partial, unkeyed), then the least
  // recently released keyed page: entry 1's (released before entry 0's).
  std::vector<int32_t> other = iota_tokens(5, 900);
  ASSERT_EQ(kv.admit(2, other), 0);
  EXPECT_EQ(kv->stats().groups[1].num_cached, 4);
  // A 13-token prompt: the full group accepts 3 pages, but a hit of 3 needs window pages 0..2 (keys
  // 5..12, released in pairs) and one of 2 pages 0..1; page 1's key was evicted, so the window group
  // lowers the hit to 1 page.
  std::vector<int32_t> shorter(prompt.begin(), prompt.begin() + 13);
  EXPECT_EQ(kv.hit_pages(shorter), 1);
  // 17 tokens: a hit of 4 needs window pages 2..3 only (keys 9..16): cached.
  std::vector<int32_t> longer(prompt.begin(), prompt.begin() + 17);
  EXPECT_EQ(kv.hit_pages(longer), 4);
  // A hit of 5 pages needs window pages 2..4 only (keys 13..20 are read): still cached. (Its fresh
  // page evicts entry 0's key.)
  ASSERT_EQ(kv.admit(3, prompt), 20);
  std::vector<int32_t> window_table = kv.table(3, 1);
  ASSERT_EQ(window_table.size(), 6u);
  EXPECT_EQ(window_table[0], kNullPage);
  EXPECT_EQ(window_table[1], kNullPage);
  EXPECT_NE(window_table[2], kNullPage);
  kv.free(2);
  kv.free(3);

  // Evict every window page: the full group still holds the prompt, but the hit is 0.
  std::vector<int32_t> big = iota_tokens(24, 5000);
  ASSERT_EQ(kv.admit(4, big), 0);
  EXPECT_EQ(kv->stats().groups[1].num_cached, 0);
  EXPECT_EQ(kv->stats().groups[0].num_cached, 5);
  EXPECT_EQ(kv.hit_pages(prompt), 0);
  kv.free(4);
}

// Only window groups (a Mistral-style model): a hit may skip pages evicted behind the window.
TEST(KvCacheManager, WindowOnlyModelHitsAcrossEvictedLeadingPages) {
  Kv kv({window_group(8, {0, 1})}, {7});
  std::vector<int32_t> prompt = iota_tokens(21, 100);
  ASSERT_EQ(kv.admit(1, prompt), 0);
  kv.commit(1, prompt);
  kv.free(1);
  std::vector<int32_t> other = iota_tokens(5, 900);
  ASSERT_EQ(kv.admit(2, other), 0);  // evicts the key of page 1
  EXPECT_EQ(kv.admit(3, prompt), 20);
  kv.free(2);
  kv.free(3);
}

// A state group gives each sequence one slot, allows no prefix hit, and bounds the sequences.
TEST(KvCacheManager, StateGroupHoldsOneSlotPerSequenceAndNoHits) {
  Kv kv({full_group(), state_group()}, {16, 2});
  std::vector<int32_t> prompt = iota_tokens(9);
  ASSERT_EQ(kv.admit(1, prompt), 0);
  kv.commit(1, prompt);
  EXPECT_EQ(kv->state_slot(1), 0);
  EXPECT_EQ(kv->stats().groups[0].num_cached, 2);  // cached, but a hit would need a state
  EXPECT_EQ(kv.admit(2, prompt), 0);
  EXPECT_EQ(kv->state_slot(2), 1);
  EXPECT_EQ(kv->block_tables(2).size(), 1u);  // paged groups only
  EXPECT_FALSE(kv->can_allocate(kv->match_prefix(prompt, 0), prompt, 9));  // both slots held
  EXPECT_EQ(kv.admit(3, prompt), -1);
  EXPECT_EQ(kv->stats().groups[1].num_used, 2);
  kv.free(1);
  EXPECT_EQ(kv.admit(3, prompt), 0);
  EXPECT_EQ(kv->state_slot(3), 0);
  kv.free(2);
  kv.free(3);
  EXPECT_EQ(kv->stats().groups[1].num_used, 0);
  EXPECT_EQ(kv->num_used(), 0);
}

// Random admissions (prompts drawn from a few shared prefixes), chunked computation, decode
// growth, commits and frees, against a fake device per group that stores the token written to each
// slot. After every operation: the integrity check holds, every page a hit shares holds exactly the
// tokens of the prefix it was matched for, and no sequence writes into a page another sequence
// references. Runs on one full group, on a full and a window group, and on one window group.
void random_operations(std::vector<CacheGroup> groups, std::vector<int> pool_sizes) {
  const size_t num_groups = groups.size();
  Kv kv(groups, pool_sizes);
  std::vector<std::vector<int32_t>> device(num_groups);
  for (size_t g = 0; g < num_groups; ++g) device[g].assign(static_cast<size_t>(pool_sizes[g] * kPage), -1);
  std::mt19937 rng(1234);
  std::vector<std::vector<int32_t>> stems;
  for (int i = 0; i < 3; ++i) stems.push_back(iota_tokens(12, 1000 * (i + 1)));

  struct Live {
    std::vector<int32_t> tokens;
    int computed = 0;
  };
  std::map<SeqId, Live> live;
  SeqId next_id = 1;

  auto holders = [&](size_t g, int32_t page) {
    int n = 0;
    for (const auto& [id, seq] : live) {
      auto table = kv.table(id, static_cast<int>(g));
      n += static_cast<int>(std::count(table.begin(), table.end(), page));
    }
    return n;
  };
  auto compute = [&](SeqId id, int upto) {
    Live& seq = live[id];
    for (size_t g = 0; g < num_groups; ++g) {
      auto table = kv.table(id, static_cast<int>(g));
      for (int i = seq.computed; i < upto; ++i) {
        int32_t page = table[static_cast<size_t>(i / kPage)];
        ASSERT_NE(page, kNullPage) << "write into the null page";
        ASSERT_EQ(holders(g, page), 1) << "write into shared page " << page;
        device[g][static_cast<size_t>(page * kPage + i % kPage)] = seq.tokens[static_cast<size_t>(i)];
      }
    }
    seq.computed = upto;
    kv->commit(id, seq.tokens, seq.computed);
    kv.check();
  };

  int64_t hits = 0;
  for (int op = 0; op < 3000; ++op) {
    int action = static_cast<int>(rng() % 4);
    if (action == 0 || live.empty()) {
      std::vector<int32_t> tokens = stems[rng() % stems.size()];
      tokens.resize(rng() % 12 + 1);
      int extra = static_cast<int>(rng() % 10);
      for (int i = 0; i < extra; ++i) tokens.push_back(static_cast<int32_t>(rng() % 5));
      PrefixMatch match = kv->match_prefix(tokens, 0);
      int cached = match.num_tokens(kPage);
      int first_chunk = std::min(static_cast<int>(tokens.size()), cached + 1 + static_cast<int>(rng() % 8));
      if (!kv->can_allocate(match, tokens, first_chunk)) continue;
      SeqId id = next_id++;
      ASSERT_TRUE(kv->allocate(id, match, tokens, first_chunk, static_cast<int>(tokens.size())).ok());
      kv.check();
      hits += match.num_pages;
      // Every shared page holds the tokens it was matched for.
      for (size_t g = 0; g < num_groups; ++g) {
        auto table = kv.table(id, static_cast<int>(g));
        for (int p = 0; p < match.num_pages; ++p) {
          const int32_t page = table[static_cast<size_t>(p)];
          if (page == kNullPage) continue;
          for (int i = 0; i < kPage; ++i) {
            ASSERT_EQ(device[g][static_cast<size_t>(page * kPage + i)], tokens[static_cast<size_t>(p * kPage + i)]);
          }
        }
      }
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
    } else {
      auto it = std::next(live.begin(), static_cast<long>(rng() % live.size()));
      kv.free(it->first);
      live.erase(it);
    }
  }
  for (const auto& [id, seq] : live) kv->free(id);
  kv.check();
  EXPECT_EQ(kv->num_used(), 0);
  EXPECT_GT(hits, 0);
  EXPECT_GT(kv->stats().num_evictions, 0);
}

TEST(KvCacheManager, RandomOperationsKeepPagesConsistentOnOneFullGroup) { random_operations({full_group()}, {25}); }

TEST(KvCacheManager, RandomOperationsKeepPagesConsistentOnWindowAndFullGroups) {
  random_operations({window_group(6, {0, 2}), full_group({1})}, {15, 25});
}

TEST(KvCacheManager, RandomOperationsKeepPagesConsistentOnOneWindowGroup) {
  random_operations({window_group(5, {0, 1})}, {13});
}

}  // namespace
}  // namespace longbow
