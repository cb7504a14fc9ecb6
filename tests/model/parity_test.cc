// The CPU runtime against transformers (fp32) on the tiny checkpoints in tests/data/parity/<name>/
// (made by tests/model/make_fixtures.py on the GPU machine). Per case: the same greedy tokens, and the
// logits after the prompt and at the last greedy step within 1e-4 relative L2 (DESIGN §6).
//
// Every directory under tests/data/parity is a fixture. No fixture at all is a failure, not a skip.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "common/json_file.h"
#include "model/backend/backend.h"
#include "model/config/model_config.h"
#include "model/kv_cache/kv_pool_size.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors.h"

namespace longbow {
namespace {

constexpr double kMaxRelativeL2 = 1e-4;

std::string parity_dir() { return std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity"; }

std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(parity_dir(), error)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

struct ParityCase {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> generated_ids;
  std::vector<float> prompt_logits;
  std::vector<float> final_logits;
};

StatusOr<std::vector<ParityCase>> read_cases(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json doc, read_json_file(path));
  std::vector<ParityCase> cases;
  try {
    for (const nlohmann::json& c : doc.at("cases")) {
      cases.push_back({c.at("prompt_ids").get<std::vector<int32_t>>(), c.at("generated_ids").get<std::vector<int32_t>>(),
                       c.at("prompt_logits").get<std::vector<float>>(), c.at("final_logits").get<std::vector<float>>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return invalid_argument(path + ": " + e.what());
  }
  if (cases.empty()) return invalid_argument(path + ": no cases");
  return cases;
}

double relative_l2(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff += (double{got[i]} - want[i]) * (double{got[i]} - want[i]);
    norm += double{want[i]} * want[i];
  }
  return std::isnan(diff) || norm == 0.0 ? INFINITY : std::sqrt(diff / norm);
}

int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

TEST(ParityFixtures, ArePresent) {
  EXPECT_FALSE(fixture_names().empty()) << "no parity fixtures under " << parity_dir()
                                        << " (make them with tests/model/make_fixtures.py on the GPU machine)";
}

class ParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParityTest, CpuRuntimeMatchesTransformers) {
  const std::string dir = parity_dir() + "/" + GetParam();
  auto config = load_model_config(dir);
  ASSERT_TRUE(config.ok()) << config.status().to_string();
  auto checkpoint = Checkpoint::open(dir);
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  auto cases = read_cases(dir + "/expected.json");
  ASSERT_TRUE(cases.ok()) << cases.status().to_string();
  auto backend = create_backend("cpu");
  ASSERT_TRUE(backend.ok()) << backend.status().to_string();

  int longest = 0;
  for (const ParityCase& c : *cases) {
    longest = std::max(longest, static_cast<int>(c.prompt_ids.size() + c.generated_ids.size()));
  }
  RuntimeOptions options;
  options.num_kv_pages = pages_for_tokens(longest, kPageSize);
  options.max_batched_tokens = std::max(longest, 1);
  options.max_num_seqs = 1;
  auto model = Transformer::load(*config, **checkpoint, **backend, options);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  // Pages in reverse order, so logical and physical positions differ; one table per cache group
  // (a window group keeps every page here: the whole sequence fits).
  std::vector<int32_t> table(static_cast<size_t>(options.num_kv_pages));
  for (size_t i = 0; i < table.size(); ++i) table[i] = options.num_kv_pages - 1 - static_cast<int32_t>(i);
  const std::vector<std::span<const int32_t>> tables((*model)->cache_groups().size(), table);

  for (size_t n = 0; n < cases->size(); ++n) {
    const ParityCase& c = (*cases)[n];
    SCOPED_TRACE("case " + std::to_string(n) + " (prompt of " + std::to_string(c.prompt_ids.size()) + " tokens)");
    ASSERT_FALSE(c.generated_ids.empty());
    std::vector<int32_t> sequence = c.prompt_ids;
    std::vector<float> logits;
    SequenceStep prefill{sequence, 0, tables, -1, true};
    Status status = (*model)->forward(std::span(&prefill, 1), &logits);
    ASSERT_TRUE(status.ok()) << status.to_string();
    double prompt_error = relative_l2(logits, c.prompt_logits);
    EXPECT_LT(prompt_error, kMaxRelativeL2) << "prompt logits";

    std::vector<int32_t> generated = {argmax(logits)};
    while (generated.size() < c.generated_ids.size()) {
      sequence.push_back(generated.back());
      SequenceStep decode{std::span(sequence).last(1), static_cast<int32_t>(sequence.size() - 1), tables, -1, true};
      ASSERT_TRUE((*model)->forward(std::span(&decode, 1), &logits).ok());
      generated.push_back(argmax(logits));
    }
    EXPECT_EQ(generated, c.generated_ids) << "greedy continuation";
    double final_error = relative_l2(logits, c.final_logits);
    EXPECT_LT(final_error, kMaxRelativeL2) << "final logits";
    std::cout << "[parity] " << GetParam() << " case " << n << ": prompt logits rel L2 " << prompt_error
              << ", final logits rel L2 " << final_error << "\n";
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ParityTest, ::testing::ValuesIn(fixture_names()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string name = param_info.param;  // gtest names: letters, digits, '_'
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ParityTest);  // ParityFixtures.ArePresent fails instead

}  // namespace
}  // namespace longbow
