// StateSlots: the slot pool of one state cache group (DESIGN §5: linear-attention layers keep a
// fixed state per sequence). Each running sequence holds exactly one slot, from its admission to
// its end (finish, cancel, preemption); a slot is never shared and never hit by the prefix cache.
//
// A slot handed out holds whatever its last owner left: the runtime zeroes it before the
// sequence's first step. That step is the one with num_cached == 0 (SequenceStep): a sequence
// with a state group always starts from token 0, since state groups accept no prefix hit, and a
// preempted one gets a new slot and restarts from token 0.
//
// No device code. Not thread-safe: the engine thread owns it (through the KV manager).
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/kv_cache/page_group.h"

namespace longbow {

class StateSlots {
 public:
  explicit StateSlots(int num_slots);

  int num_slots() const { return num_slots_; }
  int num_free() const { return static_cast<int>(free_.size()); }
  int num_used() const { return num_slots_ - num_free(); }

  // Gives `seq` a slot. RESOURCE_EXHAUSTED (no change) when none is free; INVALID_ARGUMENT if
  // `seq` already holds one.
  Status allocate(SeqId seq);
  // Returns `seq`'s slot to the pool; unknown ids are ignored.
  void free(SeqId seq);
  // `seq`'s slot, or -1.
  int32_t slot(SeqId seq) const;

  // Every slot is free xor held by exactly one sequence. INTERNAL naming the first broken invariant.
  Status check_integrity() const;

 private:
  int num_slots_;
  std::vector<int32_t> free_;  // a stack: the lowest slots come out first from a fresh pool
  std::unordered_map<SeqId, int32_t> held_;
};

}  // namespace longbow
