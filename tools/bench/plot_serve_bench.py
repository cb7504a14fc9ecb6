#!/usr/bin/python3
"""Plots serve_bench.py results: output throughput against latency, one curve per result file.

  plot_serve_bench.py OUT.png dense-1024-128.json dsa-1024-128.json [--title TEXT]

Two panels share the throughput axis: median TPOT and median TTFT (ms, log scale) on x, output tok/s
on y; each point is one concurrency level, annotated with its C. The roofline of each level (when the
JSON has one) is drawn as a dashed line in the curve's colour. Needs matplotlib (Debian
python3-matplotlib; scripts/install-deps.sh installs it); runs on the build machine, not the GPU one.
"""

import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        doc = json.load(f)
    if doc.get("tool") != "serve_bench" or not isinstance(doc.get("levels"), list):
        raise SystemExit("plot_serve_bench: %s is not a serve_bench.py result" % path)
    return doc


def curve_name(doc, path):
    if doc.get("label"):
        name = doc["label"]
    else:
        name = os.path.splitext(os.path.basename(path))[0]
    args = doc.get("args") or {}
    return "%s %s/%s" % (name, args.get("random_input_len", "?"), args.get("random_output_len", "?"))


def main(argv=None):
    p = argparse.ArgumentParser(description="output throughput against TPOT and TTFT from serve_bench.py JSONs")
    p.add_argument("png")
    p.add_argument("results", nargs="+")
    p.add_argument("--title", default="")
    p.add_argument("--no-roofline", action="store_true", help="leave the roofline lines out")
    p.add_argument("--log-y", action="store_true", help="throughput on a log scale")
    args = p.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    plotted = 0
    for i, path in enumerate(args.results):
        doc = load(path)
        levels = [m for m in doc["levels"] if m.get("completed")]
        if not levels:
            sys.stderr.write("plot_serve_bench: %s has no completed level; skipped\n" % path)
            continue
        color = colors[i % len(colors)]
        name = curve_name(doc, path)
        tput = [m["output_throughput"] for m in levels]
        for ax, key in ((axes[0], "median_tpot_ms"), (axes[1], "median_ttft_ms")):
            x = [m[key] for m in levels]
            ax.plot(x, tput, "o-", color=color, label=name)
            for xi, yi, m in zip(x, tput, levels):
                ax.annotate("C=%s" % (m.get("max_concurrency") or "inf"), (xi, yi), textcoords="offset points",
                            xytext=(4, 4), fontsize=7, color=color)
            roof = [(xi, m["roofline"]["roofline_output_tok_s"]) for xi, m in zip(x, levels)
                    if m.get("roofline") and m["roofline"].get("roofline_output_tok_s")]
            if roof and not args.no_roofline:
                ax.plot([r[0] for r in roof], [r[1] for r in roof], "--", color=color, alpha=0.6,
                        label="%s roofline" % name)
        plotted += 1
    if not plotted:
        raise SystemExit("plot_serve_bench: nothing to plot")
    axes[0].set_xlabel("median TPOT (ms)")
    axes[1].set_xlabel("median TTFT (ms)")
    axes[0].set_ylabel("output throughput (tok/s)")
    for ax in axes:
        ax.set_xscale("log")
        if args.log_y:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    sys.stderr.write("plot_serve_bench: wrote %s\n" % args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
