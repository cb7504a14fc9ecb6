#!/usr/bin/env bash
# Runs the GPU image's root filesystem on a GPU machine without a container runtime, the way the
# NVIDIA Container Toolkit would run the image: chroot into it, the host's driver libraries and
# GPU device nodes mounted in, the image's user, environment and entrypoint. Checks that the server
# comes up on the CUDA backend and answers /health, the HEALTHCHECK probe and a completion, and
# that SIGTERM ends it with status 0.
#
#   tests/e2e/docker/gpu_rootfs.sh EXPORT_DIR [WORK_DIR]
#
# EXPORT_DIR is what `LONGBOW_DOCKER_VARIANT=cuda LONGBOW_DOCKER_EXPORT=EXPORT_DIR
# tests/e2e/docker/docker_image_test.sh` wrote where the image was built: rootfs.tar.xz,
# toolkit-files.txt (the image's CUDA toolkit libraries, left out of the tarball: path, SHA-256,
# size) and image.json. Those libraries are put back from this machine's toolkit
# (CUDA_LIB_DIR, default /usr/local/cuda/lib64) only when their SHA-256 matches, so the root
# filesystem that runs is byte for byte the image's. Needs root (chroot, mount).
set -euo pipefail

export_dir=$(cd "$1" && pwd)
work=${2:-/tmp/longbow-gpu-rootfs}
cuda_lib_dir=${CUDA_LIB_DIR:-/usr/local/cuda/lib64}
rootfs=$work/rootfs
started=$SECONDS
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> [$((SECONDS - started))s] $*"; }
pass() { echo "    ok: $*"; }
# shellcheck source=server_checks.sh
source "$(dirname "$0")/server_checks.sh"

[[ $(id -u) -eq 0 ]] || fail "must run as root (chroot, mount)"
mounts=()
server_pid=
cleanup() {
  if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then kill -KILL -- "-$server_pid" 2>/dev/null || true; fi
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

# ---- 1. the root filesystem, with the toolkit's libraries put back ------------------------------
step "unpack $export_dir/rootfs.tar.xz"
rm -rf "$rootfs"
mkdir -p "$rootfs"
tar -C "$rootfs" --numeric-owner -xJf "$export_dir/rootfs.tar.xz"
while read -r path sum size; do
  name=$(basename "$path")
  source_file=$cuda_lib_dir/$name
  [[ -f $source_file ]] || fail "the image's $name is not in $cuda_lib_dir"
  have=$(sha256sum <"$source_file" | cut -d' ' -f1)
  [[ $have == "$sum" ]] || fail "$source_file differs from the image's $name (sha256 $have, image $sum)"
  install -m 0644 "$source_file" "$rootfs/$path"
  pass "$path from $source_file ($size bytes, sha256 matches)"
done <"$export_dir/toolkit-files.txt"

# ---- 2. the host's driver and devices, as the NVIDIA Container Toolkit mounts them -------------
step "mount the host's driver libraries and GPU devices"
driver_lib=$(ldconfig -p | awk '$1 == "libcuda.so.1" { print $NF; exit }')
[[ -n $driver_lib ]] || driver_lib=$(ls /usr/local/nvidia/lib64/libcuda.so.1 2>/dev/null || true)
[[ -n $driver_lib ]] || fail "no libcuda.so.1 on this machine"
driver_dir=$(dirname "$(readlink -f "$driver_lib")")
target_dir=$rootfs/usr/local/nvidia/lib64
mkdir -p "$target_dir"
for f in "$driver_dir"/libcuda.so* "$driver_dir"/libnvidia-*.so*; do
  [[ -e $f ]] || continue
  if [[ -L $f ]]; then cp -P "$f" "$target_dir/"; continue; fi  # a link names a file mounted beside it
  touch "$target_dir/$(basename "$f")"
  mount --bind -o ro "$f" "$target_dir/$(basename "$f")" || fail "mount --bind $f"
  mounts+=("$target_dir/$(basename "$f")")
done
pass "$(ls "$target_dir" | wc -l) driver files from $driver_dir at /usr/local/nvidia/lib64"
for fs in dev proc sys; do
  mount --rbind "/$fs" "$rootfs/$fs" || fail "mount --rbind /$fs"
  mounts+=("$rootfs/$fs")
done
ls "$rootfs"/dev/nvidia* >/dev/null 2>&1 || fail "no /dev/nvidia* devices inside the root filesystem"
pass "/dev, /proc, /sys ($(cd "$rootfs/dev" && ls -d nvidia* | tr '\n' ' '))"

# ---- 3. the image's user, environment and entrypoint --------------------------------------------
read -r user entrypoint < <(/usr/bin/python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["Docker"]["config"]
print(c["User"], " ".join(c["Entrypoint"]))' "$export_dir/image.json")
mapfile -t image_env < <(/usr/bin/python3 -c '
import json, sys
for e in json.load(open(sys.argv[1]))["Docker"]["config"]["Env"]: print(e)' "$export_dir/image.json")
[[ ${user%%:*} != 0 ]] || fail "the image runs as root"
http_port=$(free_port)
grpc_port=$(free_port)
[[ $http_port != "$grpc_port" ]] || grpc_port=$(free_port)
# As NVIDIA's CUDA images do, the driver's folder is on LD_LIBRARY_PATH; LONGBOW_BACKEND=cuda makes
# a missing GPU an error instead of a silent CPU fallback.
in_image() {
  chroot --userspec="$user" "$rootfs" /usr/bin/env -i -C /home/longbow "${image_env[@]}" HOME=/home/longbow \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64 LONGBOW_PORT="$http_port" LONGBOW_GRPC_PORT="$grpc_port" "$@"
}
version=$(in_image $entrypoint --version)
pass "$version (as uid $(in_image id -u))"

step "serve on the CUDA backend"
# Its own session, so cleanup can kill whatever is left; chroot, env and the entrypoint all exec.
setsid chroot --userspec="$user" "$rootfs" /usr/bin/env -i -C /home/longbow "${image_env[@]}" HOME=/home/longbow \
  LD_LIBRARY_PATH=/usr/local/nvidia/lib64 LONGBOW_PORT="$http_port" LONGBOW_GRPC_PORT="$grpc_port" \
  LONGBOW_BACKEND=cuda $entrypoint >"$work/serve.log" 2>&1 &
server_pid=$!
base_url=http://127.0.0.1:$http_port
wait_healthy "$base_url" "$server_pid" "$work/serve.log"
backend_line=$(grep -m1 "CUDA backend on device" "$work/serve.log" || true)
[[ -n $backend_line ]] || { cat "$work/serve.log"; fail "the server did not log the CUDA backend"; }
pass "/health 200; ${backend_line#*] }"
probe=$(/usr/bin/python3 -c '
import json, sys
print(" ".join(json.load(open(sys.argv[1]))["Docker"]["config"]["Healthcheck"]["Test"][1:]))' "$export_dir/image.json")
probe_out=$(in_image $probe 2>&1) || fail "healthcheck probe: $probe_out"
pass "HEALTHCHECK probe: $probe_out"
check_completion "$base_url" 16
sigterm_exits_zero "$server_pid" "$work/serve.log"
server_pid=
step "PASS (GPU image root filesystem on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1))"
