#include "tests/unit/runtime/decode_scenario.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <span>

#include "model/backend/backend.h"

namespace longbow::testing {
namespace {

int pages_for(int tokens) { return (tokens + kPageSize - 1) / kPageSize; }

}  // namespace

int decode_scenario_pages(const DecodeScenario& scenario) {
  int pages = 0;
  for (int len : scenario.prompt_lens) pages += pages_for(len + scenario.decode_steps);
  return pages;
}

StatusOr<std::vector<ScenarioStep>> run_decode_scenario(Transformer& transformer, const DecodeScenario& scenario) {
  const auto n = scenario.prompt_lens.size();
  const int vocab = transformer.config().vocab_size;
  std::mt19937 rng(scenario.seed);
  std::uniform_int_distribution<int32_t> token(0, vocab - 1);

  std::vector<int32_t> pool(static_cast<size_t>(decode_scenario_pages(scenario)));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<std::vector<int32_t>> tokens(n), tables(n);
  size_t next_page = 0;
  for (size_t s = 0; s < n; ++s) {
    const int total = scenario.prompt_lens[s] + scenario.decode_steps;
    for (int i = 0; i < total; ++i) tokens[s].push_back(token(rng));
    for (int p = 0; p < pages_for(total); ++p) tables[s].push_back(pool[next_page++]);
  }

  std::vector<ScenarioStep> out;
  std::vector<int> done(n, 0);
  auto run = [&](std::vector<SequenceStep>& steps, bool decode) -> Status {
    ScenarioStep step;
    step.num_seqs = static_cast<int>(steps.size());
    step.decode = decode;
    RETURN_IF_ERROR(transformer.forward(steps, &step.logits));
    out.push_back(std::move(step));
    return Status::Ok();
  };
  for (size_t s = 0; s < n; ++s) {
    std::vector<SequenceStep> steps = {
        {std::span(tokens[s]).first(static_cast<size_t>(scenario.prompt_lens[s])), 0, {tables[s]}, -1, true}};
    RETURN_IF_ERROR(run(steps, false));
    done[s] = scenario.prompt_lens[s];
  }
  for (int i = 0; i < scenario.decode_steps; ++i) {
    const auto batch = static_cast<size_t>(scenario.batch_sizes[static_cast<size_t>(i) % scenario.batch_sizes.size()]);
    if (batch == 0 || batch > n) return invalid_argument("decode scenario: batch size outside [1, sequences]");
    std::vector<size_t> members;
    for (size_t j = 0; j < batch; ++j) members.push_back((static_cast<size_t>(i) * 3 + j) % n);
    std::rotate(members.begin(), members.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(i) % batch),
                members.end());
    std::vector<SequenceStep> steps;
    for (size_t s : members) {
      const auto at = static_cast<size_t>(done[s]);
      steps.push_back({std::span(tokens[s]).subspan(at, 1), done[s], {tables[s]}, -1, true});
      ++done[s];
    }
    RETURN_IF_ERROR(run(steps, true));
  }
  return out;
}

}  // namespace longbow::testing
