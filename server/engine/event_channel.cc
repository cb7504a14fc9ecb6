#include "server/engine/event_channel.h"

namespace longbow {

void EventChannel::push(GenerateEvent event) {
  std::function<void()> notifier;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = event.last;
    events_.push_back(std::move(event));
    notifier = notifier_;
  }
  ready_.notify_all();
  if (notifier) notifier();
}

std::optional<GenerateEvent> EventChannel::next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait_for(lock, timeout, [this] { return !events_.empty() || closed_; });
  if (events_.empty()) return std::nullopt;
  GenerateEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

std::optional<GenerateEvent> EventChannel::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  ready_.wait(lock, [this] { return !events_.empty() || closed_; });
  if (events_.empty()) return std::nullopt;
  GenerateEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

std::optional<GenerateEvent> EventChannel::try_next() { return next(std::chrono::milliseconds(0)); }

bool EventChannel::done() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_ && events_.empty();
}

void EventChannel::set_notifier(std::function<void()> notifier) {
  std::lock_guard<std::mutex> lock(mutex_);
  notifier_ = std::move(notifier);
}

}  // namespace longbow
