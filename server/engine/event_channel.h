// EventChannel: the stream of one request's events, from the engine thread to a front end.
//
// push() is called only by the engine thread; next(), try_next() and done() by the consumer (any one
// thread at a time). The stream ends with an event whose `last` is true. A consumer that loses
// interest simply drops its RequestHandle: the engine notices that it holds the only reference and
// cancels the request at its next step.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "server/engine/request.h"

namespace longbow {

class EventChannel {
 public:
  // Engine side. Events after the last one are dropped.
  void push(GenerateEvent event);

  // Consumer side. The next event, waiting up to `timeout`; nullopt on timeout, or when the stream
  // has ended and every event was taken (then done() is true).
  std::optional<GenerateEvent> next(std::chrono::milliseconds timeout);
  // Blocks until an event arrives; nullopt only when the stream has ended.
  std::optional<GenerateEvent> next();
  std::optional<GenerateEvent> try_next();
  // The last event has been pushed and taken.
  bool done() const;

  // Called by push() (on the engine thread, outside the lock) after each event; for front ends that
  // wait on their own event loop instead of blocking in next(). Set it before the first event.
  void set_notifier(std::function<void()> notifier);

 private:
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<GenerateEvent> events_;
  bool closed_ = false;  // the last event was pushed
  std::function<void()> notifier_;
};

// What submit() returns: the request's id and its event stream.
struct RequestHandle {
  std::string request_id;
  std::shared_ptr<EventChannel> events;
};

}  // namespace longbow
