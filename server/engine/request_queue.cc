#include "server/engine/request_queue.h"

namespace longbow {

void RequestQueue::push(EngineCommand command) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.push_back(std::move(command));
  }
  ready_.notify_one();
}

void RequestQueue::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  ready_.notify_one();
}

std::vector<EngineCommand> RequestQueue::pop_all(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (timeout.count() > 0) ready_.wait_for(lock, timeout, [this] { return !commands_.empty() || woken_; });
  woken_ = false;
  std::vector<EngineCommand> out;
  out.swap(commands_);
  return out;
}

size_t RequestQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return commands_.size();
}

}  // namespace longbow
