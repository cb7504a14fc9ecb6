// CpuBackend::sample: the reference sampler (model/sampling/reference_sampler.h) on each row.
#include <fmt/format.h>

#include "model/backend/cpu/cpu_backend.h"
#include "model/sampling/reference_sampler.h"

namespace longbow {

bool CpuBackend::supports_sampling(const SamplingRow& row, int vocab_size) const {
  (void)row, (void)vocab_size;
  return true;
}

Status CpuBackend::sample(Tensor& logits, std::span<const SamplingRow> rows, std::span<RowSample> out) {
  if (logits.dtype != DType::kF32 || logits.rank != 2) {
    return invalid_argument(fmt::format("sample: logits has dtype {} and shape {}, expected F32 [rows, vocab]",
                                        dtype_name(logits.dtype), logits.shape_string()));
  }
  if (static_cast<size_t>(logits.dim(0)) != rows.size() || rows.size() != out.size()) {
    return invalid_argument(fmt::format("sample: logits has {} rows, {} parameter rows, {} outputs", logits.dim(0),
                                        rows.size(), out.size()));
  }
  const auto vocab = static_cast<size_t>(logits.dim(1));
  ReferenceSampler sampler(static_cast<int>(vocab));
  const float* data = logits.as<float>();
  for (size_t r = 0; r < rows.size(); ++r) {
    RETURN_IF_ERROR(sampler.sample(std::span<const float>(data + r * vocab, vocab), rows[r], &out[r])
                        .with_context(fmt::format("sample: row {}", r)));
  }
  return Status::Ok();
}

}  // namespace longbow
