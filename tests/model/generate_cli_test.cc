// `longbow generate` as a user runs it: the real binary, its stdout, stderr and exit code.
// On the parity fixtures its greedy ids must equal transformers' (with the prompt prefilled in
// chunks); bad input must fail with a clear message and a non-zero exit code.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/json_file.h"

namespace longbow {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs bin/longbow with `args` (after `env_prefix`, e.g. "env -u VAR").
RunResult run_longbow(const std::vector<std::string>& args, const std::string& env_prefix = "") {
  std::string err_path = (std::filesystem::temp_directory_path() /
                          ("longbow-cli-test-" + std::to_string(::getpid()) + ".err"))
                             .string();
  std::string command = env_prefix + " " + quote(LONGBOW_BINARY) ;
  for (const std::string& arg : args) command += " " + quote(arg);
  command += " 2>" + quote(err_path);
  RunResult result;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.out.append(buffer, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_path);
  std::stringstream text;
  text << err.rdbuf();
  result.err = text.str();
  std::filesystem::remove(err_path);
  return result;
}

std::string join(const std::vector<int>& ids, const std::string& separator) {
  std::string out;
  for (int id : ids) out += (out.empty() ? "" : separator) + std::to_string(id);
  return out;
}

std::string parity_dir() { return std::string(LONGBOW_SOURCE_DIR) + "/tests/data/parity"; }

// `longbow generate` on every case of a parity fixture, prefilled in 16-token chunks (the 70-token
// prompt in 5 steps), with `extra` flags, against transformers' greedy ids.
void expect_generate_matches_transformers(const std::string& name, const std::vector<std::string>& extra) {
  const std::string dir = parity_dir() + "/" + name;
  auto expected = read_json_file(dir + "/expected.json");
  ASSERT_TRUE(expected.ok()) << expected.status().to_string();
  for (const auto& c : (*expected)["cases"]) {
    std::vector<int> prompt = c["prompt_ids"].get<std::vector<int>>();
    std::vector<int> generated = c["generated_ids"].get<std::vector<int>>();
    std::vector<std::string> args = {"generate", "--model", dir, "--prompt-ids", join(prompt, ","), "--max-tokens",
                                     std::to_string(generated.size()), "--ignore-eos", "--backend", "cpu",
                                     "--max-batched-tokens", "16", "--log-level", "warn"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = run_longbow(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, join(generated, " ") + "\n") << name << " prompt of " << prompt.size() << " tokens";
  }
}

TEST(GenerateCli, GreedyIdsMatchTransformersOnParityFixtures) {
  int fixtures = 0;
  for (const char* name : {"llama", "qwen3", "mistral", "qwen2", "gemma2"}) {
    if (!std::filesystem::exists(parity_dir() + "/" + name)) continue;
    ++fixtures;
    expect_generate_matches_transformers(name, {});
  }
  EXPECT_GT(fixtures, 0) << "no parity fixtures under " << parity_dir();
}

// Tensor parallelism on the CPU backend (model/runtime/tensor_parallel.h): the sharded ranks still
// produce transformers' greedy ids; a size that does not divide the heads fails naming them.
TEST(GenerateCli, TensorParallelGreedyIdsMatchTransformers) {
  for (const auto& [name, size] : std::vector<std::pair<std::string, int>>{{"llama", 2}, {"qwen3", 4}, {"gemma2", 4}}) {
    SCOPED_TRACE(fmt::format("{} at TP {}", name, size));
    expect_generate_matches_transformers(name, {"--tensor-parallel-size", std::to_string(size)});
  }
  RunResult r = run_longbow({"generate", "--model", parity_dir() + "/gemma3_text", "--prompt-ids", "5,6",
                             "--backend", "cpu", "--tensor-parallel-size", "4", "--log-level", "warn"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("num_attention_heads 2 is not divisible by tensor_parallel_size 4"), std::string::npos) << r.err;
}

TEST(GenerateCli, HelpAndVersion) {
  RunResult version = run_longbow({"--version"});
  EXPECT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out.rfind("longbow ", 0), 0u) << version.out;
  RunResult help = run_longbow({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("generate"), std::string::npos);
  RunResult generate_help = run_longbow({"generate", "--help"});
  EXPECT_EQ(generate_help.exit_code, 0);
  EXPECT_NE(generate_help.out.find("--prompt-ids"), std::string::npos);
}

TEST(GenerateCli, BadUsageFailsClearly) {
  const std::string llama = parity_dir() + "/llama";
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{}, 2, "usage"},
      {{"frobnicate"}, 2, "unknown command 'frobnicate'"},
      {{"generate", "--bogus"}, 2, "unknown flag --bogus"},
      {{"generate", "--model", llama}, 2, "exactly one of --prompt and --prompt-ids"},
      {{"generate", "--prompt", "a", "--prompt-ids", "1"}, 2, "exactly one"},
      {{"generate", "--prompt-ids", "1", "--max-tokens"}, 2, "--max-tokens needs a value"},
      {{"generate", "--prompt-ids", "1", "--max-tokens", "ten"}, 2, "expects an integer, got 'ten'"},
      {{"generate", "--prompt-ids", "1", "--max-tokens", "0"}, 2, "--max-tokens must be in"},
      {{"generate", "--model", llama, "--prompt-ids", "1,x,3"}, 1, "'x' (item 2)"},
      {{"generate", "--model", llama, "--prompt-ids", "1,320"}, 1, "outside the vocabulary"},
      {{"generate", "--model", llama, "--prompt-ids", "1", "--max-tokens", "5000"}, 1, "exceeds the model's context"},
      {{"generate", "--model", llama, "--prompt-ids", "1", "--backend", "tpu"}, 1, "unknown backend 'tpu'"},
      {{"generate", "--model", "/nonexistent/model", "--prompt-ids", "1"}, 1, "neither a directory holding config.json"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const std::string& a : c.args) joined += a + " ";
    RunResult r = run_longbow(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << joined << "\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << joined << "\nstderr: " << r.err;
    EXPECT_TRUE(r.out.empty()) << joined << "\nstdout: " << r.out;
  }
}

TEST(GenerateCli, DemoModelIsTheDefault) {
  // The build writes <build>/demo-model beside <build>/bin/longbow; without --model or
  // $LONGBOW_DEMO_MODEL that is the model used.
  std::string demo = std::string(LONGBOW_BINARY_DIR) + "/demo-model";
  ASSERT_TRUE(std::filesystem::exists(demo + "/config.json")) << demo << " is missing (target demo_model)";
  RunResult text = run_longbow({"generate", "--prompt", "Once upon a time", "--max-tokens", "12", "--ignore-eos",
                                "--backend", "cpu", "--log-level", "warn"},
                               "env -u LONGBOW_DEMO_MODEL");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_GT(text.out.size(), 1u) << "no text generated";
  RunResult ids = run_longbow({"generate", "--prompt-ids", "1,5,9", "--max-tokens", "6", "--ignore-eos",
                               "--backend", "cpu", "--log-level", "warn"},
                              "env LONGBOW_DEMO_MODEL=" + quote(demo));
  EXPECT_EQ(ids.exit_code, 0) << ids.err;
  EXPECT_EQ(std::count(ids.out.begin(), ids.out.end(), ' '), 5) << ids.out;
  // The same ids with the prompt prefilled one token per step.
  RunResult chunked = run_longbow({"generate", "--model", demo, "--prompt-ids", "1,5,9", "--max-tokens", "6",
                                   "--ignore-eos", "--backend", "cpu", "--log-level", "warn",
                                   "--max-batched-tokens", "1"});
  EXPECT_EQ(chunked.out, ids.out);
}

}  // namespace
}  // namespace longbow
