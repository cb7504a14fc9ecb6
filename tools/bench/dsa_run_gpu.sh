#!/usr/bin/env bash
# Runs inside a bundle made by tools/bench/dsa_pack.sh on the GPU machine: the DSA kernel tests,
# the DSA benchmark (with recall), the torch peers, and compute-sanitizer memcheck over the split
# top-k and graph tests. Builds nothing.
#
#   dsa_run_gpu.sh OUTDIR        STEPS="tests bench peers memcheck" (default: all)
# OUTDIR gets run.log, dsa_kernel_tests.json, dsa_bench.json, dsa_torch_peer.json, summary.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: dsa_run_gpu.sh OUTDIR}
steps=${STEPS:-tests bench peers memcheck}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
export PATH="$PATH:/usr/local/cuda/bin"
log="$out/run.log"
: > "$log"
gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1)
echo "dsa bundle $(cat "$here/COMMIT" 2>/dev/null) on $gpu" | tee -a "$log"
summary=()
step() {
  local name=$1
  shift
  local start=$SECONDS
  echo "===== $name: $*" >> "$log"
  timeout "${STEP_TIMEOUT:-240}" "$@" >> "$log" 2>&1
  local rc=$?
  summary+=("$(printf '%-12s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
}
has() { [[ " $steps " == *" $1 "* ]]; }
has tests && step dsa_tests "$here/longbow_dsa_kernel_tests" --gtest_output="json:$out/dsa_kernel_tests.json"
has bench && step dsa_bench "$here/longbow_dsa_bench" "$out/dsa_bench.json"
has peers && step dsa_peers python3 "$here/dsa_torch_peer.py" "$out/dsa_torch_peer.json"
has memcheck && step dsa_memcheck compute-sanitizer --tool memcheck --error-exitcode 9 \
  "$here/longbow_dsa_kernel_tests" '--gtest_filter=*Split*:*Graph*:*QueryQuant*'
{
  echo "===== summary ($gpu)"
  printf '%s\n' "${summary[@]}"
  grep -E '^\[  (PASSED|FAILED)  \]|^\[  FAILED|ERROR SUMMARY|^\[ error \]|^\[ index keys \]|^copy|^dsa|^recall|^torch|^graph|^sparse splits' "$log"
} | tee "$out/summary.txt"
