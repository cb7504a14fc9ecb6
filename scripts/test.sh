#!/usr/bin/env bash
# Builds longbow and runs every test CTest knows; ends with CTest's summary.
#   scripts/test.sh              the default build in build/ (CUDA kernels too when nvcc is present)
#   scripts/test.sh --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=build
cmake_args=(-G Ninja -DLONGBOW_WERROR=ON)
for arg in "$@"; do
  case "$arg" in
    --sanitize) build_dir=build-asan; cmake_args+=(-DLONGBOW_SANITIZE=address,undefined -DLONGBOW_CUDA=OFF) ;;
    *) echo "usage: $0 [--sanitize]" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
cmake -S . -B "$build_dir" "${cmake_args[@]}"
cmake --build "$build_dir" -j"$(nproc)"
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -j"$(nproc)"
