#!/usr/bin/env bash
# Builds longbow and starts the server (REST on 127.0.0.1:8000, gRPC on :8001) on the built-in demo
# model, or on --model DIR. Extra arguments go to `longbow serve` (see `longbow serve --help`).
# Try it from another terminal:
#   curl -s localhost:8000/v1/completions -H 'Content-Type: application/json' \
#        -d '{"model": "demo-model", "prompt": "The quick brown fox", "max_tokens": 32}'
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh --build-only
cmake -S . -B build -G Ninja
cmake --build build -j"$(nproc)" --target longbow demo_model
echo "start: a one-shot generation with the demo model (random weights, so random text):"
build/bin/longbow generate --prompt "The quick brown fox" --max-tokens 24 --log-level warn
echo
exec build/bin/longbow serve "$@"
