// Deterministic pseudo-random numbers for the demo model's weights: xoshiro256** seeded through
// splitmix64 (both by Blackman and Vigna), normals by Box-Muller. The same seed gives the same
// stream on every platform (integer arithmetic; the normals go through libm's log/cos/sqrt in double).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string_view>
#include <vector>

namespace longbow::demo {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a, to derive an independent stream per tensor name from one seed.
inline uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : text) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

class Prng {
 public:
  explicit Prng(uint64_t seed) {
    for (uint64_t& word : state_) word = splitmix64(seed);
  }
  // One stream per (seed, name): adding a tensor never changes another tensor's values.
  Prng(uint64_t seed, std::string_view name) : Prng(seed ^ fnv1a(name)) {}

  uint64_t next() {
    const uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Standard normal (Box-Muller; the second value of each pair is kept for the next call).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = 1.0 - uniform();  // (0, 1]: log stays finite
    const double u2 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1));
    spare_ = radius * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return radius * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t state_[4];
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// `numel` values mean + std · N(0, 1), from the stream named `name`.
inline std::vector<float> normals(uint64_t seed, std::string_view name, size_t numel, double mean, double std) {
  Prng prng(seed, name);
  std::vector<float> values(numel);
  for (float& v : values) v = static_cast<float>(mean + std * prng.normal());
  return values;
}

}  // namespace longbow::demo
