#include "model/runtime/tensor_parallel.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/logging.h"
#include "model/parallel/cpu_collectives.h"
#include "model/runtime/transformer_impl.h"

namespace longbow {
namespace {

// One thread per rank but the first, each waiting for a job; run() gives every rank the job, runs
// rank 0's on the calling thread and returns every rank's status once all are done.
class RankThreads {
 public:
  explicit RankThreads(int size) : results_(static_cast<size_t>(size)) {
    for (int r = 1; r < size; ++r) threads_.emplace_back([this, r] { loop(r); });
  }
  ~RankThreads() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    start_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  RankThreads(const RankThreads&) = delete;
  RankThreads& operator=(const RankThreads&) = delete;

  std::vector<Status> run(const std::function<Status(int)>& job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      pending_ = static_cast<int>(threads_.size());
      ++epoch_;
    }
    start_.notify_all();
    results_[0] = job(0);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    return results_;
  }

 private:
  void loop(int rank) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<Status(int)>* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mu_);
        start_.wait(lock, [&] { return stop_ || epoch_ != seen; });
        if (stop_) return;
        seen = epoch_;
        job = job_;
      }
      Status status = (*job)(rank);
      std::lock_guard<std::mutex> lock(mu_);
      results_[static_cast<size_t>(rank)] = std::move(status);
      if (--pending_ == 0) done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable start_, done_;
  const std::function<Status(int)>* job_ = nullptr;
  uint64_t epoch_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::vector<Status> results_;
  std::vector<std::thread> threads_;
};

class TensorParallelModel final : public Transformer {
 public:
  TensorParallelModel(std::vector<std::unique_ptr<Backend>> backends, std::unique_ptr<CollectiveGroup> collectives)
      : backends_(std::move(backends)), collectives_(std::move(collectives)), threads_(collectives_->size()) {}

  Status init(const ModelConfig& config, const WeightSource& weights, const RuntimeOptions& options,
              bool expert_parallel) {
    const int size = collectives_->size();
    for (int r = 0; r < size; ++r) {
      const RankContext rank{ParallelRank{r, size, expert_parallel}, size > 1 ? &collectives_->rank(r) : nullptr};
      ranks_.push_back(std::make_unique<Decoder>(config, *backends_[static_cast<size_t>(r)], options, rank));
    }
    RETURN_IF_ERROR(on_every_rank([&](int r) { return ranks_[static_cast<size_t>(r)]->init(weights); }));
    const Decoder& first = *ranks_.front();
    for (int r = 1; r < size; ++r) {
      const Decoder& other = *ranks_[static_cast<size_t>(r)];
      if (other.cache_groups().size() != first.cache_groups().size()) {
        return internal_error(fmt::format("tensor parallelism: rank {} has {} cache groups, rank 0 {}", r,
                                          other.cache_groups().size(), first.cache_groups().size()));
      }
      for (int g = 0; g < static_cast<int>(first.cache_groups().size()); ++g) {
        if (other.num_pages(g) != first.num_pages(g)) {
          return internal_error(
              fmt::format("tensor parallelism: cache group {} has {} pages on rank {} but {} on "
                          "rank 0; the scheduler needs one page count",
                          g, other.num_pages(g), r, first.num_pages(g)));
        }
      }
    }
    return Status::Ok();
  }

  Status forward(std::span<const SequenceStep> steps, std::vector<float>* logits) override {
    return on_every_rank(
        [&](int r) { return ranks_[static_cast<size_t>(r)]->forward(steps, r == 0 ? logits : nullptr); });
  }
  // Every rank holds the whole logits after the LM head's all-gather: rank 0 samples, the others only
  // run the step.
  bool supports_sampling(const SamplingRow& row) const override { return ranks_.front()->supports_sampling(row); }
  Status forward_sample(std::span<const SequenceStep> steps, std::span<const SamplingRow> rows,
                        std::vector<RowSample>* samples) override {
    return on_every_rank([&](int r) {
      return r == 0 ? ranks_.front()->forward_sample(steps, rows, samples)
                    : ranks_[static_cast<size_t>(r)]->forward(steps, nullptr);
    });
  }
  int num_decode_graphs() const override { return ranks_.front()->num_decode_graphs(); }
  const ModelConfig& config() const override { return ranks_.front()->config(); }
  const std::vector<CacheGroup>& cache_groups() const override { return ranks_.front()->cache_groups(); }
  int num_pages(int group) const override { return ranks_.front()->num_pages(group); }
  Status read_index_cache(int layer, std::vector<uint8_t>* bytes) override {
    return ranks_.front()->read_index_cache(layer, bytes);
  }
  Status read_dsa_selection(std::vector<int32_t>* selection) override {
    return ranks_.front()->read_dsa_selection(selection);
  }

 private:
  // Runs job(r) on every rank at once. A rank that fails aborts the collectives so that no other rank
  // waits for it; the first failure that is not such an abort is returned, with its rank.
  Status on_every_rank(const std::function<Status(int)>& job) {
    const std::vector<Status> results = threads_.run([&](int r) {
      Status status = job(r);
      if (!status.ok()) collectives_->abort();
      return status;
    });
    collectives_->reset();
    const Status* failure = nullptr;
    int failed_rank = 0;
    for (size_t r = 0; r < results.size(); ++r) {
      if (results[r].ok()) continue;
      if (failure == nullptr ||
          (failure->code() == StatusCode::kCancelled && results[r].code() != StatusCode::kCancelled)) {
        failure = &results[r];
        failed_rank = static_cast<int>(r);
      }
    }
    if (failure == nullptr) return Status::Ok();
    return failure->with_context(fmt::format("tensor-parallel rank {}", failed_rank));
  }

  std::vector<std::unique_ptr<Backend>> backends_;
  std::unique_ptr<CollectiveGroup> collectives_;
  RankThreads threads_;
  std::vector<std::unique_ptr<Decoder>> ranks_;
};

}  // namespace

StatusOr<std::unique_ptr<CollectiveGroup>> make_collectives(const std::vector<std::unique_ptr<Backend>>& backends) {
  for (const auto& backend : backends) {
    if (backends.size() > 1 && backend->name() != "cpu") {
      return unimplemented(
          fmt::format("tensor parallelism on the {} backend needs the NCCL communicator, which is "
                      "not built yet (the cpu backend runs it)",
                      backend->name()));
    }
  }
  return std::unique_ptr<CollectiveGroup>(std::make_unique<CpuCollectives>(static_cast<int>(backends.size())));
}

StatusOr<std::unique_ptr<Transformer>> load_tensor_parallel(const ModelConfig& config, const WeightSource& weights,
                                                            std::vector<std::unique_ptr<Backend>> backends,
                                                            const RuntimeOptions& options, bool expert_parallel) {
  if (backends.empty()) return invalid_argument("tensor parallelism: no backends");
  ASSIGN_OR_RETURN(std::unique_ptr<CollectiveGroup> collectives, make_collectives(backends));
  auto model = std::make_unique<TensorParallelModel>(std::move(backends), std::move(collectives));
  RETURN_IF_ERROR(model->init(config, weights, options, expert_parallel));
  return std::unique_ptr<Transformer>(std::move(model));
}

StatusOr<LoadedRuntime> load_runtime(const ModelConfig& config, const WeightSource& weights,
                                     std::string_view backend_name, int tensor_parallel_size,
                                     const RuntimeOptions& options, bool expert_parallel) {
  if (tensor_parallel_size < 1) {
    return invalid_argument(fmt::format("--tensor-parallel-size must be >= 1, got {}", tensor_parallel_size));
  }
  LoadedRuntime loaded;
  if (tensor_parallel_size == 1) {
    if (expert_parallel) spdlog::warn("--enable-expert-parallel has no effect with --tensor-parallel-size 1");
    ASSIGN_OR_RETURN(loaded.backend, create_backend(backend_name));
    ASSIGN_OR_RETURN(loaded.transformer, Transformer::load(config, weights, *loaded.backend, options));
    return loaded;
  }
  std::vector<std::unique_ptr<Backend>> backends;
  for (int r = 0; r < tensor_parallel_size; ++r) {
    ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, create_backend(backend_name));
    backends.push_back(std::move(backend));
  }
  spdlog::info("tensor parallelism: {} ranks on the {} backend{}", tensor_parallel_size, backends.front()->name(),
               expert_parallel ? ", MoE experts spread whole over them" : "");
  ASSIGN_OR_RETURN(loaded.transformer,
                   load_tensor_parallel(config, weights, std::move(backends), options, expert_parallel));
  return loaded;
}

}  // namespace longbow
