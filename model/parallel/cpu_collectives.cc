#include "model/parallel/cpu_collectives.h"

#include <fmt/format.h>

#include <cstring>

namespace longbow {

class CpuCollectives::Rank final : public Communicator {
 public:
  Rank(CpuCollectives& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.size_; }

  Status all_reduce_sum(Tensor& x) override {
    RETURN_IF_ERROR(post(x));
    // Every rank reads the same posted tensors, so a mismatch fails on every rank alike.
    Status status = check_f32(x);
    std::vector<float> sum;
    if (status.ok()) {
      sum.assign(static_cast<size_t>(x.numel()), 0.0f);
      for (const Tensor* t : group_.posted_) {
        if (t->numel() != x.numel() || t->dtype != x.dtype) {
          status = invalid_argument(fmt::format("all_reduce_sum: rank tensors {} and {} differ", t->shape_string(),
                                                x.shape_string()));
          break;
        }
        const float* v = t->as<const float>();
        for (size_t i = 0; i < sum.size(); ++i) sum[i] += v[i];
      }
    }
    RETURN_IF_ERROR(group_.arrive());  // no rank reads any more
    RETURN_IF_ERROR(status);
    std::memcpy(x.data, sum.data(), sum.size() * sizeof(float));
    return Status::Ok();
  }

  Status all_gather_columns(const Tensor& part, Tensor& out) override {
    RETURN_IF_ERROR(post(part));
    Status status = check_f32(part);
    if (status.ok()) status = check_f32(out);
    const int64_t rows = part.rank == 2 ? part.dim(0) : -1;
    int64_t width = 0;
    for (const Tensor* t : group_.posted_) {
      if (!status.ok()) break;
      if (t->rank != 2 || t->dim(0) != rows) {
        status = invalid_argument(fmt::format("all_gather_columns: rank parts {} and {} differ in rows",
                                              t->shape_string(), part.shape_string()));
      }
      width += t->rank == 2 ? t->dim(1) : 0;
    }
    if (status.ok() && (out.rank != 2 || out.dim(0) != rows || out.dim(1) != width)) {
      status = invalid_argument(fmt::format("all_gather_columns: out {} for {} rows of {} columns",
                                            out.shape_string(), rows, width));
    }
    if (status.ok()) {
      int64_t col = 0;
      for (const Tensor* t : group_.posted_) {
        const int64_t n = t->dim(1);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(out.as<float>() + r * width + col, t->as<const float>() + r * n,
                      static_cast<size_t>(n) * sizeof(float));
        }
        col += n;
      }
    }
    RETURN_IF_ERROR(group_.arrive());  // every rank has read every part
    return status;
  }

 private:
  Status post(const Tensor& t) {
    group_.posted_[static_cast<size_t>(rank_)] = &t;
    return group_.arrive();
  }
  static Status check_f32(const Tensor& t) {
    if (t.dtype == DType::kF32) return Status::Ok();
    return unimplemented(fmt::format("cpu collectives: {} tensors (the CPU backend computes in F32)",
                                     dtype_name(t.dtype)));
  }

  CpuCollectives& group_;
  int rank_;
};

CpuCollectives::CpuCollectives(int size) : size_(size), posted_(static_cast<size_t>(size), nullptr) {
  for (int r = 0; r < size; ++r) ranks_.push_back(std::make_unique<Rank>(*this, r));
}

CpuCollectives::~CpuCollectives() = default;

Communicator& CpuCollectives::rank(int r) { return *ranks_.at(static_cast<size_t>(r)); }

Status CpuCollectives::arrive() {
  std::unique_lock<std::mutex> lock(mu_);
  if (aborted_) return cancelled("cpu collectives: another rank failed; the step was abandoned");
  const uint64_t generation = generation_;
  if (++arrived_ == size_) {
    arrived_ = 0;
    ++generation_;
    cv_.notify_all();
    return Status::Ok();
  }
  cv_.wait(lock, [&] { return generation_ != generation || aborted_; });
  if (generation_ == generation) return cancelled("cpu collectives: another rank failed; the step was abandoned");
  return Status::Ok();
}

void CpuCollectives::abort() {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = true;
  cv_.notify_all();
}

void CpuCollectives::reset() {
  std::lock_guard<std::mutex> lock(mu_);
  aborted_ = false;
  arrived_ = 0;
}

}  // namespace longbow
