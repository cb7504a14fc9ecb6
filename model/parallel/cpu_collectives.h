// CpuCollectives: a CollectiveGroup of `size` ranks that are threads of this process, over host
// memory (the CPU backend's tensors). Each collective is two barriers: every rank posts its tensor,
// then reads all of them, then (after the second barrier, when no rank still reads) writes its own
// result. Sums are taken in fp32 in rank order, so every rank computes bit-identical values.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "model/parallel/communicator.h"

namespace longbow {

class CpuCollectives final : public CollectiveGroup {
 public:
  explicit CpuCollectives(int size);
  ~CpuCollectives() override;
  int size() const override { return size_; }
  Communicator& rank(int r) override;
  void abort() override;
  void reset() override;

 private:
  class Rank;
  friend class Rank;
  // Waits until every rank has arrived (ABORTED when the group is aborted meanwhile).
  Status arrive();

  int size_;
  std::vector<std::unique_ptr<Rank>> ranks_;
  std::vector<const Tensor*> posted_;  // each rank's tensor of the collective in progress
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
};

}  // namespace longbow
