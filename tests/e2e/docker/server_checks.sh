# Checks of a longbow server started from an image, shared by docker_image_test.sh (buildah run on
# the build machine) and gpu_rootfs.sh (chroot on a GPU machine). Sourced; the caller defines
# fail MESSAGE and pass MESSAGE.

# A TCP port nobody listens on (chroot and buildah's chroot isolation share the host's network).
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_healthy BASE_URL SERVER_PID LOG: until /health answers 200 (120 s at most); fails, showing
# the log, when the server exits first or never gets there.
wait_healthy() {
  local base_url=$1 pid=$2 log=$3 code= i
  for ((i = 0; i < 240; i++)); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$base_url/health" || true)
    [[ $code == 200 ]] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; fail "the server exited before becoming healthy"; }
    sleep 0.5
  done
  tail -20 "$log"
  fail "/health never answered 200 (last: $code)"
}

# check_completion BASE_URL MAX_TOKENS: /v1/models names a model, and a greedy completion of
# MAX_TOKENS tokens (no EOS on the demo model's random weights: exactly that many) has text.
check_completion() {
  local base_url=$1 max_tokens=$2 models model_id body completion status
  models=$(curl -sf "$base_url/v1/models") || fail "/v1/models"
  model_id=$(/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])' <<<"$models")
  pass "/v1/models: $model_id"
  body=$(printf '{"model": "%s", "prompt": "Once upon a time", "max_tokens": %d, "temperature": 0}' "$model_id" "$max_tokens")
  completion=$(curl -s -w '\n%{http_code}' -H 'Content-Type: application/json' -d "$body" "$base_url/v1/completions")
  status=${completion##*$'\n'}
  completion=${completion%$'\n'*}
  [[ $status == 200 ]] || fail "/v1/completions answered $status: $completion"
  /usr/bin/python3 - "$completion" "$max_tokens" <<'PY' || fail "bad completion: $completion"
import json, sys
reply = json.loads(sys.argv[1])
choice = reply["choices"][0]
assert reply["object"] == "text_completion", reply["object"]
assert isinstance(choice["text"], str) and choice["text"], "empty text"
assert 1 <= reply["usage"]["completion_tokens"] <= int(sys.argv[2]), reply["usage"]
print("    ok: completion %r (%s, %d tokens)" % (choice["text"], choice["finish_reason"], reply["usage"]["completion_tokens"]))
PY
}

# sigterm_exits_zero SESSION_PID LOG: SIGTERM to the longbow process of the server's session (the
# entrypoint exec'd it) must drain and exit 0 within 30 s.
sigterm_exits_zero() {
  local pid=$1 log=$2 longbow_pid rc i
  longbow_pid=$(ps -o pid=,comm= --sid "$pid" | awk '$2 == "longbow" { print $1 }' | head -1)
  [[ -n $longbow_pid ]] || fail "no longbow process in the server's session"
  kill -TERM "$longbow_pid"
  for ((i = 0; i < 60; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && fail "the server did not exit within 30 s of SIGTERM"
  wait "$pid" && rc=0 || rc=$?
  [[ $rc == 0 ]] || { tail -20 "$log"; fail "the server exited $rc after SIGTERM"; }
  pass "SIGTERM: exited 0"
}
