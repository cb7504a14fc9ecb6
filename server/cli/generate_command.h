// `longbow generate`: greedy generation from one prompt, for trying a model from the shell.
//
// Loads the model and runs the prompt as one greedy request through the engine (server/engine): the
// prompt is prefilled in chunks of --max-batched-tokens, then one token per step until --max-tokens
// or an EOS id, over the engine's KV manager (page groups, window release). The same path as
// `longbow serve`, so it is also that path's smoke test and a debugging aid.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace longbow::cli {

inline constexpr std::string_view kGenerateSummary = "greedy generation from one prompt (text or token ids)";

// `args` are the arguments after "generate". Returns the exit code: 0 done, 1 failed, 2 bad usage.
int generate_main(std::span<const std::string> args);

}  // namespace longbow::cli
