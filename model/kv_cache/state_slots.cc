#include "model/kv_cache/state_slots.h"

#include <fmt/format.h>

#include <algorithm>

namespace longbow {

StateSlots::StateSlots(int num_slots) : num_slots_(std::max(0, num_slots)) {
  for (int32_t slot = num_slots_ - 1; slot >= 0; --slot) free_.push_back(slot);
}

Status StateSlots::allocate(SeqId seq) {
  if (held_.count(seq)) return invalid_argument(fmt::format("kv cache: sequence {} already holds a state slot", seq));
  if (free_.empty()) {
    return resource_exhausted(
        fmt::format("kv cache: no free state slot for sequence {} (all {} held)", seq, num_slots_));
  }
  held_.emplace(seq, free_.back());
  free_.pop_back();
  return Status::Ok();
}

void StateSlots::free(SeqId seq) {
  auto it = held_.find(seq);
  if (it == held_.end()) return;
  free_.push_back(it->second);
  held_.erase(it);
}

int32_t StateSlots::slot(SeqId seq) const {
  auto it = held_.find(seq);
  return it == held_.end() ? -1 : it->second;
}

Status StateSlots::check_integrity() const {
  std::vector<int> owners(static_cast<size_t>(num_slots_), 0);
  auto count = [&](int32_t slot) -> Status {
    if (slot < 0 || slot >= num_slots_) {
      return internal_error(fmt::format("kv cache integrity: state slot {} out of range", slot));
    }
    if (++owners[static_cast<size_t>(slot)] > 1) {
      return internal_error(fmt::format("kv cache integrity: state slot {} is held twice or held and free", slot));
    }
    return Status::Ok();
  };
  for (int32_t slot : free_) RETURN_IF_ERROR(count(slot));
  for (const auto& [seq, slot] : held_) RETURN_IF_ERROR(count(slot));
  if (static_cast<int>(free_.size() + held_.size()) != num_slots_) {
    return internal_error(fmt::format("kv cache integrity: {} free and {} held state slots of {}", free_.size(),
                                      held_.size(), num_slots_));
  }
  return Status::Ok();
}

}  // namespace longbow
