// StepGate: lets an engine test decide when the model takes its next step, so no test depends on
// how fast the machine runs a step (a "this takes longer than 50 ms" guess fails on a quiet machine).
//
// A model calls pass() at the start of every forward(). While the gate is open pass() returns at
// once; while it is closed pass() waits until the test grants a step (grant(n)) or opens the gate.
// wait_blocked() returns once the model is waiting at the gate with no grant left: every granted
// step has run to completion and its events are published (the engine publishes before it calls
// forward again). Timeouts here are liveness bounds (a hung engine fails the test instead of hanging
// CI), never assumptions about speed.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "model/runtime/transformer.h"

namespace longbow::fakes {

class StepGate {
 public:
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = false;
    cv_.notify_all();
  }
  void grant(int steps) {
    std::lock_guard<std::mutex> lock(mutex_);
    granted_ += steps;
    cv_.notify_all();
  }
  // True once a forward() is waiting at the closed gate and every granted step was taken.
  bool wait_blocked(std::chrono::milliseconds liveness_bound = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, liveness_bound, [this] { return closed_ && waiting_ > 0 && granted_ == 0; });
  }
  // Steps taken so far (every pass(), gated or not).
  int64_t steps_taken() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return steps_taken_;
  }

  // Called by the model at the start of each step.
  void pass() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return !closed_ || granted_ > 0; });
    if (closed_) --granted_;
    --waiting_;
    ++steps_taken_;
    cv_.notify_all();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool closed_ = false;
  int64_t granted_ = 0;
  int waiting_ = 0;
  int64_t steps_taken_ = 0;
};

// A Transformer that runs `inner` behind a StepGate and counts the tokens it computes.
class GatedTransformer : public Transformer {
 public:
  explicit GatedTransformer(Transformer& inner) : inner_(inner) {}
  StepGate& gate() { return gate_; }
  int64_t tokens_computed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return tokens_computed_;
  }

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    pass(steps);
    return inner_.forward(steps, logits);
  }
  bool supports_sampling(const SamplingRow& row) const override { return inner_.supports_sampling(row); }
  Status forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                        std::vector<RowSample>* samples) override {
    pass(steps);
    return inner_.forward_sample(steps, rows, samples);
  }
  const ModelConfig& config() const override { return inner_.config(); }
  const std::vector<CacheGroup>& cache_groups() const override { return inner_.cache_groups(); }
  int num_pages(int group) const override { return inner_.num_pages(group); }

 private:
  void pass(std::span<const SequenceStep> steps) {
    gate_.pass();
    int64_t computed = 0;
    for (const SequenceStep& step : steps) computed += static_cast<int64_t>(step.tokens.size());
    std::lock_guard<std::mutex> lock(mutex_);
    tokens_computed_ += computed;
  }

  Transformer& inner_;
  StepGate gate_;
  mutable std::mutex mutex_;
  int64_t tokens_computed_ = 0;
};

}  // namespace longbow::fakes
