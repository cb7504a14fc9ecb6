#!/usr/bin/env bash
# End-to-end test of the Docker image (CPU variant), with no Docker daemon and no registry:
#
#   1. a Debian 12 base image from debootstrap (tarball cached in WORK, docker/make-debian-base.sh)
#   2. `buildah bud --isolation chroot` of docker/Dockerfile with LONGBOW_CUDA=OFF on that base
#   3. checks of the image: non-root user, ports, /models volume, HEALTHCHECK, exec-form
#      entrypoint, no compiler or source tree in the runtime stage
#   4. `buildah run --isolation chroot` of the image's entrypoint: `longbow --version`, `generate`,
#      then `serve` on free ports: /health, the HEALTHCHECK probe, /v1/models, a completion,
#      and a clean exit on SIGTERM
#
#   tests/e2e/docker/docker_image_test.sh [WORK_DIR]      (default: <repo>/build-docker; CTest passes
#                                                         LONGBOW_DOCKER_WORK_DIR, ~/.cache/longbow/docker-image-test)
#
# LONGBOW_DOCKER_CONTEXT=DIR builds from another copy of the tree (e.g. `git archive HEAD`
# unpacked) instead of this checkout; LONGBOW_DOCKER_JOBS sets the compile jobs (default 2).
#
# LONGBOW_DOCKER_VARIANT=cuda builds the GPU image on the same Debian base instead (not in CI: it
# compiles the CUDA kernels, ~40 min cold on 2 cores): the host's CUDA toolkit (/usr/local/cuda) is
# mounted into the build stage and its runtime libraries (cuBLAS, cuBLASLt) are copied into the
# image. The same checks run here, where there is no GPU (`--backend auto` serves on the CPU).
# LONGBOW_DOCKER_EXPORT=DIR then writes the image's root filesystem for tests/e2e/docker/gpu_rootfs.sh
# on a GPU machine: DIR/rootfs.tar.xz without the toolkit's libraries (they are hundreds of MB; the
# GPU machine's identical toolkit files are put back, checked by SHA-256, from DIR/toolkit-files.txt)
# and DIR/image.json (the image's configuration: user, environment, entrypoint).
#
# Needs root, buildah and debootstrap (scripts/install-deps.sh installs them) and the Debian
# mirror for the first run. Missing tools fail the test; nothing is skipped. buildah's storage
# (overlay driver) lives in WORK_DIR/storage: delete WORK_DIR to reclaim the space.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../../.." && pwd)
work=$(mkdir -p "${1:-$repo/build-docker}" && cd "${1:-$repo/build-docker}" && pwd)
base_image=localhost/longbow-debian:12
variant=${LONGBOW_DOCKER_VARIANT:-cpu}
export_dir=${LONGBOW_DOCKER_EXPORT:-}
case $variant in
  cpu) variant_args=(--build-arg LONGBOW_CUDA=OFF) ;;
  cuda)
    cuda_home=$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")
    [[ -x $cuda_home/bin/nvcc ]] || { echo "FAIL: no CUDA toolkit at $cuda_home (set CUDA_HOME)" >&2; exit 1; }
    variant_args=(--build-arg LONGBOW_CUDA=ON --build-arg BUNDLE_CUDA_LIBS=1 -v "$cuda_home:/usr/local/cuda:ro") ;;
  *) echo "FAIL: LONGBOW_DOCKER_VARIANT must be cpu or cuda, not '$variant'" >&2; exit 1 ;;
esac
image=localhost/longbow:$variant-test
context=$(cd "${LONGBOW_DOCKER_CONTEXT:-$repo}" && pwd)
started=$SECONDS
# One run at a time per work folder (it may be shared by several checkouts: tests/e2e/docker/CMakeLists.txt).
exec 9>"$work/.lock"
flock 9

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> [$((SECONDS - started))s] $*"; }
pass() { echo "    ok: $*"; }
# shellcheck source=server_checks.sh
source "$repo/tests/e2e/docker/server_checks.sh"

# ---- preflight: fail (never skip) when the tools are missing ------------------------------------
[[ $(id -u) -eq 0 ]] || fail "must run as root (buildah chroot isolation and debootstrap need it)"
for tool in buildah debootstrap curl; do
  command -v "$tool" >/dev/null || fail "$tool not found: run scripts/install-deps.sh"
done

# Our own buildah storage, so the test never touches (or races) a system-wide one.
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp  # buildah's temporary files and RUN --mount=type=cache folders
storage=(--root "$work/storage" --runroot "$work/run" --storage-driver overlay)
bah() { buildah "${storage[@]}" "$@"; }

containers=()
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -KILL -- "-$server_pid" 2>/dev/null || true  # the server's own process group (setsid)
  fi
  for c in "${containers[@]}"; do bah rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

# ---- 1. base image -----------------------------------------------------------------------------
step "Debian 12 base image ($base_image)"
"$context/docker/make-debian-base.sh" "$work" "$base_image" "${storage[@]}"

# ---- 2. build the CPU image --------------------------------------------------------------------
step "buildah bud docker/Dockerfile ($variant variant, context $context)"
# --format docker: the OCI format has no HEALTHCHECK field. --layers: reruns reuse the dependency
# layer. --pull=never: only local images exist here.
bah bud --isolation chroot --format docker --layers --pull=never \
  -f "$context/docker/Dockerfile" \
  --build-arg BUILD_IMAGE="$base_image" \
  --build-arg RUNTIME_IMAGE="$base_image" \
  "${variant_args[@]}" \
  --build-arg BUILD_JOBS="${LONGBOW_DOCKER_JOBS:-2}" \
  -t "$image" "$context" >"$work/build-$variant.log" 2>&1 ||
  { tail -40 "$work/build-$variant.log"; fail "image build (log: $work/build-$variant.log)"; }
pass "built $image ($(bah images --format '{{.Size}}' "$image"))"

# ---- 3. image configuration --------------------------------------------------------------------
step "image configuration"
bah inspect --type image "$image" >"$work/image.json"
probe_cmd=$(/usr/bin/python3 "$repo/tests/e2e/docker/check_image_config.py" "$work/image.json") ||
  fail "image configuration ($work/image.json)"
user=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Docker"]["config"]["User"])' \
  "$work/image.json")

ctr=$(bah from --pull=never --name "longbow-image-test-$$" "$image")
containers+=("$ctr")
run() { bah run --isolation chroot "$@"; }  # runs as the image's user, with the image's environment

uid=$(run "$ctr" -- id -u)
[[ $uid == "${user%%:*}" && $uid != 0 ]] || fail "processes run as uid $uid"
pass "processes run as uid $uid"
# The runtime stage holds no toolchain and no source or build tree.
leftovers=$(run "$ctr" -- sh -c 'for t in gcc g++ cc c++ clang ld as cmake ninja make nvcc; do command -v $t; done
  for d in /src /build /usr/include/c++ /usr/local/cuda/bin/nvcc; do [ -e $d ] && echo $d; done; true')
[[ -z $leftovers ]] || fail "runtime stage contains build tools or sources: $leftovers"
pass "no compiler, headers or source tree"

# ---- 4. the binary through the entrypoint -------------------------------------------------------
step "longbow --version / generate in the container"
version=$(run "$ctr" -- /opt/longbow/bin/longbow-entrypoint --version)
[[ $version == longbow\ * ]] || fail "--version printed '$version'"
pass "$version"
text=$(run "$ctr" -- /opt/longbow/bin/longbow-entrypoint generate --prompt "Once upon a time" --max-tokens 8 2>/dev/null)
[[ -n $text ]] || fail "generate printed nothing"
pass "generate: $(printf '%q' "$text")"

# ---- 5. serve -----------------------------------------------------------------------------------
step "longbow serve in the container"
run "$ctr" -- /opt/longbow/bin/longbow --help | grep -qw serve || fail "this longbow has no 'serve' command"
http_port=$(free_port)
grpc_port=$(free_port)
[[ $http_port != "$grpc_port" ]] || grpc_port=$(free_port)

# The HEALTHCHECK probe exactly as the image declares it; nothing listens yet, so it must fail.
if run --env LONGBOW_PORT="$http_port" "$ctr" -- $probe_cmd >/dev/null 2>&1; then
  fail "healthcheck probe passed with no server running"
fi
pass "probe fails while no server runs"

# The image's entrypoint with its default command, configured through the environment only.
setsid buildah "${storage[@]}" run --isolation chroot \
  --env LONGBOW_PORT="$http_port" --env LONGBOW_GRPC_PORT="$grpc_port" \
  "$ctr" -- /opt/longbow/bin/longbow-entrypoint >"$work/serve.log" 2>&1 &
server_pid=$!

base_url=http://127.0.0.1:$http_port
wait_healthy "$base_url" "$server_pid" "$work/serve.log"
pass "/health 200 on port $http_port after $((SECONDS - started))s total"

probe_out=$(run --env LONGBOW_PORT="$http_port" "$ctr" -- $probe_cmd 2>&1) || fail "healthcheck probe: $probe_out"
pass "probe: $probe_out"

check_completion "$base_url" 8

# SIGTERM to the server (the entrypoint exec'd it, so it is the process buildah started) must
# drain and exit 0.
sigterm_exits_zero "$server_pid" "$work/serve.log"
server_pid=

# ---- 6. the root filesystem for a GPU machine ---------------------------------------------------
if [[ -n $export_dir ]]; then
  step "export the root filesystem to $export_dir"
  mkdir -p "$export_dir"
  export_ctr=$(bah from --pull=never --name "longbow-image-export-$$" "$image")
  containers+=("$export_ctr")
  rootfs=$(bah mount "$export_ctr")
  cp "$work/image.json" "$export_dir/image.json"
  # Files identical to a library of the toolkit stay out of the tarball; the manifest names them.
  : >"$export_dir/toolkit-files.txt"
  excludes=()
  if [[ $variant == cuda ]]; then
    for f in "$rootfs"/opt/longbow/lib/*; do
      name=$(basename "$f")
      toolkit_file=$cuda_home/lib64/$name
      [[ -f $toolkit_file ]] || continue
      sum=$(sha256sum <"$f" | cut -d' ' -f1)
      [[ $sum == "$(sha256sum <"$toolkit_file" | cut -d' ' -f1)" ]] || fail "$name differs from $toolkit_file"
      echo "opt/longbow/lib/$name $sum $(stat -c %s "$f")" >>"$export_dir/toolkit-files.txt"
      excludes+=(--exclude="./opt/longbow/lib/$name")
    done
  fi
  tar -C "$rootfs" --numeric-owner "${excludes[@]}" -cf - . | xz -T2 -6 >"$export_dir/rootfs.tar.xz"
  bah umount "$export_ctr" >/dev/null
  pass "rootfs.tar.xz $(du -h "$export_dir/rootfs.tar.xz" | cut -f1); left out: $(cut -d' ' -f1 "$export_dir/toolkit-files.txt" | xargs -r -n1 basename | tr '\n' ' ')"
fi

step "PASS (docker image test, $((SECONDS - started))s)"
