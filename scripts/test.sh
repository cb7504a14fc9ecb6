#!/usr/bin/env bash
# Builds longbow and runs its tests; ends with CTest's summary (CI: .ci/run calls this).
#   scripts/test.sh              both tiers below: the sanitizer tier first, then the default run. A failure in the
#                                first stops there, so the output still ends with the failing run's CTest summary.
#   scripts/test.sh --sanitize   only the sanitizer tier: AddressSanitizer + UndefinedBehaviorSanitizer build in
#                                build-asan/ (CUDA off), running the tests labelled unit or e2e (not docker, not fuzz)
#   scripts/test.sh --default    only the default run: the build in build/ (CUDA kernels too when nvcc is present),
#                                running every test CTest knows
set -euo pipefail
cd "$(dirname "$0")/.."

tiers=(sanitize default)
for arg in "$@"; do
  case "$arg" in
    --sanitize) tiers=(sanitize) ;;
    --default) tiers=(default) ;;
    *) echo "usage: $0 [--sanitize | --default]" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
jobs="$(nproc)"
# ccache hits must not depend on where this checkout lives (CI clones to a fresh folder each run): paths
# under the checkout are hashed relative to it, and the build folder is left out of the hash (with -g,
# ccache would otherwise hash it for DW_AT_comp_dir; a debugger then shows the cached object's folder).
export CCACHE_BASEDIR="$(pwd)" CCACHE_NOHASHDIR=true
for tier in "${tiers[@]}"; do
  if [[ "$tier" == sanitize ]]; then
    echo "== sanitizer tier (build-asan: ASan + UBSan, unit and e2e tests)"
    cmake -S . -B build-asan -G Ninja -DLONGBOW_WERROR=ON -DLONGBOW_SANITIZE=address,undefined -DLONGBOW_CUDA=OFF
    cmake --build build-asan -j"$jobs"
    ctest --test-dir build-asan --output-on-failure --timeout 600 -j"$jobs" -L 'unit|e2e' -LE 'docker|fuzz'
  else
    echo "== default build (build: every test)"
    cmake -S . -B build -G Ninja -DLONGBOW_WERROR=ON
    cmake --build build -j"$jobs"
    ctest --test-dir build --output-on-failure --timeout 600 -j"$jobs"
  fi
done
