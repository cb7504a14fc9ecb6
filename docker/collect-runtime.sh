#!/bin/sh
# Gathers what the runtime image needs into one folder (run in the build stage):
#
#   docker/collect-runtime.sh DEST DEMO_MODEL_DIR PROGRAM...
#
#   DEST/bin/         the programs (stripped) and the entrypoint
#   DEST/lib/         every shared library the programs load (found by ldd), except the C library
#                     (the runtime base image has the same one) and the CUDA/driver libraries
#                     (the CUDA runtime base image has them; the driver comes from the host)
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

# Libraries the runtime base image provides: glibc's own, and CUDA's (runtime image / host driver).
provided_by_base() {
  case $1 in
    linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | \
      librt.so.* | libresolv.so.* | libutil.so.* | libanl.so.* | libmvec.so.*) return 0 ;;
    libcuda.so.* | libcudart.so.* | libcublas.so.* | libcublasLt.so.* | libnccl.so.* | \
      libnvidia-*.so.* | libnvrtc.so.* | libcudnn*.so.*) return 0 ;;
  esac
  return 1
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
    case $path in /usr/local/cuda*) continue ;; esac  # the CUDA toolkit's own libraries
    cp -L -n "$path" "$dest/lib/$name"
  done || missing=1
done
[ "$missing" -eq 0 ] || exit 1
strip --strip-unneeded "$dest"/lib/*.so* 2>/dev/null || true

rm -rf "$dest/demo-model"
cp -r "$demo_model" "$dest/demo-model"

echo "collect-runtime: $(ls "$dest/lib" | wc -l) libraries, $(du -sh "$dest" | cut -f1) in $dest"
ls "$dest/lib" >&2
