#include "server/frontend/http/event_merger.h"

#include <utility>

namespace longbow::http {

EventMerger::EventMerger(std::vector<RequestHandle> handles) : handles_(std::move(handles)) {
  for (RequestHandle& handle : handles_) {
    std::weak_ptr<Waker> weak = waker_;
    handle.events->set_notifier([weak] {
      if (std::shared_ptr<Waker> waker = weak.lock()) {
        std::function<void()> wake;
        {
          std::lock_guard<std::mutex> lock(waker->mutex);
          ++waker->pushes;
          wake = waker->wake;
        }
        waker->cv.notify_all();
        if (wake) wake();
      }
    });
  }
}

EventMerger::~EventMerger() {
  // Dropping the handles is enough for the engine to cancel; the notifiers must not outlive us
  // holding anything but a weak reference, which they do.
  for (RequestHandle& handle : handles_) handle.events->set_notifier(nullptr);
}

bool EventMerger::done() const {
  for (const RequestHandle& handle : handles_) {
    if (!handle.events->done()) return false;
  }
  return true;
}

void EventMerger::set_wake(std::function<void()> wake) {
  {
    std::lock_guard<std::mutex> lock(waker_->mutex);
    waker_->wake = wake;
  }
  if (wake) wake();  // events may have arrived before
}

std::optional<EventMerger::Tagged> EventMerger::try_next() {
  for (size_t k = 0; k < handles_.size(); ++k) {
    const size_t i = (cursor_ + k) % handles_.size();
    if (std::optional<GenerateEvent> event = handles_[i].events->try_next()) {
      cursor_ = (i + 1) % handles_.size();
      return Tagged{i, std::move(*event)};
    }
  }
  return std::nullopt;
}

std::optional<EventMerger::Tagged> EventMerger::next(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    uint64_t seen = 0;
    {
      std::lock_guard<std::mutex> lock(waker_->mutex);
      seen = waker_->pushes;
    }
    if (std::optional<Tagged> tagged = try_next()) return tagged;
    if (done()) return std::nullopt;
    std::unique_lock<std::mutex> lock(waker_->mutex);
    if (!waker_->cv.wait_until(lock, deadline, [&] { return waker_->pushes != seen; })) return std::nullopt;
  }
}

void EventMerger::cancel(Engine& engine) {
  for (const RequestHandle& handle : handles_) {
    if (!handle.events->done()) engine.cancel(handle.request_id);
  }
}

}  // namespace longbow::http
