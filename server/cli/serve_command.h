// `longbow serve`: the inference server (OpenAI REST on --port, gRPC on --grpc-port).
//
// Start-up: the listeners come up first (/health answers 503 "loading"), then the model loads and
// the engine starts (/health 200). SIGTERM or SIGINT: readiness off (503 / NOT_SERVING), admission
// stops (new requests 503 / UNAVAILABLE), in-flight requests finish for up to --drain-timeout
// seconds, the listeners close, exit 0. A second signal exits at once (status 1).
// Configuration: --config FILE (JSON, see configs/), then flags, which override the file; the
// effective configuration is logged once (the API key redacted).
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace longbow::cli {

inline constexpr std::string_view kServeSummary = "serve the OpenAI REST and gRPC APIs";

// `args` are the arguments after "serve". Returns the exit code: 0 after a clean shutdown, 1 on
// failure (no model, port in use), 2 for bad usage.
int serve_main(std::span<const std::string> args);

}  // namespace longbow::cli
