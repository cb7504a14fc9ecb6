// A Transformer for engine tests that checks the engine's paging, one "pool" per paged cache group. Its "KV cache" stores the token
// written to every slot; logits for a sequence are a fixed pseudo-random function of the tokens it
// reads back through its block table. So a wrong block table, a page reused while still shared, or
// a prefix-cache page holding other tokens changes the logits, and reading a slot nobody wrote is an
// error. reference_logits() gives the logits a context should produce, for solo reference runs.
// Every forward() passes gate() first (step_gate.h), so a test can hold the model between steps.
#pragma once

#include <algorithm>
#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "model/kv_cache/window_pages.h"
#include "model/runtime/transformer.h"
#include "model/sampling/reference_sampler.h"
#include "tests/unit/engine/step_gate.h"

namespace longbow::fakes {

class FakeTransformer : public Transformer {
 public:
  // Adds a large bonus to favorite(context)'s logit when it returns a token: a scripted model.
  using Favorite = std::function<std::optional<TokenId>(std::span<const int32_t> context)>;

  // One full-attention cache group of `num_pages` pages (page 0 is the null page).
  FakeTransformer(ModelConfig config, int num_pages) : FakeTransformer(std::move(config), {CacheGroup{}}, {num_pages}) {}
  // Any cache groups (one paged group at least must be full: the logits read the whole context
  // through it); every paged group has its own "pool" of pool_sizes[g] pages.
  FakeTransformer(ModelConfig config, std::vector<CacheGroup> groups, std::vector<int> pool_sizes)
      : config_(std::move(config)), groups_(std::move(groups)), pool_sizes_(std::move(pool_sizes)) {
    for (size_t g = 0; g < groups_.size(); ++g) {
      if (groups_[g].layers.empty()) groups_[g].layers = {static_cast<int>(g)};
      if (!groups_[g].is_state) slots_.emplace_back(static_cast<size_t>(pool_sizes_[g]) * kPageSize, -1);
    }
  }

  static ModelConfig default_config(int vocab_size = 300, int max_len = 4096) {
    ModelConfig config;
    config.model_type = "llama";
    config.vocab_size = vocab_size;
    config.max_position_embeddings = max_len;
    config.eos_token_ids = {256};
    return config;
  }

  void set_favorite(Favorite favorite) { favorite_ = std::move(favorite); }
  // Sampling "on the device": forward_sample() takes the rows `supports` accepts (the reference
  // sampler over forward()'s logits); unset, it takes none.
  void set_device_sampling(std::function<bool(const SamplingRow&)> supports) { supports_ = std::move(supports); }

  bool supports_sampling(const SamplingRow& row) const override { return supports_ && supports_(row); }
  Status forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                        std::vector<RowSample>* samples) override {
    for (const SamplingRow& row : rows) {
      if (!supports_sampling(row)) return unimplemented("the fake does not sample this row");
    }
    std::vector<float> logits;
    RETURN_IF_ERROR(forward(steps, &logits));
    const auto vocab = static_cast<size_t>(config_.vocab_size);
    if (logits.size() != rows.size() * vocab) return invalid_argument("forward_sample: rows do not match the steps");
    ReferenceSampler sampler(config_.vocab_size);
    samples->resize(rows.size());
    for (size_t r = 0; r < rows.size(); ++r) {
      RETURN_IF_ERROR(sampler.sample(std::span<const float>(logits).subspan(r * vocab, vocab), rows[r], &(*samples)[r]));
    }
    return Status::Ok();
  }
  StepGate& gate() { return gate_; }
  void fail_forward_calls(bool fail) { fail_ = fail; }

  std::vector<float> reference_logits(std::span<const int32_t> context) const {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t t : context) h = (h ^ static_cast<uint32_t>(t)) * 0x100000001b3ull;
    std::vector<float> row(static_cast<size_t>(config_.vocab_size));
    for (size_t j = 0; j < row.size(); ++j) {
      uint64_t z = h + (j + 1) * 0x9e3779b97f4a7c15ull;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      row[j] = static_cast<float>(z >> 40) / static_cast<float>(1 << 24) * 4.0f - 2.0f;
    }
    if (favorite_) {
      if (std::optional<TokenId> fav = favorite_(context); fav && *fav >= 0 && *fav < config_.vocab_size) {
        row[static_cast<size_t>(*fav)] += 20.0f;
      }
    }
    return row;
  }

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    gate_.pass();
    ++num_forward_calls_;
    if (fail_) return internal_error("fake forward failure");
    std::vector<const CacheGroup*> paged;
    for (const CacheGroup& g : groups_) {
      if (!g.is_state) paged.push_back(&g);
    }
    int64_t computed = 0;
    for (const SequenceStep& step : steps) {
      int32_t total = step.num_cached + static_cast<int32_t>(step.tokens.size());
      if (step.block_tables.size() != paged.size()) {
        return invalid_argument(fmt::format("{} block tables for {} paged groups", step.block_tables.size(),
                                            paged.size()));
      }
      for (size_t g = 0; g < paged.size(); ++g) {
        const std::span<const int32_t> table = step.block_tables[g];
        if (static_cast<int64_t>(table.size()) * kPageSize < total) {
          return invalid_argument(fmt::format("group {}: block table of {} pages for {} tokens", g, table.size(), total));
        }
        for (size_t i = 0; i < step.tokens.size(); ++i) {
          int32_t pos = step.num_cached + static_cast<int32_t>(i);
          int32_t page = table[static_cast<size_t>(pos / kPageSize)];
          if (page == kNullPage) return invalid_argument(fmt::format("group {}: write into the null page", g));
          if (page < 0 || page >= static_cast<int32_t>(slots_[g].size() / kPageSize)) {
            return invalid_argument(fmt::format("group {}: page {} out of range", g, page));
          }
          slots_[g][static_cast<size_t>(page) * kPageSize + static_cast<size_t>(pos % kPageSize)] = step.tokens[i];
        }
      }
      if (step.num_cached == 0 && step.state_slot >= 0) ++state_slots_zeroed_;
      computed += static_cast<int64_t>(step.tokens.size());
    }
    tokens_computed_ += computed;
    logits->clear();
    for (const SequenceStep& step : steps) {
      const int32_t end = step.num_cached + static_cast<int32_t>(step.tokens.size());
      // Rows for contexts of `total` tokens: every new token's with want_all_logits, else the last one's.
      const int32_t first_total = step.want_all_logits ? step.num_cached + 1 : step.want_logits ? end : end + 1;
      for (int32_t total = first_total; total <= end; ++total) {
        // The context comes from the first full group; every other group must hold the same tokens
        // where its last query reads (a window group: positions [total - W, total)).
        std::vector<size_t> order;
        for (size_t g = 0; g < paged.size(); ++g) {
          if (paged[g]->window == 0) order.push_back(g);
        }
        if (order.empty()) return internal_error("the fake needs a full-attention group");
        for (size_t g = 0; g < paged.size(); ++g) {
          if (g != order.front()) order.push_back(g);
        }
        std::vector<int32_t> context;
        for (size_t g : order) {
          const int32_t first = paged[g]->window > 0 ? std::max(0, total - paged[g]->window) : 0;
          for (int32_t pos = first; pos < total; ++pos) {
            int32_t page = step.block_tables[g][static_cast<size_t>(pos / kPageSize)];
            int32_t token = page == kNullPage
                                ? -1
                                : slots_[g][static_cast<size_t>(page) * kPageSize + static_cast<size_t>(pos % kPageSize)];
            if (token < 0) {
              return internal_error(fmt::format("group {}: read an unwritten KV slot at position {}", g, pos));
            }
            if (g == order.front()) {
              context.push_back(token);
            } else if (token != context[static_cast<size_t>(pos)]) {
              return internal_error(fmt::format("group {} holds token {} at position {}, group {} holds {}", g, token,
                                                pos, order.front(), context[static_cast<size_t>(pos)]));
            }
          }
        }
        std::vector<float> row = reference_logits(context);
        logits->insert(logits->end(), row.begin(), row.end());
      }
    }
    return Status::Ok();
  }

  const ModelConfig& config() const override { return config_; }
  const std::vector<CacheGroup>& cache_groups() const override { return groups_; }
  int num_pages(int group) const override { return pool_sizes_[static_cast<size_t>(group)]; }
  // Steps that began a sequence holding a state slot (the runtime zeroes the slot then).
  int64_t state_slots_zeroed() const { return state_slots_zeroed_; }

  int64_t tokens_computed() const { return tokens_computed_; }
  int64_t num_forward_calls() const { return num_forward_calls_; }

 private:
  ModelConfig config_;
  std::vector<CacheGroup> groups_;
  std::vector<int> pool_sizes_;
  std::vector<std::vector<int32_t>> slots_;  // per paged group: the token written to each slot, -1 none
  Favorite favorite_;
  std::function<bool(const SamplingRow&)> supports_;
  StepGate gate_;
  std::atomic<bool> fail_{false};
  std::atomic<int64_t> tokens_computed_{0};
  std::atomic<int64_t> num_forward_calls_{0};
  std::atomic<int64_t> state_slots_zeroed_{0};
};

}  // namespace longbow::fakes
