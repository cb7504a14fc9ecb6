#!/usr/bin/env bash
# On the GPU machine, from a bundle (tools/gpu_bundle/pack.sh with longbow_dsa_prefill_bench among the
# programs and this script copied beside run_gpu_tests.sh): the DSA kernel tests (the sparse prefill
# ones first), the per-piece timing of one sparse prefill chunk, the runtime parity check, and the 8B
# DSA TTFT in sparse and dense prefill (docs/benchmarks.md, "Sparse DSA prefill").
#
#   bundle/dsa_sparse_prefill_gpu.sh OUTDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: dsa_sparse_prefill_gpu.sh OUTDIR}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "bundle $(cat "$here/COMMIT" 2>/dev/null)"
echo "== sparse prefill kernel tests"
timeout 120 "$here/longbow_dsa_kernel_tests" --gtest_filter='DsaSparsePrefill*' 2>&1 | tee "$out/prefill_tests.log" |
  grep -E "^\[ error \]|OK|FAILED|PASSED|Failure|rror"
echo "== other DSA kernel tests"
timeout 200 "$here/longbow_dsa_kernel_tests" --gtest_filter='-DsaSparsePrefill*' >"$out/dsa_tests.log" 2>&1
grep -E "FAILED|PASSED" "$out/dsa_tests.log" | head -10
echo "== flash prefill kernel tests (the sm90 kernel gained the selection variant)"
timeout 200 "$here/longbow_kernel_tests" --gtest_filter='PagedAttention*' >"$out/flash_tests.log" 2>&1
grep -E "FAILED|PASSED" "$out/flash_tests.log" | head -10
echo "== chunk breakdown"
timeout 120 "$here/longbow_dsa_prefill_bench" "$out/dsa_prefill_bench.json"
echo "== parity"
STEPS=parity STEP_TIMEOUT=240 "$here/run_gpu_tests.sh" "$out/parity" >/dev/null 2>&1
grep -E "^parity|PASS|FAIL|rel|selection" "$out/parity/run.log" | tail -25
for mode in sparse dense; do
  echo "== 8B DSA TTFT, --dsa-prefill $mode"
  timeout 200 "$here/longbow_runtime_bench" --config "$here/data/configs/llama-3.1-8b-dsa.config.json" \
    --dsa-prefill $mode --prompt-lens 4096,16384 --decode-contexts 4096 --decode-batches 1 --ttft-repeats 3 \
    --json "$out/ttft_$mode.json" 2>&1 | tail -8
done
