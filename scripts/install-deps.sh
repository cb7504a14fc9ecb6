#!/usr/bin/env bash
# Installs the Debian 12 packages that building and testing longbow need.
# Safe to run repeatedly; skips apt-get when everything is already present.
#   scripts/install-deps.sh               build and test packages
#   scripts/install-deps.sh --build-only  only what building needs (the Docker image's build stage)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  nlohmann-json3-dev libspdlog-dev libfmt-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsentencepiece-dev sentencepiece
  libboost1.81-dev
  libonig-dev libutf8proc-dev
)
# Test-only tools: the sentencepiece oracle; python3-jinja2 (a chat-template oracle); buildah + debootstrap for tests/e2e/docker; the e2e
# clients (curl, python3-requests, Python grpcio + protoc's grpc_python_plugin; npm `openai` is
# installed by a CTest fixture, tests/e2e/npm_install.sh); clang-14 and its runtime for the libFuzzer
# targets (tests/fuzz); stress-ng and wrk for the load checks and benchmarks (docs/benchmarks.md);
# python3-matplotlib for tools/bench/plot_serve_bench.py (its e2e test plots the serving benchmark's JSON).
test_packages=(
  python3-sentencepiece
  buildah debootstrap
  python3-grpcio python3-grpc-tools python3-requests curl
  clang-14 libclang-rt-14-dev stress-ng wrk
  python3-jinja2 python3-jsonschema python3-matplotlib
)
# The npm `openai` client needs Node.js; machines that already have a newer one keep it.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  test_packages+=(nodejs npm)
fi
case "${1:-}" in
  --build-only) ;;
  "") packages+=("${test_packages[@]}") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
"${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
