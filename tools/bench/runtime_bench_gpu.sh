#!/usr/bin/env bash
# On the GPU machine, from a bundle made by tools/gpu_bundle/pack.sh (this script copied beside
# run_gpu_tests.sh): `longbow serve --load-format dummy` of Llama-3.1-8B's config answering one REST
# completion (its memory-plan log line kept), the FillRandom kernel test, then the e2e step
# (longbow_runtime_bench on the 8B config; the DSA config too when the bundle has it).
#
#   bundle/runtime_bench_gpu.sh OUTDIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: runtime_bench_gpu.sh OUTDIR}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64:/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
config="$here/data/configs/llama-3.1-8b.config.json"

echo "== serve --load-format dummy ($config)"
start=$SECONDS
"$here/longbow" serve --model "$config" --load-format dummy --tokenizer "$here/data/demo-model" --backend cuda \
  --port 18000 --grpc-port 18001 >"$out/serve.log" 2>&1 &
pid=$!
up=0
for _ in $(seq 1 240); do
  if curl -sf http://127.0.0.1:18000/health >/dev/null 2>&1; then up=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 0.5
done
if [[ $up == 1 ]]; then
  echo "serve: ready after $((SECONDS - start)) s"
  curl -s -w '\nHTTP %{http_code}\n' -H 'Content-Type: application/json' http://127.0.0.1:18000/v1/completions \
    -d '{"model": "llama-3.1-8b", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0}'
else
  echo "serve: never became healthy"
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
grep -E "memory plan|RESOURCE|error" "$out/serve.log" | head -5

echo "== FillRandom kernel test"
"$here/longbow_kernel_tests" --gtest_filter='*FillRandom*' 2>&1 | grep -E "error|OK|FAILED|PASSED" | head -12

echo "== e2e"
STEPS=e2e STEP_TIMEOUT=420 "$here/run_gpu_tests.sh" "$out/e2e" >/dev/null 2>&1
cat "$out/e2e/run.log"
dsa="$here/data/configs/llama-3.1-8b-dsa.config.json"
if [[ -f "$dsa" ]]; then
  echo "== e2e DSA"
  # Prompts prefill densely (index keys still written): a sparse prefill of a 128K prompt scores every row
  # against the whole index cache, which the prefill path does not yet do at speed.
  timeout 300 "$here/longbow_runtime_bench" --config "$dsa" --json "$out/e2e_dsa.json" --ttft-repeats 1 \
    --dsa-prefill dense 2>&1 | tail -14
fi
