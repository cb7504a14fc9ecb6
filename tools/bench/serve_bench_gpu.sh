#!/usr/bin/env bash
# On the GPU machine, from a bundle made by tools/gpu_bundle/pack.sh (this script copied beside
# run_gpu_tests.sh): `longbow serve --load-format dummy` of Llama-3.1-8B's config (dense, then its DSA
# variant), and peers/serve_bench.py sweeps against it (streaming /v1/completions, random token-id
# prompts, ignore_eos, closed loop at each concurrency C with max(MIN, PER_C*C) requests). One JSON per
# sweep in OUTDIR (written after every level, so a sweep cut by its timeout keeps what it measured),
# each sweep's full report in a .txt beside it, the server log and a /metrics snapshot per config.
#
#   bundle/serve_bench_gpu.sh OUTDIR
#
# A sweep is IN:OUT:C1,C2,...[:PER_C[:MIN]] (prompt and output tokens, the levels, requests per level
# = max(MIN, PER_C*C), defaults 2 and 8). Environment:
#   FULL=1        issue 18's whole sweep instead of the short default (well past one 10-minute call:
#                 split it with CONFIGS and ONLY, see docs/benchmarks.md)
#   CONFIGS       which configs, in order (default "dense dsa")
#   DENSE_SWEEPS, DSA_SWEEPS   replace one config's sweep list
#   ONLY          keep only the sweeps whose IN:OUT is listed (e.g. ONLY="130816:256")
#   BUDGET        seconds for the whole script (default 540); a sweep that would start with less than
#                 SWEEP_MIN (default 20) seconds left is skipped, and each sweep's timeout is the time left
#   SWEEP_TIMEOUT seconds one sweep may run at most (default 300)
#   WARMUPS       warm-up requests before each sweep (default 1)
#   GEMM_TFLOPS, COPY_GBPS     the roofline's rates (default: serve_bench.py's, the H100 of docs/benchmarks.md)
#   SERVE_ARGS    more flags for longbow serve (e.g. "--max-num-seqs 512 --dsa-prefill dense")
#   BACKEND       longbow serve's --backend (default cuda; cpu only to try the script on a tiny config)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: serve_bench_gpu.sh OUTDIR}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONUNBUFFERED=1
start_all=$SECONDS
budget=${BUDGET:-540}
sweep_min=${SWEEP_MIN:-20}
port=18100
bench=(python3 "$here/peers/serve_bench.py" --port "$port" --ignore-eos --summary-only --num-warmups "${WARMUPS:-1}")
[[ -n "${GEMM_TFLOPS:-}" ]] && bench+=(--gemm-tflops "$GEMM_TFLOPS")
[[ -n "${COPY_GBPS:-}" ]] && bench+=(--copy-gbps "$COPY_GBPS")

if [[ "${FULL:-0}" == 1 ]]; then
  # 128K: 131072 - 256 prompt tokens, so that prompt + output fits the model's 131072-token context.
  full="1024:128:1,2,4,8,16,32,64,128,256 256:256:1,2,4,8,16,32,64,128,256,512 32768:512:1,2,4,8,16:1:4 130816:256:1,2,4,8,16:1:4"
  dense_sweeps=${DENSE_SWEEPS:-$full}
  dsa_sweeps=${DSA_SWEEPS:-$full}
else
  # About 5-6 minutes at today's speed (issue 18: 126-1,285 output tok/s at 1024/128): dense ~3, DSA ~2.
  dense_sweeps=${DENSE_SWEEPS:-"1024:128:1,8,32,64,128,256 32768:512:1,4:2:4"}
  dsa_sweeps=${DSA_SWEEPS:-"1024:128:1,64 32768:512:1,4:2:4"}
fi

gpu=$(timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
echo "bundle $(cat "$here/COMMIT" 2>/dev/null) on $gpu; budget ${budget} s"

left() { echo $((budget - (SECONDS - start_all))); }

stop_server() {  # SIGTERM, then SIGKILL after 20 s
  local pid=$1
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

run_config() {  # run_config NAME CONFIG_JSON SWEEPS
  local name=$1 config=$2 sweeps=$3
  if [[ ! -f "$config" ]]; then echo "== $name: $config missing; skipped"; return; fi
  if (($(left) < sweep_min + 30)); then echo "== $name: skipped (budget)"; return; fi
  echo "== $name: longbow serve --model $config --load-format dummy ${SERVE_ARGS:-}"
  local t0=$SECONDS
  # shellcheck disable=SC2086 # SERVE_ARGS is a flag list
  "$here/longbow" serve --model "$config" --load-format dummy --tokenizer "$here/data/demo-model" --backend "${BACKEND:-cuda}" \
    --host 127.0.0.1 --port "$port" --grpc-port $((port + 1)) --drain-timeout 5 ${SERVE_ARGS:-} \
    >"$out/$name-serve.log" 2>&1 &
  local pid=$! up=0
  for _ in $(seq 1 360); do  # 180 s
    if curl -sf -m 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if [[ $up != 1 ]]; then
    echo "$name: the server never became healthy; its log ends:"
    tail -5 "$out/$name-serve.log"
    stop_server "$pid"
    return
  fi
  echo "$name: ready after $((SECONDS - t0)) s; $(grep -m1 -E "memory plan" "$out/$name-serve.log" | cut -c1-220)"
  local sweep
  for sweep in $sweeps; do
    IFS=: read -r in_len out_len levels per_c min_prompts <<<"$sweep"
    if [[ -n "${ONLY:-}" && " $ONLY " != *" $in_len:$out_len "* ]]; then continue; fi
    local remaining limit
    remaining=$(left)
    if ((remaining < sweep_min)); then echo "$name $in_len/$out_len: skipped (budget: ${remaining} s left)"; continue; fi
    limit=${SWEEP_TIMEOUT:-300}
    ((limit > remaining)) && limit=$remaining
    local file="$out/$name-$in_len-$out_len-c${levels//,/-}"
    echo "-- $name $in_len/$out_len at C=$levels (timeout ${limit} s)"
    local s0=$SECONDS
    timeout -k 5 "$limit" "${bench[@]}" --random-input-len "$in_len" --random-output-len "$out_len" \
      --concurrency "$levels" --prompts-per-concurrency "${per_c:-2}" --min-prompts "${min_prompts:-8}" \
      --model-config "$config" --label "$name" --metadata "config=$(basename "$config")" \
      --result-file "$file.json" >"$file.txt" 2>"$file.err"
    local rc=$?
    cat "$file.txt"
    grep -E "error|failed" "$file.err" | grep -v " 0 failed" | head -3
    echo "($name $in_len/$out_len: rc=$rc, $((SECONDS - s0)) s)"
    # The server's counters after each sweep: differences between sweeps give one sweep's engine
    # step count and its time inside and around the model steps.
    curl -s -m 10 "http://127.0.0.1:$port/metrics" >"$file-metrics.txt" 2>/dev/null
    awk -v prev="${prev_metrics:-}" '
      function read(file, arr,   line, name) { while ((getline line < file) > 0) if (line ~ /^longbow_engine_step/) { split(line, f, "[{} ]"); arr[f[1]] = f[length(f)] } }
      BEGIN { read(ARGV[1], now); if (prev != "") read(prev, before)
              steps = now["longbow_engine_steps_total"] - before["longbow_engine_steps_total"]
              fwd = now["longbow_engine_step_forward_seconds_total"] - before["longbow_engine_step_forward_seconds_total"]
              host = now["longbow_engine_step_host_seconds_total"] - before["longbow_engine_step_host_seconds_total"]
              if (steps > 0) printf "engine: %d steps, %.2f ms in the model step and %.2f ms around it per step (host share %.0f%%)\n", steps, 1e3 * fwd / steps, 1e3 * host / steps, 100 * host / (fwd + host) }' "$file-metrics.txt"
    prev_metrics="$file-metrics.txt"
  done
  prev_metrics=""
  curl -s -m 10 "http://127.0.0.1:$port/metrics" >"$out/$name-metrics.txt" 2>/dev/null
  stop_server "$pid"
}

for cfg in ${CONFIGS:-dense dsa}; do
  case "$cfg" in
    dense) run_config dense "$here/data/configs/llama-3.1-8b.config.json" "$dense_sweeps" ;;
    dsa) run_config dsa "$here/data/configs/llama-3.1-8b-dsa.config.json" "$dsa_sweeps" ;;
    *) echo "unknown config $cfg (dense or dsa)" ;;
  esac
done
echo "serve_bench_gpu: done in $((SECONDS - start_all)) s; JSONs in $out"
