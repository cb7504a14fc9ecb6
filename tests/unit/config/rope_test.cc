// make_rope_table against the RoPE formulas evaluated independently in double precision, and a few
// points worked out by hand. (The fp32 tables were also compared bit for bit against transformers
// 5.17's RotaryEmbedding modules on the GPU machine; see model/config/rope.cc.)
#include "model/config/rope.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "common/json_file.h"

namespace longbow {
namespace {

constexpr double kPi = std::numbers::pi;

// The reference formulas, in double.
std::vector<double> reference_inv_freq(const RopeConfig& rope) {
  const int dim = rope.rotary_dim;
  std::vector<double> inv(static_cast<size_t>(dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) inv[i] = std::pow(rope.theta, -2.0 * static_cast<double>(i) / dim);
  switch (rope.type) {
    case RopeType::kDefault:
      break;
    case RopeType::kLinear:
      for (double& f : inv) f /= rope.factor;
      break;
    case RopeType::kLlama3: {
      const double original = rope.original_max_position_embeddings;
      for (double& f : inv) {
        const double wavelen = 2 * kPi / f;
        if (wavelen < original / rope.high_freq_factor) continue;  // high frequency: unchanged
        if (wavelen > original / rope.low_freq_factor) {            // low frequency: interpolated
          f /= rope.factor;
          continue;
        }
        const double smooth = (original / wavelen - rope.low_freq_factor) / (rope.high_freq_factor - rope.low_freq_factor);
        f = (1 - smooth) * f / rope.factor + smooth * f;
      }
      break;
    }
    case RopeType::kYarn: {
      auto correction_dim = [&](double rotations) {
        return dim * std::log(rope.original_max_position_embeddings / (rotations * 2 * kPi)) / (2 * std::log(rope.theta));
      };
      double low = correction_dim(rope.beta_fast), high = correction_dim(rope.beta_slow);
      if (rope.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1.0);
      if (low == high) high += 0.001;
      for (size_t i = 0; i < inv.size(); ++i) {
        const double keep = 1.0 - std::clamp((static_cast<double>(i) - low) / (high - low), 0.0, 1.0);
        inv[i] = inv[i] / rope.factor * (1 - keep) + inv[i] * keep;
      }
      break;
    }
  }
  return inv;
}

void expect_matches_reference(const RopeConfig& rope) {
  RopeTable table = make_rope_table(rope);
  std::vector<double> reference = reference_inv_freq(rope);
  ASSERT_EQ(table.inv_freq.size(), reference.size());
  for (size_t i = 0; i < reference.size(); ++i) {
    // fp32 evaluation: a few roundings of relative size 2^-24 each. Yarn's ramp blends the kept and
    // the divided frequency, so its rounding error is relative to the larger, kept one.
    const double unscaled = std::pow(rope.theta, -2.0 * static_cast<double>(i) / rope.rotary_dim);
    const double tolerance = 4e-7 * (rope.type == RopeType::kYarn ? unscaled : reference[i]);
    EXPECT_NEAR(table.inv_freq[i], reference[i], tolerance) << "pair " << i;
  }
}

RopeConfig rope_of(const std::string& config_file) {
  StatusOr<nlohmann::json> json = read_json_file(std::string(LONGBOW_SOURCE_DIR) + "/tests/data/configs/" + config_file);
  EXPECT_TRUE(json.ok()) << json.status().to_string();
  StatusOr<ModelConfig> config = parse_model_config(*json);
  EXPECT_TRUE(config.ok()) << config.status().to_string();
  return config.ok() ? config->rope : RopeConfig{};
}

TEST(RopeTable, DefaultMatchesFormulaAndHandValues) {
  RopeConfig rope;
  rope.theta = 10000.0;
  rope.rotary_dim = 128;
  expect_matches_reference(rope);
  RopeTable table = make_rope_table(rope);
  EXPECT_EQ(table.attention_scaling, 1.0f);
  EXPECT_FLOAT_EQ(table.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(table.inv_freq[16], 0.1f);    // 10000^(-32/128)
  EXPECT_FLOAT_EQ(table.inv_freq[32], 0.01f);   // 10000^(-64/128)
  EXPECT_FLOAT_EQ(table.inv_freq[48], 0.001f);  // 10000^(-96/128)
}

TEST(RopeTable, LinearDividesByFactor) {
  RopeConfig rope = rope_of("llama-linear-16k.config.json");
  ASSERT_EQ(rope.type, RopeType::kLinear);
  expect_matches_reference(rope);
  EXPECT_FLOAT_EQ(make_rope_table(rope).inv_freq[32], 0.0025f);  // 0.01 / 4
}

TEST(RopeTable, Llama3MatchesFormulaAndHandValues) {
  RopeConfig rope = rope_of("llama-3.1-8b.config.json");
  ASSERT_EQ(rope.type, RopeType::kLlama3);
  expect_matches_reference(rope);
  RopeTable table = make_rope_table(rope);
  // Wavelength thresholds 8192/4 = 2048 and 8192/1 = 8192: with theta 500000 and 64 pairs, pairs
  // 0..28 keep their frequency, 35..63 are divided by 8, and 29..34 are smoothed.
  EXPECT_FLOAT_EQ(table.inv_freq[0], 1.0f);
  EXPECT_FLOAT_EQ(table.inv_freq[28], static_cast<float>(std::pow(500000.0, -56.0 / 128)));
  EXPECT_FLOAT_EQ(table.inv_freq[63], 3.068925988914511e-07f);  // 500000^(-126/128) / 8
  // Pair 32: inv = 500000^-0.5 = 0.00141421356, wavelen = 2π/inv = 4442.883,
  // smooth = (8192/4442.883 - 1) / 3 = 0.2812826, inv · ((1 - smooth)/8 + smooth) = 0.00052484616.
  EXPECT_NEAR(table.inv_freq[32], 0.00052484616, 2e-10);  // ~3 fp32 ulps
  EXPECT_EQ(table.attention_scaling, 1.0f);

  expect_matches_reference(rope_of("llama-3.2-1b.rope-parameters.config.json"));
}

TEST(RopeTable, YarnMatchesFormulaAndHandValues) {
  RopeConfig rope = rope_of("qwen2.5-7b.yarn.config.json");
  ASSERT_EQ(rope.type, RopeType::kYarn);
  expect_matches_reference(rope);
  RopeTable table = make_rope_table(rope);
  // Correction range: floor(23.596) = 23 to ceil(39.651) = 40; pairs up to 23 keep their frequency,
  // pairs from 40 are divided by 4, and pair 31 mixes 9/17 kept with 8/17 divided by 4: 11/17 of it.
  EXPECT_FLOAT_EQ(table.inv_freq[10], 0.11547819846894582f);  // 1e6^(-20/128)
  EXPECT_FLOAT_EQ(table.inv_freq[31], 0.0008029597275452303f);
  EXPECT_FLOAT_EQ(table.inv_freq[50], 5.133812566142866e-06f);  // 1e6^(-100/128) / 4
  EXPECT_FLOAT_EQ(table.attention_scaling, 1.1386294f);         // 0.1 · ln 4 + 1

  rope.truncate = false;
  expect_matches_reference(rope);
  rope.attention_factor = 1.25;
  EXPECT_EQ(make_rope_table(rope).attention_scaling, 1.25f);
}

TEST(RopeTable, YarnMscale) {
  RopeConfig rope = rope_of("yarn-mscale.config.json");
  ASSERT_EQ(rope.type, RopeType::kYarn);
  expect_matches_reference(rope);
  // (0.1 · 1 · ln 40 + 1) / (0.1 · 0.707 · ln 40 + 1)
  EXPECT_FLOAT_EQ(make_rope_table(rope).attention_scaling, 1.0857263992561355f);
  rope.mscale_all_dim = 0.0;  // both must be non-zero; otherwise 0.1 · ln(factor) + 1
  EXPECT_FLOAT_EQ(make_rope_table(rope).attention_scaling, static_cast<float>(0.1 * std::log(40.0) + 1));
  rope.factor = 1.0;  // no scaling, no attention factor
  EXPECT_EQ(make_rope_table(rope).attention_scaling, 1.0f);
}

TEST(RopeTable, PartialRotaryUsesRotaryDim) {
  RopeConfig rope;
  rope.type = RopeType::kLlama3;
  rope.theta = 500000.0;
  rope.rotary_dim = 32;
  rope.factor = 8.0;
  rope.original_max_position_embeddings = 8192;
  expect_matches_reference(rope);
  EXPECT_EQ(make_rope_table(rope).inv_freq.size(), 16u);
  EXPECT_FLOAT_EQ(make_rope_table(rope).inv_freq[1], static_cast<float>(std::pow(500000.0, -2.0 / 32)));
}

TEST(RopeTable, EveryCommittedConfigMatchesItsFormula) {
  for (const char* file : {"llama-2-7b.config.json", "llama-3.1-8b.config.json", "llama-3.2-1b.rope-parameters.config.json",
                           "llama-linear-16k.config.json", "mistral-7b-v0.1.config.json", "mistral-7b-v0.3.config.json",
                           "qwen2.5-7b.config.json", "qwen2.5-7b.yarn.config.json", "qwen3-8b.config.json",
                           "yarn-mscale.config.json"}) {
    SCOPED_TRACE(file);
    expect_matches_reference(rope_of(file));
  }
}

}  // namespace
}  // namespace longbow
