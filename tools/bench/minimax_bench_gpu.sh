#!/usr/bin/env bash
# On the GPU machine, from a bundle made by tools/gpu_bundle/pack.sh (issue 13's figures):
#   1. longbow_lightning_bench: one MiniMax-Text-01-shaped linear layer against flash prefill of a softmax
#      layer of the same heads (8K-512K), decode per layer (4K-512K), and the attention-only 7+1 slice;
#   2. the runtime on the MiniMax-Text-01 slice with dummy weights (data/configs/minimax-text-01-slice: 7
#      lightning + 1 softmax layer at real widths, 8 experts instead of 32) against the same slice with
#      every layer softmax: the memory plan at max_model_len 524288 (KV + state bytes per sequence),
#      TTFT and decode tokens/s at 32K and 512K contexts, B = 1.
#
#   bundle/minimax_bench_gpu.sh OUTDIR [--quick]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: minimax_bench_gpu.sh OUTDIR [--quick]}
quick=${2:-}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== lightning layer benchmark"
timeout 300 "$here/longbow_lightning_bench" ${quick:+--quick} --json "$out/lightning_bench.json" 2>&1 | tee "$out/lightning_bench.log" | tail -40
echo "lightning_bench rc=${PIPESTATUS[0]}"

lens=32768,524288
[[ -n "$quick" ]] && lens=8192
bench=("$here/longbow_runtime_bench" --prompt-lens "$lens" --decode-contexts "$lens" --decode-batches 1 --chunk 8192
       --max-model-len 524288)
for variant in minimax-text-01-slice minimax-text-01-slice-all-softmax; do
  config="$here/data/configs/$variant.config.json"
  echo "== $variant: memory plan"
  timeout 120 "${bench[@]}" --config "$config" --plan-only --json "$out/$variant-plan.json" 2>&1 | grep -E "memory plan|rror"
  echo "== $variant: TTFT and decode"
  timeout 400 "${bench[@]}" --config "$config" --ttft-repeats 1 --decode-steps 20 --json "$out/$variant-e2e.json" \
    >"$out/$variant-e2e.log" 2>&1
  echo "$variant rc=$?"
  grep -E "^e2e|RESOURCE|rror" "$out/$variant-e2e.log" | head -20
done
