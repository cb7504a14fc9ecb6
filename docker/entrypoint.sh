#!/bin/sh
# The image's entrypoint: turns LONGBOW_* environment variables into `longbow serve` flags and
# then replaces itself with the server (exec), so longbow is PID 1 and receives SIGTERM directly
# (it drains in-flight requests and exits 0).
#
#   (no arguments) or flags          longbow serve [flags from the environment] [your flags]
#   serve [flags]                    the same
#   --version | --help | -h          longbow --version / --help
#   generate ... (any longbow command that is not a program on PATH)   longbow generate ...
#   bash, sh, ... (a program on PATH)                                   runs that program
#
# Flags given on the command line win over the environment: a variable is only turned into a
# flag when that flag is not already among the arguments. Empty variables are ignored.
set -eu

LONGBOW=${LONGBOW_BIN:-/opt/longbow/bin/longbow}  # overridable for testing the script itself

# VARIABLE:flag pairs: the environment the image understands.
env_flags="LONGBOW_MODEL:model LONGBOW_SERVED_MODEL_NAME:served-model-name LONGBOW_HOST:host
  LONGBOW_PORT:port LONGBOW_GRPC_PORT:grpc-port LONGBOW_BACKEND:backend LONGBOW_API_KEY:api-key
  LONGBOW_MAX_MODEL_LEN:max-model-len LONGBOW_MAX_NUM_SEQS:max-num-seqs
  LONGBOW_KV_CACHE_TOKENS:kv-cache-tokens LONGBOW_DRAIN_TIMEOUT:drain-timeout
  LONGBOW_CONFIG:config LONGBOW_LOG_LEVEL:log-level"

# has_flag NAME ARGS...: is --NAME or --NAME=... among ARGS?
has_flag() {
  name=$1
  shift
  for arg in "$@"; do
    case $arg in
      "--$name" | "--$name="*) return 0 ;;
    esac
  done
  return 1
}

case ${1:-} in
  --version | --help | -h) exec "$LONGBOW" "$@" ;;
  serve) shift ;;
  "" | -*) ;;
  *)
    # A program on PATH (bash, sh, ls, ...) runs as is; any other word is a longbow command.
    if command -v "$1" >/dev/null 2>&1; then exec "$@"; fi
    exec "$LONGBOW" "$@"
    ;;
esac

# A model mounted at /models (a Hugging Face directory with config.json) is served when neither
# --model nor LONGBOW_MODEL names one; otherwise longbow serves its built-in demo model.
if [ -z "${LONGBOW_MODEL:-}" ] && ! has_flag model "$@" && [ -f /models/config.json ]; then
  LONGBOW_MODEL=/models
fi

# Prepend a flag for each variable that is set and whose flag the arguments do not give.
for pair in $env_flags; do
  var=${pair%%:*}
  flag=${pair#*:}
  eval "value=\${$var:-}"
  [ -n "$value" ] || continue
  has_flag "$flag" "$@" && continue
  set -- "--$flag" "$value" "$@"
done

echo "longbow-entrypoint: longbow serve $(printf '%s ' "$@" | sed 's/--api-key [^ ]*/--api-key ***/')" >&2
exec "$LONGBOW" serve "$@"
