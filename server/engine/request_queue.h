// RequestQueue: the hand-off of submissions and cancellations from front-end threads to the engine
// thread. push_*() and wake() may be called from any thread; pop_all() only from the engine thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "server/engine/event_channel.h"
#include "server/engine/request.h"
#include "server/structured/grammar.h"

namespace longbow {

// A validated request on its way to the engine thread.
struct Submission {
  GenerateRequest request;
  int max_tokens = 0;  // resolved from the request and the context
  std::shared_ptr<const structured::Grammar> grammar;  // compiled from request.sampling.structured_output
  std::shared_ptr<EventChannel> events;
  std::chrono::steady_clock::time_point arrival;
};

struct Cancellation {
  std::string request_id;
  Status reason;  // the error the request's stream ends with
};

using EngineCommand = std::variant<Submission, Cancellation>;

class RequestQueue {
 public:
  void push(EngineCommand command);
  // Makes a waiting pop_all() return now (shutdown, drain).
  void wake();

  // Every queued command, in order. Waits up to `timeout` for the first one (or a wake()).
  std::vector<EngineCommand> pop_all(std::chrono::milliseconds timeout);

  size_t size() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::vector<EngineCommand> commands_;
  bool woken_ = false;
};

}  // namespace longbow
