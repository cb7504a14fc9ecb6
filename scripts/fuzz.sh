#!/usr/bin/env bash
# libFuzzer runs of the parser targets (tests/fuzz) under ASan + UBSan, built with clang in build-fuzz/.
#   scripts/fuzz.sh smoke [BUILD_DIR]            each target for $FUZZ_SMOKE_SECONDS (default 15) s: CTest's fuzz_smoke
#   scripts/fuzz.sh long SECONDS [TARGET...]     each target (default: all) for SECONDS, -jobs=$FUZZ_JOBS (default 1);
#                                                new inputs go to build-fuzz/corpus/<target>, crashes to build-fuzz/crashes/
# A crash leaves its input in the crashes folder and exits non-zero; add the input to
# tests/fuzz/corpus/<target>/ once fixed. Exits 0 without running when no clang++ is installed.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
mode="${1:-smoke}"
shift || true
seconds=15
build="$src/build-fuzz"
if [[ "$mode" == smoke ]]; then
  seconds="${FUZZ_SMOKE_SECONDS:-15}"
  [[ $# -gt 0 ]] && build="$1" && shift
elif [[ "$mode" == long ]]; then
  seconds="${1:?usage: $0 long SECONDS [TARGET...]}"
  shift
else
  echo "usage: $0 smoke [BUILD_DIR] | long SECONDS [TARGET...]" >&2
  exit 2
fi
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(request_parser_fuzz safetensors_header_fuzz config_json_fuzz sentencepiece_model_fuzz hf_tokenizer_fuzz
  chat_template_fuzz)

clangxx="$(command -v clang++-14 || command -v clang++ || true)"
if [[ -z "$clangxx" ]]; then
  echo "fuzz: no clang++ installed; nothing to run"
  exit 0
fi

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$clangxx" \
    -DLONGBOW_FUZZ=ON -DLONGBOW_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build "$build" --target fuzz_targets -j"$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
status=0
for target in "${targets[@]}"; do
  name="${target%_fuzz}"
  seeds="$src/tests/fuzz/corpus/$name"
  work="$build/corpus/$name"
  crashes="$build/crashes/$name"
  mkdir -p "$work" "$crashes"
  echo "== $target: ${seconds} s"
  jobs=()  # with -jobs, libFuzzer writes each job's output to fuzz-N.log in the current directory
  [[ "${FUZZ_JOBS:-1}" -gt 1 ]] && jobs=(-jobs="$FUZZ_JOBS" -workers="$FUZZ_JOBS")
  if ! (cd "$build" && "$build/bin/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -max_len=65536 "${jobs[@]}" -artifact_prefix="$crashes/" -print_final_stats=1 \
      "$work" "$seeds" 2>"$build/$name.log"); then
    echo "FAIL: $target (log: $build/$name.log; inputs: $crashes)"
    tail -40 "$build/$name.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs" "$build/$name.log" | tail -3 || true
  fi
done
exit $status
