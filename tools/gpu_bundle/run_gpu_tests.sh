#!/usr/bin/env bash
# Runs inside a bundle made by tools/gpu_bundle/pack.sh, on the GPU machine: every GPU test, then the
# benchmarks and their torch peers. Builds nothing.
#
#   bundle/run_gpu_tests.sh OUTDIR [--quick]
#   STEPS="tests parity serve bench peers dsa e2e" (the default) selects steps. Not in the default:
#   "prefill" (only the prefill table and its torch peers: the short loop of prefill kernel work),
#   "attn" (prefill and decode tables with their torch peers at head_dim 128 and at 256),
#   "memcheck" (compute-sanitizer over the DSA split/graph tests), "profile" (the prefill kernel
#   under ncu), "lightning" (longbow_lightning_bench: lightning vs softmax attention at MiniMax widths;
#   the full run takes a few minutes). bundle/dsa_profile_gpu.sh OUTDIR gives per-kernel DSA times under ncu.
#
# OUTDIR gets: run.log (everything printed), summary.txt and one JSON per step (kernel_tests.json,
# kernel_tests_sm80.json, dsa_kernel_tests.json, parity.json, kernel_bench.json, torch_peer.json,
# dsa_bench.json, dsa_torch_peer.json, e2e.json). The summary table is printed last.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run_gpu_tests.sh OUTDIR [--quick]}
quick=${2:-}
steps=${STEPS:-tests parity serve bench peers dsa e2e}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
export PATH="$PATH:/usr/local/cuda/bin"  # compute-sanitizer, ncu
log="$out/run.log"
: > "$log"
summary=()

gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1)
echo "bundle $(cat "$here/COMMIT" 2>/dev/null) on $gpu" | tee -a "$log"

step() {  # step NAME CMD...: runs CMD with output appended to run.log, records rc and seconds
  local name=$1
  shift
  local start=$SECONDS
  echo "===== $name: $*" >> "$log"
  if declare -F "$1" >/dev/null; then
    "$@" >> "$log" 2>&1  # shell functions bound their own waits
  else
    timeout "${STEP_TIMEOUT:-300}" "$@" >> "$log" 2>&1
  fi
  local rc=$?
  summary+=("$(printf '%-14s rc=%-3s %4ss' "$name" "$rc" "$((SECONDS - start))")")
  return $rc
}

has_step() { [[ " $steps " == *" $1 "* ]]; }

if has_step tests; then
  # A hang (a barrier protocol bug in a prefill kernel) must not eat the device time: a short smoke test first.
  # Every prefill kernel instance (head sizes 16..256) runs in the smoke test.
  STEP_TIMEOUT=90 step smoke "$here/longbow_kernel_tests" \
    --gtest_filter='PagedAttentionTest.PrefillTileBoundaries:PagedAttentionTest.EveryHeadDim'
  if [[ $? == 124 ]]; then
    echo "smoke test timed out (a hung kernel): the other prefill tests are skipped" | tee -a "$log"
  else
    step kernel_tests "$here/longbow_kernel_tests" --gtest_output="json:$out/kernel_tests.json"
    # The attention tests again through the portable mma.sync prefill kernel (the sm_90 default is the TMA kernel).
    step kernel_tests_sm80 env LONGBOW_PREFILL_KERNEL=sm80 "$here/longbow_kernel_tests" --gtest_filter='PagedAttention*' \
      --gtest_output="json:$out/kernel_tests_sm80.json"
  fi
  step dsa_kernel_tests "$here/longbow_dsa_kernel_tests" --gtest_output="json:$out/dsa_kernel_tests.json"
  if [[ -x "$here/longbow_decode_graph_tests" ]]; then
    step decode_graphs "$here/longbow_decode_graph_tests" --demo-model "$here/data/demo-model" \
      --gtest_output="json:$out/decode_graph_tests.json"
  fi
fi
if has_step parity && [[ -x "$here/longbow_runtime_parity" ]]; then
  data="$here/data"
  if [[ ! -d "$data/parity" && -d "$here/../tests/data/parity" ]]; then  # packed with PACK_PARITY_DATA=0
    data=$(mktemp -d)
    ln -s "$here/../tests/data/parity" "$data/parity"
    ln -s "$here/data/demo-model" "$data/demo-model"
  fi
  step parity "$here/longbow_runtime_parity" --data "$data" --json "$out/parity.json"
fi
serve_check() {  # the real server on the CUDA backend with the demo model answers a REST completion
  local port=18000
  "$here/longbow" serve --model "$here/data/demo-model" --backend cuda --port $port --grpc-port 18001 &
  local pid=$!
  local up=0
  for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1; then up=1; break; fi
    sleep 0.5
  done
  local rc=1
  if [[ $up == 1 ]]; then
    local model
    model=$(curl -s "http://127.0.0.1:$port/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
    echo "serve: model id $model"
    local body
    body=$(curl -s -w '\nHTTP %{http_code}' -H 'Content-Type: application/json' "http://127.0.0.1:$port/v1/completions" \
      -d "{\"model\": \"$model\", \"prompt\": \"Once upon a time\", \"max_tokens\": 16, \"temperature\": 0}")
    echo "serve: $body"
    grep -q '^HTTP 200' <<<"$body" && grep -q '"text"' <<<"$body" && rc=0
  else
    echo "serve: /health never answered"
  fi
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo "serve: rest completion $([[ $rc == 0 ]] && echo PASS || echo FAIL)"
  return $rc
}
if has_step serve && [[ -x "$here/longbow" && -f "$here/data/demo-model/config.json" ]]; then
  step serve serve_check
fi
if has_step bench; then
  step kernel_bench "$here/longbow_kernel_bench" "$out/kernel_bench.json" $quick
fi
if has_step peers; then
  step torch_peers python3 "$here/peers/torch_attention_peer.py" "$out/torch_peer.json" $quick
fi
if has_step prefill; then
  step prefill_bench "$here/longbow_kernel_bench" "$out/prefill_bench.json" --prefill
  step prefill_peers python3 "$here/peers/torch_attention_peer.py" "$out/prefill_torch_peer.json" --prefill
fi
if has_step attn; then  # the attention tables alone at head_dim 128 and 256, each with its torch peers
  for d in 128 256; do
    step "attn_bench_d$d" "$here/longbow_kernel_bench" "$out/attn_bench_d$d.json" --attention --head-dim "$d"
    step "attn_peers_d$d" python3 "$here/peers/torch_attention_peer.py" "$out/attn_torch_peer_d$d.json" --head-dim "$d"
  done
fi
if has_step dsa; then
  step dsa_bench "$here/longbow_dsa_bench" "$out/dsa_bench.json"
  step dsa_peers python3 "$here/peers/dsa_torch_peer.py" "$out/dsa_torch_peer.json"
fi
if has_step lightning; then
  STEP_TIMEOUT=900 step lightning_bench "$here/longbow_lightning_bench" --json "$out/lightning_bench.json" $quick
fi
if has_step memcheck; then
  step dsa_memcheck compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$here/longbow_dsa_kernel_tests" '--gtest_filter=*Split*:*Graph*:*QueryQuant*'
fi
if has_step e2e; then
  step e2e "$here/longbow_runtime_bench" --config "$here/data/configs/llama-3.1-8b.config.json" --json "$out/e2e.json"
fi
if has_step profile; then
  step profile ncu --kernel-name regex:flash_prefill --launch-count 2 --section SpeedOfLight \
    --section WarpStateStats --section SchedulerStats --section LaunchStats --section Occupancy \
    "$here/longbow_kernel_bench" /tmp/profile_bench.json --prefill-only
fi

{
  echo
  echo "===== summary ($gpu)"
  printf '%s\n' "${summary[@]}"
  if [[ -f "$out/kernel_tests.json" ]]; then
    grep -E '^\[  (PASSED|FAILED)  \]|^\[  FAILED  \] [A-Za-z]' "$log" | sort -u | head -20
    echo "kernel-test errors closest to their budgets (error/budget, label):"
    grep '^\[ error \]' "$log" | awk '{
        for (i = 1; i <= NF; ++i) if ($i == "rel_l2") { e = $(i + 1); b = $(i + 3); sub(/\)/, "", b) }
        e += 0; b += 0; r = (b > 0) ? e / b : (e > 0 ? 1e9 : 0); printf "%8.3f  %s\n", r, $0 }' | sort -g -r | head -6
  fi
  grep -E '^(copy|gemm|prefill|decode|torch sdpa|parity|serve: rest|e2e)|^(dsa|recall|torch|graph|sparse splits)|ERROR SUMMARY' "$log"
} | tee "$out/summary.txt"
