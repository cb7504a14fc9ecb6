// Communicator: the collectives tensor parallelism needs (DESIGN §10), one object per rank. A
// layer whose output is split over ranks calls them on its own backend's tensors; every rank of the
// group must make the same calls in the same order with matching shapes, or the call fails on all of
// them. Implementations: CpuCollectives (threads over host memory, for the CPU backend and CI); an
// NCCL one for CUDA devices is the multi-GPU step still to come.
#pragma once

#include <memory>

#include "common/status.h"
#include "model/backend/tensor.h"

namespace longbow {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // x ← Σ over ranks of every rank's x (same shape and dtype everywhere). Every rank ends with the
  // same values: the sum is taken in rank order.
  virtual Status all_reduce_sum(Tensor& x) = 0;
  // out [rows, Σ n_r] ← every rank's part [rows, n_r] side by side in rank order (rows equal on every
  // rank, widths may differ), on every rank.
  virtual Status all_gather_columns(const Tensor& part, Tensor& out) = 0;
};

// The communicators of one group of ranks, and what the runner that drives them needs besides.
class CollectiveGroup {
 public:
  virtual ~CollectiveGroup() = default;
  virtual int size() const = 0;
  virtual Communicator& rank(int r) = 0;
  // A rank that fails outside a collective calls abort() so that ranks waiting in one return ABORTED
  // instead of waiting for it forever; reset() (with no rank inside a collective) makes the group
  // usable again for the next step.
  virtual void abort() = 0;
  virtual void reset() = 0;
};

}  // namespace longbow
