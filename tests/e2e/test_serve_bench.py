"""tools/bench/serve_bench.py against the real `longbow serve` (demo model, CPU) with tiny numbers, and
its failure paths: a closed port, a refused model name, and a stream shorter than ignore_eos asked for
(from a stand-in server here, since longbow refuses what would end early). Then plot_serve_bench.py on
the result. No assertion on a timing value beyond > 0 and the order of the percentiles.
"""

import argparse
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

from longbow_server import Checks, LongbowServer

METRICS = ("ttft", "tpot", "itl", "e2el")


def parse_args(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--longbow", required=True)
    p.add_argument("--source-dir", required=True)
    p.add_argument("--demo-model", required=True)
    return p.parse_args(argv)


def run_bench(bench, *args):
    proc = subprocess.run([sys.executable, bench] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)
    if proc.returncode != 0:
        sys.stderr.write("serve_bench rc=%d\n--- stdout\n%s\n--- stderr\n%s\n" % (proc.returncode, proc.stdout[-3000:],
                                                                              proc.stderr[-3000:]))
    return proc


def check_level(c, level, what, n, output_len, input_len=None):
    c.equal(level["completed"], n, what + ": completed")
    c.equal(level["failed"], 0, what + ": failed")
    c.equal(level["total_output_tokens"], n * output_len, what + ": output tokens (usage)")
    c.equal(level["output_lens"], [output_len] * n, what + ": output tokens per request")
    if input_len is not None:
        c.equal(level["total_input_tokens"], n * input_len, what + ": input tokens (usage)")
    for key in ("duration", "request_throughput", "output_throughput", "total_token_throughput"):
        c.check(level[key] > 0, "%s: %s > 0 (%r)" % (what, key, level[key]))
    c.check(level["total_token_throughput"] > level["output_throughput"], what + ": total > output throughput")
    for m in METRICS:
        p50, p90, p99 = (level["%s_%s_ms" % (s, m)] for s in ("median", "p90", "p99"))
        # A gap between two chunks that arrived in one read is 0, so ITLs are only >= 0; TTFT, TPOT and E2E
        # end after their first chunk was read, so they are > 0.
        low = 0 if m == "itl" else 1e-9
        c.check(low <= p50 <= p90 <= p99, "%s: %s percentiles positive and ordered (%r, %r, %r)" % (what, m, p50, p90, p99))
        c.check(level["mean_%s_ms" % m] >= low, "%s: mean %s > 0" % (what, m))
    for ttft, e2el, itl in zip(level["ttfts"], level["e2els"], level["itls"]):
        c.check(0 < ttft <= e2el, "%s: 0 < TTFT <= E2E (%r, %r)" % (what, ttft, e2el))
        c.check(1 <= len(itl) <= output_len - 1, "%s: one ITL per later chunk (%d for %d tokens)" % (what, len(itl),
                                                                                                      output_len))
    c.check(1 <= level["max_concurrent_requests"] <= (level["max_concurrency"] or n),
            "%s: peak concurrency %r within the limit" % (what, level["max_concurrent_requests"]))


def check_roofline(c, bench):
    """--roofline-only on the 8B configs: the published parameter count and the closed forms of the
    FLOP model (docs/benchmarks.md: 1.83e15 GEMM and 4.50e15 attention FLOPs for a 128K prompt)."""
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(bench)))), "configs")
    n, layers, hq, d = 131072, 32, 32, 128
    for name in ("llama-3.1-8b", "llama-3.1-8b-dsa"):
        proc = run_bench(bench, "--roofline-only", "--model-config", os.path.join(configs, name + ".config.json"),
                         "--random-input-len", n, "--random-output-len", 1)
        c.equal(proc.returncode, 0, name + ": --roofline-only exit")
        doc = json.loads(proc.stdout)
        if name == "llama-3.1-8b":
            c.equal(doc["model"]["params"], 8030261248, "Llama-3.1-8B parameter count")
            c.check(abs(doc["prefill_gemm_flops"] / 1.83e15 - 1) < 0.005, "8B 128K GEMM FLOPs %r" % doc["prefill_gemm_flops"])
            c.equal(doc["prefill_attention_flops"], 2 * hq * d * layers * n * (n + 1), "8B 128K causal attention FLOPs")
        else:
            k, hi, di = 2048, 64, 128
            keys = k * (k + 1) // 2 + (n - k) * k  # each row attends to min(row + 1, index_topk) keys
            expected = 4 * hq * d * layers * keys + 2 * hi * di * layers * n * (n + 1) // 2
            c.equal(doc["prefill_attention_flops"], expected, "8B DSA 128K sparse attention + indexer FLOPs")


class ShortStreamHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in OpenAI server whose streams stop after 3 tokens whatever max_tokens says."""

    protocol_version = "HTTP/1.0"  # close-delimited bodies: the third way serve_bench reads a body

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "short", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = min(3, req["max_tokens"])
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(n):
            chunk = {"choices": [{"index": 0, "text": "x", "token_ids": [5 + i],
                                  "finish_reason": "length" if i == n - 1 else None}]}
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        usage = {"choices": [], "usage": {"prompt_tokens": len(req["prompt"]), "completion_tokens": n}}
        self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")


def main():
    args = parse_args(sys.argv[1:])
    repo = os.path.dirname(os.path.dirname(os.path.abspath(args.source_dir)))
    bench = os.path.join(repo, "tools", "bench", "serve_bench.py")
    plot = os.path.join(repo, "tools", "bench", "plot_serve_bench.py")
    config = os.path.join(args.demo_model, "config.json")
    c = Checks()
    tmp = tempfile.mkdtemp(prefix="serve_bench_e2e_")

    check_roofline(c, bench)

    with LongbowServer(args.longbow) as server:
        # Token-id prompts, a concurrency sweep, the roofline of the demo config.
        ids_json = os.path.join(tmp, "ids.json")
        proc = run_bench(bench, "--base-url", server.url, "--random-input-len", 16, "--random-output-len", 8,
                         "--concurrency", "1,2", "--num-prompts", 4, "--ignore-eos", "--num-warmups", 1,
                         "--model-config", config, "--save-detailed", "--label", "demo", "--result-file", ids_json)
        c.equal(proc.returncode, 0, "token-id sweep exit")
        doc = json.load(open(ids_json))
        c.equal(doc["tool"], "serve_bench", "result tool")
        c.equal([lv["max_concurrency"] for lv in doc["levels"]], [1, 2], "one level per concurrency")
        for lv in doc["levels"]:
            what = "ids C=%s" % lv["max_concurrency"]
            check_level(c, lv, what, 4, 8, input_len=16)
            roof = lv["roofline"]
            for key in ("compute_ceiling_output_tok_s", "bandwidth_ceiling_output_tok_s", "roofline_output_tok_s",
                        "achieved_fraction", "flops", "weight_bytes", "kv_bytes"):
                c.check(roof[key] > 0, "%s: roofline %s > 0 (%r)" % (what, key, roof[key]))
            c.equal(roof["roofline_output_tok_s"], min(roof["compute_ceiling_output_tok_s"],
                                                       roof["bandwidth_ceiling_output_tok_s"]), what + ": roofline = min")
            c.equal(roof["batch"], lv["max_concurrency"], what + ": roofline batch")
        c.equal(doc["levels"][0]["max_concurrent_requests"], 1, "C=1 never runs two requests")
        c.check("C " in proc.stdout and "out tok/s" in proc.stdout, "summary table printed")

        # Text prompts fitted with /tokenize; a Poisson request rate without a concurrency limit.
        text_json = os.path.join(tmp, "text.json")
        proc = run_bench(bench, "--port", server.http_port, "--prompt-type", "text", "--random-input-len", 24,
                         "--random-output-len", 4, "--num-prompts", 4, "--request-rate", 50, "--seed", 3,
                         "--ignore-eos", "--save-detailed", "--summary-only", "--result-file", text_json)
        c.equal(proc.returncode, 0, "text prompts exit")
        level = json.load(open(text_json))["levels"][0]
        check_level(c, level, "text", 4, 4)
        c.check(all(8 <= n <= 24 for n in level["input_lens"]), "text prompts fit 24 tokens: %r" % level["input_lens"])
        c.equal(level["max_concurrency"], None, "rate mode: no concurrency limit")

        # A refused request: the first error body is shown and the run fails.
        proc = run_bench(bench, "--base-url", server.url, "--model", "no-such-model", "--num-prompts", 2)
        c.check(proc.returncode != 0, "unknown model: nonzero exit")
        c.check("HTTP 404" in proc.stderr and "no-such-model" in proc.stderr,
                "unknown model: the status and the server's message shown: %r" % proc.stderr[-300:])

    # Nothing listening.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    closed_json = os.path.join(tmp, "closed.json")
    proc = run_bench(bench, "--port", closed_port, "--num-prompts", 2, "--result-file", closed_json)
    c.check(proc.returncode != 0, "closed port: nonzero exit")
    c.check("cannot connect to http://127.0.0.1:%d" % closed_port in proc.stderr and "is the server running" in proc.stderr,
            "closed port: a clear message: %r" % proc.stderr[-300:])
    c.check(not os.path.exists(closed_json), "closed port: no result written")

    # Streams shorter than ignore_eos asked for are failures, counted and shown.
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ShortStreamHandler)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    short_json = os.path.join(tmp, "short.json")
    try:
        proc = run_bench(bench, "--port", fake.server_address[1], "--random-input-len", 8, "--random-output-len", 8,
                         "--vocab-size", 100, "--max-concurrency", 2, "--num-prompts", 4, "--ignore-eos",
                         "--result-file", short_json)
    finally:
        fake.shutdown()
    c.equal(proc.returncode, 1, "short streams: exit 1")
    level = json.load(open(short_json))["levels"][0]
    c.equal((level["completed"], level["failed"]), (0, 4), "short streams: all failed")
    c.equal([(e["count"], e["message"]) for e in level["errors"]],
            [(4, "asked for 8 tokens with ignore_eos, got 3 (finish_reason length)")], "short streams: the error")
    c.check("4 of 4 requests failed; the first: asked for 8 tokens" in proc.stderr, "short streams: shown on stderr")

    # The plot of the sweep.
    png = os.path.join(tmp, "plot.png")
    proc = subprocess.run(["/usr/bin/python3", plot, png, ids_json, text_json, "--title", "e2e"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    c.equal(proc.returncode, 0, "plot exit (%s)" % proc.stderr[-300:])
    with open(png, "rb") as f:
        c.equal(f.read(8), b"\x89PNG\r\n\x1a\n", "plot is a PNG")
    c.finish()


if __name__ == "__main__":
    main()
