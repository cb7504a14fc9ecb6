// EventMerger: one consumer's view of several engine requests' event streams (a completions request
// with a list of prompts is one engine request per prompt), in arrival order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "server/engine/engine.h"
#include "server/engine/event_channel.h"

namespace longbow::http {

class EventMerger {
 public:
  struct Tagged {
    size_t stream = 0;  // index into the handles given to the constructor
    GenerateEvent event;
  };

  explicit EventMerger(std::vector<RequestHandle> handles);
  ~EventMerger();  // cancels whatever has not ended
  EventMerger(const EventMerger&) = delete;
  EventMerger& operator=(const EventMerger&) = delete;

  // The next event of any stream, waiting up to `timeout`; nullopt on timeout or when every stream
  // has ended (then done() is true).
  std::optional<Tagged> next(std::chrono::milliseconds timeout);
  // The next event that has arrived, without waiting.
  std::optional<Tagged> try_next();
  bool done() const;

  // `wake` is called (on the engine thread) after every event pushed to any stream, and once now:
  // for consumers that run on an event loop instead of waiting in next().
  void set_wake(std::function<void()> wake);

  // Cancels every stream that has not ended (they end at the engine's next step).
  void cancel(Engine& engine);

 private:
  struct Waker {
    std::mutex mutex;
    std::condition_variable cv;
    uint64_t pushes = 0;
    std::function<void()> wake;
  };

  std::vector<RequestHandle> handles_;
  std::shared_ptr<Waker> waker_ = std::make_shared<Waker>();
  size_t cursor_ = 0;  // round-robin start, so no stream starves the others
};

}  // namespace longbow::http
