#!/usr/bin/env bash
# Builds the DSA GPU programs (no GPU needed) and assembles a small self-contained bundle for the GPU
# machine: longbow_dsa_kernel_tests, longbow_dsa_bench, the torch peer, dsa_run_gpu.sh and
# dsa_profile_gpu.sh.
#
#   tools/bench/dsa_pack.sh [OUT_DIR]     (default: build-dsa/gpu-dsa; BUILD_DIR=build-dsa)
# Then on the GPU machine: OUT_DIR/dsa_run_gpu.sh RESULTS_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir=${BUILD_DIR:-build-dsa}
out=${1:-$build_dir/gpu-dsa}
cmake -S . -B "$build_dir" -G Ninja -DLONGBOW_CUDA=ON -DLONGBOW_WERROR=ON >/dev/null
cmake --build "$build_dir" -j2 --target longbow_dsa_kernel_tests longbow_dsa_bench
rm -rf "$out"
mkdir -p "$out/lib"
skip_lib='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil|libcuda\.so|libcublas|libcublasLt|libnccl|libcudart)'
for t in longbow_dsa_kernel_tests longbow_dsa_bench; do
  cp "$build_dir/bin/$t" "$out/$t"
  strip --strip-debug "$out/$t" 2>/dev/null || true
  ldd "$build_dir/bin/$t" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    if [[ "$name" =~ $skip_lib ]]; then continue; fi
    [[ -f "$out/lib/$name" ]] || cp -L "$path" "$out/lib/$name"
  done
done
cp tools/bench/dsa_torch_peer.py tools/bench/dsa_run_gpu.sh tools/bench/dsa_profile_gpu.sh "$out/"
chmod +x "$out/dsa_run_gpu.sh"
git rev-parse --short HEAD > "$out/COMMIT" 2>/dev/null || true
du -sh "$out" | awk '{print "dsa_pack: " $2 " is " $1}'
