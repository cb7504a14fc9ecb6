#!/usr/bin/env bash
# On the GPU machine, from a bundle made by tools/gpu_bundle/pack.sh: Gemma-3-12B's shape with dummy
# weights (data/configs/gemma-3-12b.config.json: 40 local layers with a 1024-token window, 8 global)
# against the same config with every layer global (gemma-3-12b-all-global.config.json):
#   1. the memory plan at max_model_len 131072 (8 sequences, chunk 2048, utilization 0.9): pages per
#      cache group and the 128K sequences / tokens that fit (longbow_runtime_bench --plan-only);
#   2. TTFT at 32K and 128K and decode tokens/s at contexts 32K and 128K with B = 1 and 8, hybrid
#      then all-global. When the all-global model's 128K prompt does not fit at utilization 0.9, it
#      is measured again at 0.97 and the log says so.
#
#   bundle/local_global_bench_gpu.sh OUTDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: local_global_bench_gpu.sh OUTDIR}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bench=("$here/longbow_runtime_bench" --prompt-lens 32768,131072 --decode-contexts 32768,131072 --decode-batches 1,8
       --chunk 2048)

for variant in gemma-3-12b gemma-3-12b-all-global; do
  config="$here/data/configs/$variant.config.json"
  echo "== $variant: memory plan"
  timeout 120 "${bench[@]}" --config "$config" --plan-only --json "$out/$variant-plan.json" 2>&1 | grep -v "^\s*$"
done
for variant in gemma-3-12b gemma-3-12b-all-global; do
  config="$here/data/configs/$variant.config.json"
  echo "== $variant: TTFT and decode"
  timeout 240 "${bench[@]}" --config "$config" --ttft-repeats 1 --decode-steps 20 --json "$out/$variant-e2e.json" \
    >"$out/$variant-e2e.log" 2>&1
  rc=$?
  if [[ $rc != 0 ]] && grep -q "RESOURCE_EXHAUSTED" "$out/$variant-e2e.log"; then
    echo "$variant does not fit its 128K prompt at utilization 0.9; measured at 0.97:"
    timeout 240 "${bench[@]}" --config "$config" --ttft-repeats 1 --decode-steps 20 --gpu-memory-utilization 0.97 \
      --json "$out/$variant-e2e-0.97.json" >>"$out/$variant-e2e.log" 2>&1
    rc=$?
  fi
  grep -E "memory plan|^e2e|window|RESOURCE|rror" "$out/$variant-e2e.log" | head -30
  echo "$variant rc=$rc"
done
