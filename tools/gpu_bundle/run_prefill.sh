#!/usr/bin/env bash
# The prefill loop on the GPU machine, inside a minimal bundle (longbow_kernel_tests,
# longbow_kernel_bench, lib/, peers/): the attention tests through the chosen prefill kernels, the
# prefill table of every variant, the torch SDPA peers, optionally ncu on one kernel.
#
#   run_prefill.sh OUTDIR      KERNELS="sm90 sm80" (the LONGBOW_PREFILL_KERNEL values to test),
#                              NCU=1 profiles the default prefill kernel at N = 16K; when the bundle
#                              holds longbow_runtime_parity and data/demo-model, the runtime parity
#                              program runs too (fixtures from the repository beside the bundle).
# OUTDIR gets tests_<kernel>.log, parity.log, bench.log/.json, torch.log/.json and ncu.txt.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
KERNELS=${KERNELS:-sm90 sm80}
out=${1:?usage: run_prefill.sh OUTDIR}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
echo "bundle $(cat "$here/COMMIT" 2>/dev/null) on $(nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader)"
summary=()
# A hang (a barrier protocol bug) must not eat the device time: a short smoke test first.
LONGBOW_PREFILL_KERNEL=${KERNELS%% *} timeout 45 "$here/longbow_kernel_tests" \
  --gtest_filter='PagedAttentionTest.PrefillTileBoundaries' >"$out/smoke.log" 2>&1
smoke=$?
tail -5 "$out/smoke.log"
if [[ $smoke == 124 ]]; then echo "smoke test timed out: stopping"; exit 1; fi
for kernel in $KERNELS; do
  LONGBOW_PREFILL_KERNEL=$kernel timeout 150 "$here/longbow_kernel_tests" \
    --gtest_filter='PagedAttentionTest.*' >"$out/tests_$kernel.log" 2>&1
  summary+=("tests $kernel rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$out/tests_$kernel.log" | tr '\n' ' ')")
  grep -E 'FAILED|rel|error' "$out/tests_$kernel.log" | head -20
done
if [[ -x "$here/longbow_runtime_parity" && -d "$here/data/demo-model" && -d "$here/../tests/data/parity" ]]; then
  data=$(mktemp -d)
  ln -s "$(cd "$here/../tests/data/parity" && pwd)" "$data/parity"
  ln -s "$here/data/demo-model" "$data/demo-model"
  timeout 200 "$here/longbow_runtime_parity" --data "$data" >"$out/parity.log" 2>&1
  summary+=("parity rc=$? $(tail -1 "$out/parity.log")")
fi
timeout 200 "$here/longbow_kernel_bench" "$out/bench.json" --prefill >"$out/bench.log" 2>&1
summary+=("bench rc=$?")
timeout 200 python3 "$here/peers/torch_attention_peer.py" "$out/torch.json" --prefill >"$out/torch.log" 2>&1
summary+=("torch rc=$?")
if [[ "${NCU:-0}" == 1 ]]; then
  timeout 200 ncu --kernel-name regex:flash_prefill_sm90_kernel --launch-count 1 \
    --section SpeedOfLight --section WarpStateStats --section SchedulerStats --section Occupancy \
    --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    "$here/longbow_kernel_bench" "$out/ncu_bench.json" --prefill-only >"$out/ncu.txt" 2>&1
  summary+=("ncu rc=$?")
fi
cat "$out/bench.log" "$out/torch.log"
printf '%s\n' "${summary[@]}"
