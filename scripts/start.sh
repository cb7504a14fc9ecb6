#!/usr/bin/env bash
# Builds longbow and runs it on the built-in demo model (or --model DIR).
# Until the HTTP front end lands this runs a one-shot generation; extra arguments go to
# `longbow generate` (for example --prompt "Once upon a time" --max-tokens 32).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cmake -S . -B build -G Ninja
cmake --build build -j"$(nproc)" --target longbow demo_model
if (($# == 0)); then
  set -- --prompt "The quick brown fox" --max-tokens 32
fi
exec build/bin/longbow generate "$@"
