// A Transformer for engine tests that checks the engine's paging. Its "KV cache" stores the token
// written to every slot; logits for a sequence are a fixed pseudo-random function of the tokens it
// reads back through its block table. So a wrong block table, a page reused while still shared, or
// a prefix-cache page holding other tokens changes the logits, and reading a slot nobody wrote is an
// error. reference_logits() gives the logits a context should produce, for solo reference runs.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model/runtime/transformer.h"

namespace longbow::fakes {

class FakeTransformer : public Transformer {
 public:
  // Adds a large bonus to favorite(context)'s logit when it returns a token: a scripted model.
  using Favorite = std::function<std::optional<TokenId>(std::span<const int32_t> context)>;

  FakeTransformer(ModelConfig config, int num_pages) : config_(std::move(config)), num_pages_(num_pages) {
    slots_.assign(static_cast<size_t>(num_pages) * kPageSize, -1);
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
  // Sleeps this long per computed token, so prefill cost shows in latencies.
  void set_delay_per_token(std::chrono::microseconds delay) { delay_per_token_ = delay; }
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
    ++num_forward_calls_;
    if (fail_) return internal_error("fake forward failure");
    int64_t computed = 0;
    for (const SequenceStep& step : steps) {
      int32_t total = step.num_cached + static_cast<int32_t>(step.tokens.size());
      if (step.block_tables.size() != 1) return invalid_argument("one block table per step expected");
      if (static_cast<int64_t>(step.block_tables[0].size()) * kPageSize < total) {
        return invalid_argument("block table of " + std::to_string(step.block_tables[0].size()) + " pages for " +
                                std::to_string(total) + " tokens");
      }
      for (size_t i = 0; i < step.tokens.size(); ++i) {
        int32_t pos = step.num_cached + static_cast<int32_t>(i);
        int32_t page = step.block_tables[0][static_cast<size_t>(pos / kPageSize)];
        if (page < 0 || page >= num_pages_) return invalid_argument("page " + std::to_string(page) + " out of range");
        slots_[static_cast<size_t>(page) * kPageSize + static_cast<size_t>(pos % kPageSize)] = step.tokens[i];
      }
      computed += static_cast<int64_t>(step.tokens.size());
    }
    tokens_computed_ += computed;
    if (delay_per_token_.count() > 0) std::this_thread::sleep_for(delay_per_token_ * computed);
    logits->clear();
    for (const SequenceStep& step : steps) {
      if (!step.want_logits) continue;
      int32_t total = step.num_cached + static_cast<int32_t>(step.tokens.size());
      std::vector<int32_t> context;
      for (int32_t pos = 0; pos < total; ++pos) {
        int32_t page = step.block_tables[0][static_cast<size_t>(pos / kPageSize)];
        int32_t token = slots_[static_cast<size_t>(page) * kPageSize + static_cast<size_t>(pos % kPageSize)];
        if (token < 0) return internal_error("read an unwritten KV slot at position " + std::to_string(pos));
        context.push_back(token);
      }
      std::vector<float> row = reference_logits(context);
      logits->insert(logits->end(), row.begin(), row.end());
    }
    return Status::Ok();
  }

  const ModelConfig& config() const override { return config_; }
  const std::vector<CacheGroup>& cache_groups() const override { return groups_; }
  int num_pages(int group) const override { return group == 0 ? num_pages_ : 0; }

  int64_t tokens_computed() const { return tokens_computed_; }
  int64_t num_forward_calls() const { return num_forward_calls_; }

 private:
  ModelConfig config_;
  std::vector<CacheGroup> groups_ = {CacheGroup{}};  // one full-attention group
  int num_pages_;
  std::vector<int32_t> slots_;
  Favorite favorite_;
  std::chrono::microseconds delay_per_token_{0};
  std::atomic<bool> fail_{false};
  std::atomic<int64_t> tokens_computed_{0};
  std::atomic<int64_t> num_forward_calls_{0};
};

}  // namespace longbow::fakes
