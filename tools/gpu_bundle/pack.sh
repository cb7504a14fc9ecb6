#!/usr/bin/env bash
# Builds the GPU programs here (no GPU needed) and assembles a self-contained bundle folder for the
# GPU machine: binaries, their non-system shared libraries (rpath $ORIGIN/lib), the torch peer
# scripts, test data, and run_gpu_tests.sh, which runs everything there (its STEPS select the short
# loops of kernel work: STEPS="tests prefill", STEPS="dsa memcheck", ...).
#
#   tools/gpu_bundle/pack.sh [OUT_DIR]      (default: bundle/, git-ignored)
#   BUILD_DIR=build-cuda (default) selects the build tree.
#
# Left out on purpose (the GPU machine has them, matching its driver): glibc and the loader,
# libcuda, libcublas/libcublasLt, libnccl, libcudart (linked statically anyway).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
out=${1:-bundle}
build_dir=${BUILD_DIR:-build-cuda}

cmake -S . -B "$build_dir" -G Ninja -DLONGBOW_CUDA=ON -DLONGBOW_WERROR=ON >/dev/null
# Required programs, then optional ones that other parts of the tree provide once they exist.
targets=(longbow_kernel_tests longbow_dsa_kernel_tests longbow_kernel_bench longbow_dsa_bench longbow_runtime_bench
  longbow_lightning_bench longbow_mla_bench)
# PACK_OPTIONAL overrides the list (e.g. PACK_OPTIONAL="longbow_runtime_parity demo_model" skips the server).
read -r -a optional <<<"${PACK_OPTIONAL:-longbow_runtime_parity longbow demo_model longbow_decode_graph_tests longbow_decode_graph_bench longbow_tokenizer_bench}"
available=$(cmake --build "$build_dir" --target help 2>/dev/null | sed -n 's/^\([A-Za-z0-9_]*\): .*/\1/p')
echo "pack: building ${targets[*]} in $build_dir"
cmake --build "$build_dir" -j2 --target "${targets[@]}"
# Optional programs that fail to build (work in progress elsewhere in the tree) are left out, loudly.
for t in "${optional[@]}"; do
  if ! grep -qx "$t" <<<"$available"; then continue; fi
  if cmake --build "$build_dir" -j2 --target "$t" >"$build_dir/pack-$t.log" 2>&1; then
    targets+=("$t")
  else
    echo "pack: WARNING: optional target $t failed to build (see $build_dir/pack-$t.log); left out" >&2
  fi
done

rm -rf "$out"
mkdir -p "$out/lib" "$out/peers" "$out/data"
skip_lib='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libresolv|libutil|libcuda\.so|libcublas|libcublasLt|libnccl|libcudart)'
for t in "${targets[@]}"; do
  [[ "$t" == demo_model ]] && continue  # data, copied below
  bin="$build_dir/bin/$t"
  [[ -x "$bin" ]] || { echo "pack: $bin missing" >&2; exit 1; }
  cp "$bin" "$out/$t"
  strip "$out/$t" 2>/dev/null || true
  # "name => /path (addr)" lines; copy each library not provided by the GPU machine.
  ldd "$bin" | awk '/=>/ {print $1, $3}' | while read -r name path; do
    if [[ "$name" =~ $skip_lib ]]; then continue; fi
    if [[ "$path" == "not" || ! -f "$path" ]]; then echo "pack: $t needs $name, not found here" >&2; exit 1; fi
    [[ -f "$out/lib/$name" ]] || cp -L "$path" "$out/lib/$name"
  done
done

cp tools/bench/*.py "$out/peers/"
mkdir -p "$out/data/configs" && cp configs/llama-3.1-8b*.config.json configs/gemma-3-12b*.config.json configs/minimax-*.config.json \
  "$out/data/configs/"
cp tools/gpu_bundle/run_gpu_tests.sh "$out/run_gpu_tests.sh"
cp tools/bench/dsa_profile_gpu.sh "$out/dsa_profile_gpu.sh"  # per-kernel DSA times under ncu
cp tools/bench/runtime_bench_gpu.sh "$out/runtime_bench_gpu.sh"  # 8B dummy serve, FillRandom, 8B dense and DSA e2e
cp tools/bench/local_global_bench_gpu.sh "$out/local_global_bench_gpu.sh"  # Gemma-3-12B hybrid against all-global
cp tools/bench/minimax_bench_gpu.sh "$out/minimax_bench_gpu.sh"  # lightning layer and MiniMax slice (issue 13)
cp tools/bench/serve_bench_gpu.sh "$out/serve_bench_gpu.sh"  # peers/serve_bench.py sweeps against the 8B dummy server
chmod +x "$out/run_gpu_tests.sh" "$out/dsa_profile_gpu.sh" "$out/runtime_bench_gpu.sh" "$out/local_global_bench_gpu.sh" "$out/minimax_bench_gpu.sh" \
  "$out/serve_bench_gpu.sh"
# Test data: the parity fixtures and the built demo model, when present. PACK_PARITY_DATA=0 leaves
# the fixtures out (run_gpu_tests.sh then reads them from the repository beside the bundle, which the
# GPU machine's copy of the working tree has anyway; saves ~12 MB of the 64 MiB a call may carry).
if [[ -d tests/data/parity && "${PACK_PARITY_DATA:-1}" != 0 ]]; then mkdir -p "$out/data/parity" && cp -r tests/data/parity/. "$out/data/parity/"; fi
if [[ -f "$build_dir/demo-model/config.json" ]]; then
  mkdir -p "$out/data/demo-model" && cp -r "$build_dir/demo-model/." "$out/data/demo-model/"
fi
git -C "$repo" rev-parse --short HEAD > "$out/COMMIT" 2>/dev/null || true
du -sh "$out" | awk '{print "pack: " $2 " is " $1}'
