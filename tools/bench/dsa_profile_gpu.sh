#!/usr/bin/env bash
# Per-kernel durations of one DSA decode step under Nsight Compute (kernels serialized, so no launch
# gaps), inside a bundle made by tools/gpu_bundle/pack.sh on the GPU machine.
#
#   dsa_profile_gpu.sh OUTDIR [BATCH...]      (default batches: 1 8)
# OUTDIR gets ncu-B<batch>.csv and profile.txt (kernel, duration µs, DRAM % of peak, warps active %).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: dsa_profile_gpu.sh OUTDIR [BATCH...]}
shift
batches=${*:-1 8}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$PATH:/usr/local/cuda/bin"
metrics=gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active
for b in $batches; do
  DSA_BENCH_QUICK=1 DSA_BENCH_BATCH=$b timeout 240 ncu --csv --metrics "$metrics" \
    -k 'regex:index_logits|topk|sparse|merge' "$here/longbow_dsa_bench" /tmp/dsa_profile.json \
    > "$out/ncu-B$b.csv" 2> "$out/ncu-B$b.err"
  echo "== B=$b (median over launches of each kernel; µs, dram %, warps active %)"
  python3 - "$out/ncu-B$b.csv" <<'PY'
import csv, sys, statistics, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head = rows[0]; rows = rows[1:]
k, m, v = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Value")
vals = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    name = r[k].replace("(anonymous namespace)::", "").replace("void ", "")
    name = name.split("(")[0].split("<")[0].split("::")[-1]
    vals[name][r[m]].append(float(r[v].replace(",", "")))
for name, ms in vals.items():
    t = statistics.median(ms.get("gpu__time_duration.sum", [0])) / 1e3
    d = statistics.median(ms.get("dram__throughput.avg.pct_of_peak_sustained_elapsed", [0]))
    w = statistics.median(ms.get("sm__warps_active.avg.pct_of_peak_sustained_active", [0]))
    print(f"{name:36s} {t:8.2f} us  dram {d:5.1f} %  warps {w:5.1f} %  (n={len(ms.get('gpu__time_duration.sum', []))})")
PY
done 2>&1 | tee "$out/profile.txt"
