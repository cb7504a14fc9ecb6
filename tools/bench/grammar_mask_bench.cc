// Structured-output mask cost: per-step token mask time (TokenMasker::fill_mask) over a real
// vocabulary for a few grammars, while generating by uniform sampling among the allowed tokens
// (docs/benchmarks.md, "Structured outputs"). The cold pass starts with an empty mask cache (each
// new grammar state walks the vocabulary trie once); the warm passes replay new generations on the
// same compiled grammar, as requests sharing a schema do (a new seed: new states still appear); the
// replay pass repeats the cold pass's generation with every state cached. One JSON line per grammar.
//   longbow_grammar_mask_bench --tokenizer FILE [--steps N] [--label NAME]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "model/tokenizer/tokenizer_factory.h"
#include "server/structured/guided.h"
#include "server/structured/json_schema.h"
#include "server/structured/matcher.h"
#include "server/structured/token_mask.h"

namespace {

using namespace longbow::structured;
using Clock = std::chrono::steady_clock;

struct Timings {
  std::vector<double> us;
  void add(Clock::duration d) { us.push_back(std::chrono::duration<double, std::micro>(d).count()); }
  double pct(double p) {
    if (us.empty()) return 0;
    std::vector<double> v = us;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  }
  double mean() const {
    double s = 0;
    for (const double x : us) s += x;
    return us.empty() ? 0 : s / static_cast<double>(us.size());
  }
};

// Generates until `steps` masks were computed (restarting after each stop token).
void run(const std::shared_ptr<const Grammar>& g, TokenMasker& masker, uint32_t seed, int steps, Timings& t,
         int& outputs) {
  std::mt19937 rng(seed);
  std::vector<uint64_t> mask;
  std::vector<int32_t> allowed;
  const Vocabulary& vocab = masker.vocabulary();
  auto matcher = std::make_unique<GrammarMatcher>(g);
  for (int step = 0; step < steps; ++step) {
    const auto t0 = Clock::now();
    masker.fill_mask(*matcher, mask);
    t.add(Clock::now() - t0);
    allowed.clear();
    for (size_t w = 0; w < mask.size(); ++w) {
      for (uint64_t bits = mask[w]; bits != 0; bits &= bits - 1) {
        allowed.push_back(static_cast<int32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
      }
    }
    const int32_t id = allowed.empty() ? -1 : allowed[rng() % allowed.size()];
    const bool stop = id < 0 || std::find(vocab.stop_ids().begin(), vocab.stop_ids().end(), id) != vocab.stop_ids().end();
    if (stop || !matcher->accept_bytes(vocab.bytes(id))) {
      ++outputs;
      matcher = std::make_unique<GrammarMatcher>(g);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string tokenizer_path;
  std::string label;
  int steps = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--tokenizer") tokenizer_path = argv[i + 1];
    else if (a == "--steps") steps = std::atoi(argv[i + 1]);
    else if (a == "--label") label = argv[i + 1];
  }
  if (tokenizer_path.empty()) {
    std::fprintf(stderr, "usage: longbow_grammar_mask_bench --tokenizer FILE [--steps N] [--label NAME]\n");
    return 2;
  }
  auto tok = longbow::load_tokenizer(tokenizer_path);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().to_string().c_str());
    return 1;
  }
  VocabularyInfo info;
  for (int id = 0; id < tok.value()->vocab_size(); ++id) {
    info.token_bytes.push_back(tok.value()->is_control(id) ? std::string() : tok.value()->token_bytes(id));
  }
  if (const auto eos = tok.value()->eos_id()) info.stop_ids.push_back(*eos);
  const auto t_vocab = Clock::now();
  auto vocab = std::make_shared<const Vocabulary>(std::move(info));
  const double vocab_ms = std::chrono::duration<double, std::milli>(Clock::now() - t_vocab).count();

  struct Case {
    std::string name;
    longbow::StatusOr<Grammar> grammar;
  };
  std::vector<Case> cases;
  cases.push_back({"schema_object", json_schema_to_grammar(R"({"type":"object","properties":{
      "name":{"type":"string","maxLength":40},
      "age":{"type":"integer","minimum":0,"maximum":150},
      "email":{"type":"string","pattern":"^[a-z0-9._]{1,20}@[a-z]{1,12}\\.(com|org|net)$"},
      "tags":{"type":"array","items":{"type":"string","maxLength":16},"maxItems":5},
      "role":{"enum":["admin","user","guest"]},
      "address":{"type":"object","properties":{"city":{"type":"string","maxLength":30},"zip":{"type":"string","pattern":"^\\d{5}$"}},"required":["city"]},
      "score":{"type":"number"}},
    "required":["name","age","role"]})")});
  cases.push_back({"json_object", json_object_grammar()});
  cases.push_back({"long_strings", json_schema_to_grammar(R"({"type":"object","properties":{"summary":{"type":"string","maxLength":400},"notes":{"type":"array","items":{"type":"string","maxLength":200},"maxItems":8}},"required":["summary","notes"]})")});
  cases.push_back({"regex_phone", regex_grammar("\\(\\d{3}\\) \\d{3}-\\d{4}( ext\\. \\d{1,5})?")});

  for (Case& c : cases) {
    if (!c.grammar.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), c.grammar.status().to_string().c_str());
      return 1;
    }
    auto g = std::make_shared<const Grammar>(std::move(c.grammar).value());
    TokenMasker masker(g, vocab);
    Timings cold;
    Timings warm;
    int outputs = 0;
    run(g, masker, 1, steps, cold, outputs);
    int warm_outputs = 0;
    run(g, masker, 2, steps, warm, warm_outputs);
    Timings replay;
    int replay_outputs = 0;
    run(g, masker, 1, steps, replay, replay_outputs);
    nlohmann::json line{{"label", label},
                        {"grammar", c.name},
                        {"vocab", vocab->size()},
                        {"vocab_trie_build_ms", vocab_ms},
                        {"steps", steps},
                        {"cold_median_us", cold.pct(0.5)},
                        {"cold_mean_us", cold.mean()},
                        {"cold_p99_us", cold.pct(0.99)},
                        {"warm_median_us", warm.pct(0.5)},
                        {"warm_mean_us", warm.mean()},
                        {"warm_p99_us", warm.pct(0.99)},
                        {"warm_max_us", warm.pct(1.0)},
                        {"replay_median_us", replay.pct(0.5)},
                        {"replay_mean_us", replay.mean()},
                        {"replay_p99_us", replay.pct(0.99)},
                        {"cache_entries", masker.cache_entries()},
                        {"outputs", outputs + warm_outputs}};
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}
