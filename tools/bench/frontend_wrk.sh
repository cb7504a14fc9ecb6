#!/usr/bin/env bash
# Front-end throughput (docs/benchmarks.md): wrk against GET /health and POST /tokenize of a
# `longbow serve` on the demo model (CPU backend), so the HTTP server, not the model, is measured.
#   tools/bench/frontend_wrk.sh LONGBOW_BINARY [SECONDS] [CONNECTIONS]
set -euo pipefail
exe="${1:?usage: $0 LONGBOW_BINARY [SECONDS] [CONNECTIONS]}"
seconds="${2:-10}"
connections="${3:-64}"
here="$(cd "$(dirname "$0")" && pwd)"
log="$(mktemp)"
"$exe" serve --host 127.0.0.1 --port 0 --grpc-port 0 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 600); do
  port="$(grep -o 'listening: http=[0-9.]*:[0-9]*' "$log" | sed 's/.*://' || true)"
  [[ -n "$port" ]] && curl -sf "http://127.0.0.1:$port/health" >/dev/null && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "server did not start"; cat "$log"; exit 1; }
echo "== $exe: GET /health, $connections connections, ${seconds} s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency "http://127.0.0.1:$port/health" | grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx"
echo "== $exe: POST /tokenize, $connections connections, ${seconds} s"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s "$here/wrk_tokenize.lua" "http://127.0.0.1:$port/tokenize" |
  grep -E "Requests/sec|99%|50%|Socket errors|Non-2xx"
