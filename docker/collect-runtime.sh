#!/bin/sh
# Gathers what the runtime image needs into one folder (run in the build stage):
#
#   docker/collect-runtime.sh DEST DEMO_MODEL_DIR PROGRAM...
#
#   DEST/bin/         the programs (stripped) and the entrypoint
#   DEST/lib/         every shared library the programs load (found by ldd), except the C library
#                     (the runtime base image has the same one) and the CUDA/driver libraries
#                     (the CUDA runtime base image has them; the driver comes from the host)
#
# LONGBOW_BUNDLE_CUDA_LIBS=1 copies the CUDA toolkit's runtime libraries (cuBLAS, cuBLASLt, cudart)
# into DEST/lib too, for a runtime base that is not a CUDA runtime image (the Debian GPU image).
# The driver's libraries (libcuda, libnvidia-*) are never copied: they must match the host's driver,
# which the container runtime mounts.
#   DEST/demo-model/  the built demo model (`longbow` looks for <exe dir>/../demo-model)
#
# The runtime stage copies DEST as is and adds DEST/lib to the loader's path, so it needs no
# package manager, and the same script serves Debian and Ubuntu bases alike.
set -eu

if [ $# -lt 3 ]; then
  echo "usage: $0 DEST DEMO_MODEL_DIR PROGRAM..." >&2
  exit 2
fi
dest=$1
demo_model=$2
shift 2
here=$(dirname "$0")

mkdir -p "$dest/bin" "$dest/lib"
install -m 0755 "$here/entrypoint.sh" "$dest/bin/longbow-entrypoint"

bundle_cuda=${LONGBOW_BUNDLE_CUDA_LIBS:-0}

# Libraries the runtime base image provides: glibc's own, the host driver's, and (unless
# bundle_cuda) the CUDA toolkit's, which a CUDA runtime base image has.
provided_by_base() {
  case $1 in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | \
      librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libmvec.so.*) return 0 ;;
    libcuda.so.* | libnvidia-*.so.*) return 0 ;;
    libcudart.so.* | libcublas.so.* | libcublasLt.so.* | libnccl.so.* | libnvrtc.so.* | \
      libcudnn*.so.*) [ "$bundle_cuda" != 1 ] ;;
    *) return 1 ;;
  esac
}

missing=0
for program in "$@"; do
  install -m 0755 "$program" "$dest/bin/"
  strip --strip-unneeded "$dest/bin/$(basename "$program")"
  # ldd lines: "libfoo.so.1 => /path/libfoo.so.1 (0x...)", "libbar.so.2 => not found", or the loader.
  ldd "$program" | while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    provided_by_base "$name" && continue
    if [ "$path" = "not" ]; then
      echo "collect-runtime: $program needs $name, which is not installed" >&2
      exit 1
    fi
    case $path in /usr/local/cuda*) [ "$bundle_cuda" = 1 ] || continue ;; esac  # the toolkit's own
    cp -L -n "$path" "$dest/lib/$name"
  done || missing=1
done
[ "$missing" -eq 0 ] || exit 1
# The toolkit's libraries ship stripped (and are checked against the toolkit's files byte for byte
# by tests/e2e/docker/gpu_rootfs.sh), so only the others are stripped here.
for lib in "$dest"/lib/*.so*; do
  case $(basename "$lib") in libcudart.so.* | libcublas*.so.* | libnccl.so.* | libnvrtc.so.* | libcudnn*.so.*) continue ;; esac
  strip --strip-unneeded "$lib" 2>/dev/null || true
done

rm -rf "$dest/demo-model"
cp -r "$demo_model" "$dest/demo-model"

echo "collect-runtime: $(ls "$dest/lib" | wc -l) libraries, $(du -sh "$dest" | cut -f1) in $dest"
ls "$dest/lib" >&2
