#include "model/backend/cuda/cuda_sampling.h"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "kernels/sampling/params.h"
#include "model/backend/cuda/cuda_check.h"

namespace longbow::cuda_sampling {
namespace {

size_t align16(size_t bytes) { return (bytes + 15) / 16 * 16; }

// Byte offsets of the sections of one packed call.
struct Layout {
  size_t row_params = 0, bias = 0, mask = 0, penalties = 0, allow = 0;
  size_t upload_end = 0;  // the inputs are [0, upload_end)
  size_t bias_raw = 0, mask_raw = 0, penalty_raw = 0;
  size_t tokens = 0, logprobs = 0, top_ids = 0, top_logprobs = 0;
  size_t end = 0;  // the outputs are [tokens, end)
};

Layout plan(size_t rows, size_t biases, size_t masks, size_t penalties, size_t allow_words, size_t top_stride) {
  Layout l;
  size_t at = 0;
  auto take = [&at](size_t bytes) {
    const size_t offset = at;
    at += align16(bytes);
    return offset;
  };
  l.row_params = take(rows * sizeof(kernels::SamplingRowParams));
  l.bias = take(biases * sizeof(kernels::SamplingBias));
  l.mask = take(masks * sizeof(int));
  l.penalties = take(penalties * sizeof(kernels::SamplingPenalty));
  l.allow = take(allow_words * sizeof(uint32_t));
  l.upload_end = at;
  l.bias_raw = take(biases * sizeof(float));
  l.mask_raw = take(masks * sizeof(float));
  l.penalty_raw = take(penalties * sizeof(float));
  l.tokens = take(rows * sizeof(int));
  l.logprobs = take(rows * sizeof(float));
  l.top_ids = take(rows * top_stride * sizeof(int));
  l.top_logprobs = take(rows * top_stride * sizeof(float));
  l.end = at;
  return l;
}

}  // namespace

bool supports(const SamplingRow& row, int vocab_size) {
  if (row.num_logprobs > kernels::kMaxTopLogprobs) return false;
  if (!row.allow_mask.empty() && row.allow_mask.size() != (static_cast<size_t>(vocab_size) + 31) / 32) return false;
  return row.greedy() || row.temperature > 0.0f;
}

Status DeviceSampler::sample(cudaStream_t stream, const Allocate& allocate, Tensor& logits,
                             std::span<const SamplingRow> rows, std::span<RowSample> out) {
  if (logits.dtype != DType::kF32 || logits.rank != 2 || logits.data == nullptr) {
    return invalid_argument(fmt::format("sample: logits has dtype {} and shape {}, expected F32 [rows, vocab]",
                                        dtype_name(logits.dtype), logits.shape_string()));
  }
  if (static_cast<size_t>(logits.dim(0)) != rows.size() || rows.size() != out.size()) {
    return invalid_argument(fmt::format("sample: logits has {} rows, {} parameter rows, {} outputs", logits.dim(0),
                                        rows.size(), out.size()));
  }
  if (rows.empty()) return Status::Ok();
  if (logits.dim(1) > INT32_MAX / 2) return invalid_argument(fmt::format("sample: vocabulary of {}", logits.dim(1)));
  const int vocab = static_cast<int>(logits.dim(1));
  size_t biases = 0, masks = 0, penalties = 0, allow_words = 0, top_stride = 1;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingRow& row = rows[r];
    if (!supports(row, vocab)) return invalid_argument(fmt::format("sample: row {} is not supported on CUDA", r));
    biases += row.logit_bias.size();
    masks += row.masked_ids.size();
    penalties += row.penalties.size();
    allow_words += row.allow_mask.size();
    top_stride = std::max(top_stride, static_cast<size_t>(std::max(0, row.num_logprobs)));
  }
  const Layout l = plan(rows.size(), biases, masks, penalties, allow_words, top_stride);
  host_.assign(l.end, 0);
  auto* params = reinterpret_cast<kernels::SamplingRowParams*>(host_.data() + l.row_params);
  auto* bias = reinterpret_cast<kernels::SamplingBias*>(host_.data() + l.bias);
  auto* mask = reinterpret_cast<int*>(host_.data() + l.mask);
  auto* penalty = reinterpret_cast<kernels::SamplingPenalty*>(host_.data() + l.penalties);
  auto* allow = reinterpret_cast<uint32_t*>(host_.data() + l.allow);
  int nb = 0, nm = 0, np = 0;
  long long na = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const SamplingRow& row = rows[r];
    kernels::SamplingRowParams& p = params[r];
    p.temperature = row.temperature;
    p.top_k = row.top_k;
    p.top_p = row.top_p;
    p.min_p = row.min_p;
    p.stream = row.stream;
    p.counter = row.counter;
    p.num_logprobs = row.num_logprobs < 0 ? -1 : row.num_logprobs;
    p.bias_begin = nb;
    p.bias_count = static_cast<int>(row.logit_bias.size());
    for (const auto& [id, value] : row.logit_bias) bias[nb++] = kernels::SamplingBias{id, value};
    p.mask_begin = nm;
    p.mask_count = static_cast<int>(row.masked_ids.size());
    for (int32_t id : row.masked_ids) mask[nm++] = id;
    p.penalty_begin = np;
    p.penalty_count = static_cast<int>(row.penalties.size());
    for (const PenaltyEntry& e : row.penalties) {
      penalty[np++] = kernels::SamplingPenalty{e.id, e.output_count, e.in_prompt ? 1 : 0};
    }
    p.repetition_penalty = row.repetition_penalty;
    p.presence_penalty = row.presence_penalty;
    p.frequency_penalty = row.frequency_penalty;
    p.allow_begin = row.allow_mask.empty() ? -1 : na;
    std::copy(row.allow_mask.begin(), row.allow_mask.end(), allow + na);
    na += static_cast<long long>(row.allow_mask.size());
  }

  if (device_.num_bytes() < l.end) {
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));  // the old buffer may still be in use
    device_ = Tensor{};
    ASSIGN_OR_RETURN(device_, allocate(static_cast<int64_t>(std::max(l.end * 2, size_t{1} << 20))));
  }
  auto* base = static_cast<uint8_t*>(device_.data);
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base, host_.data(), l.upload_end, cudaMemcpyHostToDevice, stream));

  kernels::SampleParams k;
  k.logits = logits.as<float>();
  k.rows = static_cast<int>(rows.size());
  k.vocab = vocab;
  k.row_params = reinterpret_cast<const kernels::SamplingRowParams*>(base + l.row_params);
  k.bias = reinterpret_cast<const kernels::SamplingBias*>(base + l.bias);
  k.mask_ids = reinterpret_cast<const int*>(base + l.mask);
  k.penalties = reinterpret_cast<const kernels::SamplingPenalty*>(base + l.penalties);
  k.allow_words = reinterpret_cast<const uint32_t*>(base + l.allow);
  k.bias_raw = reinterpret_cast<float*>(base + l.bias_raw);
  k.mask_raw = reinterpret_cast<float*>(base + l.mask_raw);
  k.penalty_raw = reinterpret_cast<float*>(base + l.penalty_raw);
  k.out_tokens = reinterpret_cast<int*>(base + l.tokens);
  k.out_logprobs = reinterpret_cast<float*>(base + l.logprobs);
  k.out_top_ids = reinterpret_cast<int*>(base + l.top_ids);
  k.out_top_logprobs = reinterpret_cast<float*>(base + l.top_logprobs);
  k.top_stride = static_cast<int>(top_stride);
  RETURN_IF_ERROR(cuda_status(kernels::launch_sample(k, stream), "sample"));

  // Only the tokens, and the logprob sections when some row asked for them, come back.
  const bool any_logprobs = std::any_of(rows.begin(), rows.end(), [](const SamplingRow& r) { return r.num_logprobs >= 0; });
  const size_t download_end = any_logprobs ? l.end : l.logprobs;
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_.data() + l.tokens, base + l.tokens, download_end - l.tokens,
                                       cudaMemcpyDeviceToHost, stream));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  const auto* tokens = reinterpret_cast<const int*>(host_.data() + l.tokens);
  const auto* logprobs = reinterpret_cast<const float*>(host_.data() + l.logprobs);
  const auto* top_ids = reinterpret_cast<const int*>(host_.data() + l.top_ids);
  const auto* top_logprobs = reinterpret_cast<const float*>(host_.data() + l.top_logprobs);
  for (size_t r = 0; r < rows.size(); ++r) {
    RowSample& sample = out[r];
    sample = RowSample{};
    sample.token = tokens[r];
    if (sample.token < 0 || rows[r].num_logprobs < 0) continue;
    sample.logprob = logprobs[r];
    const size_t n = std::min(static_cast<size_t>(rows[r].num_logprobs), static_cast<size_t>(vocab));
    for (size_t i = 0; i < n; ++i) {
      sample.top.emplace_back(top_ids[r * top_stride + i], top_logprobs[r * top_stride + i]);
    }
  }
  return Status::Ok();
}

}  // namespace longbow::cuda_sampling
