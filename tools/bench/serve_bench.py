#!/usr/bin/env python3
"""serve_bench: a serving benchmark for longbow's streaming OpenAI /v1/completions, with the
semantics of vLLM's `vllm bench serve` (random dataset): random prompts of given lengths, a
concurrency sweep or a Poisson request rate, TTFT / TPOT / ITL / E2E latency and token throughput,
and the roofline of each measured workload next to its throughput.

Python 3 standard library only (it runs on the GPU machine's bare python3): HTTP/1.1 over
asyncio.open_connection, chunked transfer and server-sent events parsed here.

  serve_bench.py --port 8000 --random-input-len 1024 --random-output-len 128 --ignore-eos \
      --concurrency 1,8,32,64 --model-config configs/llama-3.1-8b.config.json --result-file out.json

Definitions (as vLLM's):
  TTFT   send of the request to the first chunk carrying a token
  ITL    gap between successive token-carrying chunks of one request (every chunk after the first)
  TPOT   (E2E - TTFT) / (output tokens - 1), per request (requests of one output token have none)
  E2E    send of the request to the end of its stream
  duration  start of the level to the end of its last request; throughputs divide by it
Output tokens are the server's usage (stream_options.include_usage). Every chunk carries its token ids
(return_token_ids, a longbow and vLLM extension; --no-return-token-ids for servers without it), so a
token that decodes to no text still counts as a chunk; a stream whose ids disagree with its usage, or
(with --ignore-eos) whose usage differs from the requested output length, counts as failed.
"""

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_roofline  # noqa: E402 (beside this file, also in the GPU bundle's peers/)
from serve_http import BenchError, Endpoint, call_json, error_text, open_request  # noqa: E402

# Measured on the H100 of docs/benchmarks.md ("Ceilings measured in the same runs", run 3): cuBLAS bf16
# GEMMs of the 8B shapes ran at 741-786 TFLOP/s; the device copy at 3.01 TB/s (read + write).
DEFAULT_GEMM_TFLOPS = 760.0
DEFAULT_COPY_GBPS = 3010.0
PERCENTILES = (50, 90, 99)

WORDS = ("the of and to in is was for on that with as by at from his her it an were are which this be or has"
         " had one their its new after who they have two first been also she other people more time year some"
         " into city would state only over during many where most world when than these then such about under"
         " later three while both between known game house river music water school power light small great"
         " north south east west early night day story field number system common public general market"
         " village island garden winter summer season station language history series family member party").split()


# ---- one streamed request --------------------------------------------------------------------

class RequestResult:
    __slots__ = ("success", "error", "prompt_tokens", "output_tokens", "ttft", "itl", "latency", "start", "end",
                 "target_output", "streamed_tokens", "finish_reason")

    def __init__(self, target_output):
        self.success = False
        self.error = ""
        self.prompt_tokens = 0
        self.output_tokens = 0
        self.ttft = 0.0
        self.itl = []
        self.latency = 0.0
        self.start = 0.0
        self.end = 0.0
        self.target_output = target_output
        self.streamed_tokens = 0
        self.finish_reason = None


async def stream_request(endpoint, path, body, target_output, opts):
    """Sends one pre-encoded streaming completion and times its chunks."""
    res = RequestResult(target_output)
    res.start = time.perf_counter()
    try:
        await asyncio.wait_for(_stream(endpoint, path, body, res, opts), opts.request_timeout)
    except asyncio.TimeoutError:
        res.error = "no end of stream within --request-timeout %g s" % opts.request_timeout
    except BenchError as e:
        res.error = str(e)
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as e:
        res.error = "%s: %s" % (type(e).__name__, e)
    res.end = time.perf_counter()
    res.latency = res.end - res.start
    if res.error:
        res.success = False
    return res


async def _stream(endpoint, path, body, res, opts):
    resp = await open_request(endpoint, "POST", path, body)
    try:
        if resp.status != 200:
            raw = await resp.read_all()
            try:
                detail = error_text(json.loads(raw.decode("utf-8", "replace")))
            except ValueError:
                detail = raw.decode("utf-8", "replace")
            res.error = "HTTP %d: %s" % (resp.status, detail[:500])
            return
        buf = b""
        last = None
        done = False
        usage = None
        async for piece in resp.pieces():
            now = time.perf_counter()
            buf += piece.replace(b"\r\n", b"\n") if b"\r" in piece else piece  # SSE allows CRLF line ends
            while True:
                cut = buf.find(b"\n\n")
                if cut < 0:
                    break
                event, buf = buf[:cut], buf[cut + 2:]
                if event.startswith(b"data: ") and b"\n" not in event:
                    data = event[6:]  # the usual one-line event
                else:
                    data = b"\n".join(line[5:].lstrip(b" ") for line in event.replace(b"\r", b"").split(b"\n")
                                      if line.startswith(b"data:"))
                if not data:
                    continue
                if data == b"[DONE]":
                    done = True
                    continue
                obj = json.loads(data.decode("utf-8"))
                if "error" in obj:
                    res.error = "error event in the stream: %s" % error_text(obj)[:500]
                    return
                tokens = 0
                for choice in obj.get("choices") or ():
                    ids = choice.get("token_ids")
                    if ids is not None:
                        tokens += len(ids)
                    elif choice.get("text"):
                        tokens += 1  # without token ids: one per text chunk, as vLLM counts chunks
                    if choice.get("finish_reason"):
                        res.finish_reason = choice["finish_reason"]
                if tokens:
                    if last is None:
                        res.ttft = now - res.start
                    else:
                        res.itl.append(now - last)
                    last = now
                    res.streamed_tokens += tokens
                if obj.get("usage"):
                    usage = obj["usage"]
            if done:
                break
    finally:
        resp.close()
    if not done:
        res.error = "the stream ended without data: [DONE]"
        return
    if last is None:
        res.error = "the stream carried no token"
        return
    if not usage:
        res.error = "no usage chunk (stream_options.include_usage) in the stream"
        return
    res.prompt_tokens = int(usage.get("prompt_tokens", 0))
    res.output_tokens = int(usage.get("completion_tokens", 0))
    if opts.return_token_ids and res.streamed_tokens != res.output_tokens:
        res.error = "streamed %d token ids but usage says %d completion tokens" % (res.streamed_tokens,
                                                                                   res.output_tokens)
        return
    if opts.ignore_eos and res.output_tokens != res.target_output:
        res.error = "asked for %d tokens with ignore_eos, got %d (finish_reason %s)" % (
            res.target_output, res.output_tokens, res.finish_reason)
        return
    res.success = True


# ---- prompts -------------------------------------------------------------------------------

def sample_lengths(rng, mean, ratio, n):
    """vLLM's random dataset: uniform integers in [floor(mean*(1-ratio)), ceil(mean*(1+ratio))]."""
    lo = max(1, int(math.floor(mean * (1 - ratio))))
    hi = max(lo, int(math.ceil(mean * (1 + ratio))))
    return [rng.randint(lo, hi) for _ in range(n)]


async def probe_vocab(endpoint):
    """The tokenizer's vocabulary size, found by bisecting /detokenize (ids past the vocabulary are
    refused)."""
    async def valid(token):
        status, _ = await call_json(endpoint, "POST", "/detokenize", {"tokens": [token]})
        return status == 200

    if not await valid(0):
        raise BenchError("/detokenize refused token 0: give --vocab-size or --model-config")
    lo, hi = 0, 1
    while await valid(hi):
        lo, hi = hi, hi * 2
        if hi > 1 << 24:
            raise BenchError("/detokenize accepts every id up to 2^24: give --vocab-size")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await valid(mid):
            lo = mid
        else:
            hi = mid
    return hi


async def tokenized_length(endpoint, text):
    status, obj = await call_json(endpoint, "POST", "/tokenize", {"prompt": text})
    if status != 200 or not isinstance(obj, dict) or "count" not in obj:
        raise BenchError("/tokenize answered HTTP %d: %s (text prompts need it)" % (status, error_text(obj)[:300]))
    return int(obj["count"])


async def fit_text(endpoint, rng, target):
    """Random words whose tokenization (as the server counts a text prompt) is the longest one of at
    most `target` tokens: the word count bisected against /tokenize."""
    words = []

    def text(n):
        while len(words) < n:
            words.append(rng.choice(WORDS))
        return " ".join(words[:n])

    lo, hi = 1, max(2, target)
    while await tokenized_length(endpoint, text(hi)) <= target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if await tokenized_length(endpoint, text(mid)) <= target:
            lo = mid
        else:
            hi = mid
    return text(lo)


async def make_prompts(endpoint, args, rng, n, vocab):
    """n (prompt, output_len) pairs: random token ids (default) or random words."""
    inputs = sample_lengths(rng, args.random_input_len, args.random_range_ratio, n)
    outputs = sample_lengths(rng, args.random_output_len, args.random_range_ratio, n)
    prompts = []
    for length in inputs:
        if args.prompt_type == "token-ids":
            prompts.append([rng.randrange(vocab) for _ in range(length)])
        else:
            prompts.append(await fit_text(endpoint, rng, length))
    return list(zip(prompts, outputs))


def request_body(args, model, prompt, output_len):
    body = {"model": model, "prompt": prompt, "max_tokens": output_len, "stream": True,
            "stream_options": {"include_usage": True}, "temperature": args.temperature}
    if args.top_p is not None:
        body["top_p"] = args.top_p
    if args.top_k is not None:
        body["top_k"] = args.top_k
    if args.ignore_eos:
        body["ignore_eos"] = True
    if args.return_token_ids:
        body["return_token_ids"] = True
    return json.dumps(body, separators=(",", ":")).encode()


# ---- metrics -------------------------------------------------------------------------------

def percentile(sorted_values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(name, values_s, out, extra_percentiles):
    values = sorted(v * 1000.0 for v in values_s)
    mean = sum(values) / len(values) if values else 0.0
    var = sum((v - mean) ** 2 for v in values) / len(values) if values else 0.0
    out["mean_%s_ms" % name] = mean
    out["median_%s_ms" % name] = percentile(values, 50)
    out["std_%s_ms" % name] = math.sqrt(var)
    for q in sorted(set(PERCENTILES + tuple(extra_percentiles))):
        out["p%s_%s_ms" % (("%g" % q).replace(".", "_"), name)] = percentile(values, q)


def peak_concurrency(results):
    events = []
    for r in results:
        events.append((r.start, 1))
        events.append((r.end, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)
    return peak


def level_metrics(results, duration, args):
    ok = [r for r in results if r.success]
    failed = [r for r in results if not r.success]
    out = {"completed": len(ok), "failed": len(failed), "duration": duration}
    total_in = sum(r.prompt_tokens for r in ok)
    total_out = sum(r.output_tokens for r in ok)
    out["total_input_tokens"] = total_in
    out["total_output_tokens"] = total_out
    out["request_throughput"] = len(ok) / duration if duration > 0 else 0.0
    out["output_throughput"] = total_out / duration if duration > 0 else 0.0
    out["total_token_throughput"] = (total_in + total_out) / duration if duration > 0 else 0.0
    out["max_concurrent_requests"] = peak_concurrency(results)
    summarize("ttft", [r.ttft for r in ok], out, args.metric_percentiles)
    summarize("tpot", [(r.latency - r.ttft) / (r.output_tokens - 1) for r in ok if r.output_tokens > 1], out,
              args.metric_percentiles)
    summarize("itl", [g for r in ok for g in r.itl], out, args.metric_percentiles)
    summarize("e2el", [r.latency for r in ok], out, args.metric_percentiles)
    errors = {}
    for r in failed:
        errors[r.error] = errors.get(r.error, 0) + 1
    out["errors"] = [{"count": c, "message": m} for m, c in sorted(errors.items(), key=lambda e: -e[1])]
    out["first_error"] = failed[0].error if failed else None  # in request order
    if args.save_detailed:
        out["input_lens"] = [r.prompt_tokens for r in results]
        out["output_lens"] = [r.output_tokens for r in results]
        out["ttfts"] = [r.ttft for r in results]
        out["itls"] = [r.itl for r in results]
        out["e2els"] = [r.latency for r in results]
        out["request_errors"] = [r.error for r in results]
    return out


# ---- the run -------------------------------------------------------------------------------

class Progress:
    """Completion counts on stderr, at most every `every` seconds and at the end."""

    def __init__(self, label, total, every=2.0):
        self.label, self.total, self.every = label, total, every
        self.done = self.failed = 0
        self.start = self.last = time.perf_counter()

    def add(self, res):
        self.done += 1
        self.failed += 0 if res.success else 1
        now = time.perf_counter()
        if now - self.last >= self.every or self.done == self.total:
            self.last = now
            sys.stderr.write("  %s: %d/%d done, %d failed, %.1f s\n" % (self.label, self.done, self.total,
                                                                       self.failed, now - self.start))
            sys.stderr.flush()


def arrival_gaps(rng, n, rate, burstiness):
    """Seconds before each request: 0 for an infinite rate, else gamma gaps of mean 1/rate (shape
    `burstiness`; 1 is a Poisson process)."""
    if math.isinf(rate):
        return [0.0] * n
    theta = 1.0 / (rate * burstiness)
    return [0.0] + [rng.gammavariate(burstiness, theta) for _ in range(n - 1)]


async def run_level(endpoint, args, bodies, concurrency, gaps, label):
    """Sends every (body, output_len); at most `concurrency` at once (0: no limit)."""
    semaphore = asyncio.Semaphore(concurrency) if concurrency else None
    progress = Progress(label, len(bodies))

    async def one(body, output_len):
        if semaphore is None:
            res = await stream_request(endpoint, args.endpoint, body, output_len, args)
        else:
            async with semaphore:
                res = await stream_request(endpoint, args.endpoint, body, output_len, args)
        progress.add(res)
        return res

    cpu0 = time.process_time()
    start = time.perf_counter()
    tasks = []
    for (body, output_len), gap in zip(bodies, gaps):
        if gap > 0:
            await asyncio.sleep(gap)
        tasks.append(asyncio.ensure_future(one(body, output_len)))
    results = await asyncio.gather(*tasks)
    duration = time.perf_counter() - start
    return results, duration, time.process_time() - cpu0


def prompts_for_level(args, concurrency):
    if args.num_prompts is not None:
        return args.num_prompts
    n = int(math.ceil(args.prompts_per_concurrency * max(concurrency, 1)))
    n = max(n, args.min_prompts)
    if args.max_prompts:
        n = min(n, args.max_prompts)
    return n


def fmt_rate(x):
    return "-" if x is None else "{:,.0f}".format(x)


def print_level(label, m):
    w = 50
    print("{s:{c}^{n}}".format(s=" Serving Benchmark Result: %s " % label, n=w, c="="))
    rows = [("Successful requests:", m["completed"]), ("Failed requests:", m["failed"]),
            ("Maximum request concurrency:", m["max_concurrency"] or "unlimited"),
            ("Request rate (req/s):", m["request_rate"]),
            ("Benchmark duration (s):", "%.2f" % m["duration"]),
            ("Total input tokens:", m["total_input_tokens"]), ("Total generated tokens:", m["total_output_tokens"]),
            ("Request throughput (req/s):", "%.2f" % m["request_throughput"]),
            ("Output token throughput (tok/s):", "%.2f" % m["output_throughput"]),
            ("Total token throughput (tok/s):", "%.2f" % m["total_token_throughput"]),
            ("Peak concurrent requests:", m["max_concurrent_requests"])]
    for k, v in rows:
        print("{:<40} {:<10}".format(k, v))
    r = m.get("roofline")
    if r:
        print("{s:{c}^{n}}".format(s=" Roofline (output tok/s) ", n=w, c="-"))
        print("{:<40} {:<10}".format("Compute ceiling (%g TFLOP/s):" % r["gemm_tflops"],
                                     fmt_rate(r["compute_ceiling_output_tok_s"])))
        print("{:<40} {:<10}".format("Bandwidth ceiling (%g GB/s, B=%d):" % (r["copy_gbps"], r["batch"]),
                                     fmt_rate(r["bandwidth_ceiling_output_tok_s"])))
        print("{:<40} {:<10}".format("Achieved / roofline (%s-bound):" % r["bound"],
                                     "%.3g %%" % (100.0 * r["achieved_fraction"])))
    for name, title in (("ttft", "Time to First Token"), ("tpot", "Time per Output Token (excl. 1st token)"),
                        ("itl", "Inter-token Latency"), ("e2el", "End-to-end Latency")):
        print("{s:{c}^{n}}".format(s=" %s " % title, n=w, c="-"))
        for stat in ("mean", "median", "p90", "p99"):
            key = "%s_%s_ms" % (stat, name)
            print("{:<40} {:<10.2f}".format("%s %s (ms):" % (stat.capitalize() if stat[0] != "p" else stat.upper(),
                                                             name.upper()), m[key]))
    for e in m["errors"][:5]:
        print("  error x%d: %s" % (e["count"], e["message"]))
    print("=" * w)
    sys.stdout.flush()


def print_summary(levels):
    """One line per level; "roofline" is the bound's output tok/s with c (compute) or b (bandwidth)."""
    print("\n%-6s %6s %9s %9s %10s %6s %9s %9s %9s %9s %9s %9s" % (
        "C", "ok", "req/s", "out tok/s", "roofline", "roof%", "TTFTmed", "TTFTp99", "TPOTmed", "TPOTp99", "ITLp99",
        "E2Emed"))
    for m in levels:
        roof = m.get("roofline")
        print("%-6s %6s %9.2f %9.1f %10s %6s %9.1f %9.1f %9.2f %9.2f %9.2f %9.1f" % (
            m["max_concurrency"] or "inf", "%d/%d" % (m["completed"], m["completed"] + m["failed"]),
            m["request_throughput"], m["output_throughput"],
            fmt_rate(roof["roofline_output_tok_s"]) + roof["bound"][0] if roof else "-",
            "%.3g" % (100 * roof["achieved_fraction"]) if roof else "-",
            m["median_ttft_ms"], m["p99_ttft_ms"], m["median_tpot_ms"], m["p99_tpot_ms"], m["p99_itl_ms"],
            m["median_e2el_ms"]))
    sys.stdout.flush()


async def resolve_model(endpoint, args):
    """The served model's id (GET /v1/models) unless --model names one; fails clearly when the
    server is unreachable or not ready."""
    deadline = time.monotonic() + args.ready_check_timeout_sec
    while True:
        try:
            status, obj = await call_json(endpoint, "GET", "/v1/models", timeout=30)
            if status == 200:
                break
            problem = "GET /v1/models answered HTTP %d: %s" % (status, error_text(obj)[:300])
        except (BenchError, ConnectionError, OSError, asyncio.TimeoutError) as e:
            problem = str(e) or type(e).__name__
        if time.monotonic() >= deadline:
            raise BenchError(problem)
        await asyncio.sleep(1.0)
    if args.model:
        return args.model
    try:
        return obj["data"][0]["id"]
    except (KeyError, IndexError, TypeError):
        raise BenchError("GET /v1/models gave no model id: %s (give --model)" % json.dumps(obj)[:300])


async def main_async(args):
    endpoint = Endpoint(args.base_url or "http://%s:%d" % (args.host, args.port), args.api_key)
    shape = None
    if args.model_config:
        with open(args.model_config) as f:
            shape = serve_roofline.ModelShape(json.load(f))
    model = await resolve_model(endpoint, args)
    vocab = args.vocab_size
    if args.prompt_type == "token-ids" and not vocab:
        vocab = shape.vocab if shape else await probe_vocab(endpoint)
    sys.stderr.write("serve_bench: %s, model %s, %s prompts, input %d, output %d, range ratio %g\n" % (
        endpoint.base_url, model, args.prompt_type, args.random_input_len, args.random_output_len,
        args.random_range_ratio))

    # The endpoint and options, checked once on a short prompt (a refusal ends the run here).
    probe_prompt = [random.Random(args.seed).randrange(vocab) for _ in range(16)] if vocab else "Hello there"
    res = await stream_request(endpoint, args.endpoint, request_body(args, model, probe_prompt, 2), 2, args)
    if not res.success:
        raise BenchError("the initial test request failed: %s" % res.error)

    concurrencies = args.concurrency or [args.max_concurrency or 0]
    if args.num_warmups > 0:
        rng = random.Random("%s-warmup" % args.seed)
        pairs = await make_prompts(endpoint, args, rng, args.num_warmups, vocab)
        bodies = [(request_body(args, model, p, o), o) for p, o in pairs]
        top = max(concurrencies)
        sys.stderr.write("serve_bench: %d warm-up requests\n" % len(bodies))
        await run_level(endpoint, args, bodies, min(top, len(bodies)) if top else 0, [0.0] * len(bodies), "warm-up")

    levels = []
    for index, concurrency in enumerate(concurrencies):
        n = prompts_for_level(args, concurrency)
        rng = random.Random("%s-%d-%d" % (args.seed, index, concurrency))
        pairs = await make_prompts(endpoint, args, rng, n, vocab)
        bodies = [(request_body(args, model, p, o), o) for p, o in pairs]  # encoded before the clock starts
        gaps = arrival_gaps(rng, n, args.request_rate, args.burstiness)
        label = "C=%s" % (concurrency or "inf")
        sys.stderr.write("serve_bench: %s, %d prompts, request rate %s\n" % (label, n, args.request_rate))
        results, duration, cpu = await run_level(endpoint, args, bodies, concurrency, gaps, label)
        m = {"label": args.label, "max_concurrency": concurrency or None, "num_prompts": n,
             "request_rate": "inf" if math.isinf(args.request_rate) else args.request_rate,
             "burstiness": args.burstiness, "random_input_len": args.random_input_len,
             "random_output_len": args.random_output_len, "client_cpu_s": cpu}
        m.update(level_metrics(results, duration, args))
        if shape:
            pairs_done = [(r.prompt_tokens, r.output_tokens) for r in results if r.success]
            batch = min(concurrency, n) if concurrency else n
            roof = serve_roofline.workload_roofline(shape, pairs_done, batch, args.gemm_tflops, args.copy_gbps)
            if roof:
                out_tps = m["output_throughput"]
                roof["achieved_fraction"] = out_tps / roof["roofline_output_tok_s"]
                roof["achieved_fraction_compute"] = out_tps / roof["compute_ceiling_output_tok_s"]
                roof["achieved_fraction_bandwidth"] = out_tps / roof["bandwidth_ceiling_output_tok_s"]
            m["roofline"] = roof
        if m["failed"]:
            sys.stderr.write("serve_bench: %s: %d of %d requests failed; the first: %s\n" % (
                label, m["failed"], n, m["first_error"]))
        if duration > 0 and cpu / duration > 0.8:
            sys.stderr.write("serve_bench: warning: %s: this client was on the CPU %.0f %% of the level; its figures may"
                             " be bounded by the client, not the server\n" % (label, 100.0 * cpu / duration))
        if not args.summary_only:
            print_level(label, m)
        levels.append(m)
        write_result(args, endpoint, model, shape, levels)  # after every level: a killed sweep keeps what it measured
    print_summary(levels)
    failed = sum(m["failed"] for m in levels)
    return 1 if failed and not args.allow_failures else 0


def write_result(args, endpoint, model, shape, levels):
    doc = {"tool": "serve_bench", "format": 1, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "base_url": endpoint.base_url, "endpoint": args.endpoint, "model_id": model, "label": args.label,
           "metadata": dict(kv.split("=", 1) for kv in args.metadata),
           "args": {k: (v if not (isinstance(v, float) and math.isinf(v)) else "inf") for k, v in vars(args).items()
                    if k not in ("api_key",)},
           "model": shape.describe() if shape else None,
           "roofline_formulas": serve_roofline.FORMULAS if shape else None,
           "levels": levels}
    path = args.result_file
    if not path and args.save_result:
        name = args.result_filename or "%s-%s-%d-%d-%s.json" % (
            args.label or "serve", model.replace("/", "_"), args.random_input_len, args.random_output_len,
            time.strftime("%Y%m%d-%H%M%S"))
        path = os.path.join(args.result_dir or ".", name)
    if not path:
        return
    if not args.result_file:
        args.result_file = path  # one file for the whole sweep, named once
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(path + ".tmp", path)
    sys.stderr.write("serve_bench: %d level(s) in %s\n" % (len(levels), path))


def concurrency_list(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers, got %r" % text)
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("concurrency levels must be >= 1, got %r" % text)
    return values


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    s = p.add_argument_group("server")
    s.add_argument("--base-url", help="server URL, e.g. http://127.0.0.1:8000 (default: from --host/--port)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--endpoint", default="/v1/completions")
    s.add_argument("--model", help="model id sent in each request (default: the first of GET /v1/models)")
    s.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", ""), help="Bearer token (default $OPENAI_API_KEY)")
    s.add_argument("--ready-check-timeout-sec", type=float, default=0.0,
                   help="keep retrying GET /v1/models this long before giving up (default 0: one try)")
    s.add_argument("--request-timeout", type=float, default=1800.0, help="seconds one request may take (default 1800)")
    d = p.add_argument_group("dataset")
    d.add_argument("--dataset-name", default="random", choices=["random"])
    d.add_argument("--random-input-len", type=int, default=1024)
    d.add_argument("--random-output-len", type=int, default=128)
    d.add_argument("--random-range-ratio", type=float, default=0.0,
                   help="lengths uniform in [len*(1-r), len*(1+r)] (vLLM's; default 0: exact)")
    d.add_argument("--prompt-type", choices=["token-ids", "text"], default="token-ids",
                   help="token-ids: random ids sent as a token list (default); text: random words fitted to the"
                        " length with /tokenize")
    d.add_argument("--vocab-size", type=int, default=0,
                   help="random ids are drawn from [0, N) (default: --model-config's vocab_size, else the"
                        " tokenizer's, found with /detokenize)")
    d.add_argument("--seed", type=int, default=0)
    r = p.add_argument_group("load")
    r.add_argument("--num-prompts", type=int, help="requests per level (default: from --prompts-per-concurrency)")
    r.add_argument("--max-concurrency", type=int, help="one level with this many requests at most in flight")
    r.add_argument("--concurrency", type=concurrency_list, help="a sweep: one level per value, e.g. 1,8,32,64")
    r.add_argument("--prompts-per-concurrency", type=float, default=2.0,
                   help="without --num-prompts: requests per level = this x C (default 2)")
    r.add_argument("--min-prompts", type=int, default=8, help="floor of the requests per level (default 8)")
    r.add_argument("--max-prompts", type=int, default=0, help="cap of the requests per level (default 0: none)")
    r.add_argument("--request-rate", type=float, default=float("inf"),
                   help="requests per second, arrivals gamma-distributed (Poisson at burstiness 1); default inf")
    r.add_argument("--burstiness", type=float, default=1.0)
    r.add_argument("--num-warmups", "--warmup", type=int, default=0, help="warm-up requests before the first level")
    g = p.add_argument_group("sampling")
    g.add_argument("--ignore-eos", action="store_true", help="generate exactly the output length (checked)")
    g.add_argument("--temperature", type=float, default=0.0, help="default 0 (greedy)")
    g.add_argument("--top-p", type=float)
    g.add_argument("--top-k", type=int)
    g.add_argument("--no-return-token-ids", dest="return_token_ids", action="store_false",
                   help="do not ask for token ids per chunk (then a token that decodes to no text is not seen)")
    f = p.add_argument_group("roofline")
    f.add_argument("--model-config", help="the model's config.json: adds the roofline of each level")
    f.add_argument("--gemm-tflops", type=float, default=DEFAULT_GEMM_TFLOPS,
                   help="bf16 GEMM rate for the compute ceiling (default %g: H100, docs/benchmarks.md)" % DEFAULT_GEMM_TFLOPS)
    f.add_argument("--copy-gbps", type=float, default=DEFAULT_COPY_GBPS,
                   help="memory bandwidth for the bandwidth ceiling (default %g: H100 device copy)" % DEFAULT_COPY_GBPS)
    f.add_argument("--roofline-only", action="store_true",
                   help="print the model's parameters and one request's FLOPs and bytes as JSON; no server")
    o = p.add_argument_group("results")
    o.add_argument("--label", default="")
    o.add_argument("--metadata", nargs="*", default=[], metavar="KEY=VALUE")
    o.add_argument("--metric-percentiles", type=lambda t: [float(v) for v in t.split(",") if v.strip()], default=[],
                   help="more percentiles besides 50, 90, 99, e.g. 95,99.9")
    o.add_argument("--save-result", action="store_true")
    o.add_argument("--result-dir")
    o.add_argument("--result-filename")
    o.add_argument("--result-file", help="write the JSON here (implies --save-result)")
    o.add_argument("--save-detailed", action="store_true", help="per-request lengths, TTFTs and ITLs in the JSON")
    o.add_argument("--summary-only", action="store_true", help="print only the sweep's summary table on stdout")
    o.add_argument("--allow-failures", action="store_true", help="exit 0 even when some requests failed")
    args = p.parse_args(argv)
    if args.max_concurrency is not None and args.concurrency:
        p.error("give --max-concurrency or --concurrency, not both")
    if args.max_concurrency is not None and args.max_concurrency < 1:
        p.error("--max-concurrency must be >= 1")
    if not 0 <= args.random_range_ratio < 1:
        p.error("--random-range-ratio must be in [0, 1)")
    if args.random_input_len < 1 or args.random_output_len < 1:
        p.error("--random-input-len and --random-output-len must be >= 1")
    if args.request_rate <= 0 or args.burstiness <= 0:
        p.error("--request-rate and --burstiness must be > 0")
    if any("=" not in kv for kv in args.metadata):
        p.error("--metadata takes KEY=VALUE pairs")
    if args.roofline_only and not args.model_config:
        p.error("--roofline-only needs --model-config")
    return args


def roofline_only(args):
    with open(args.model_config) as f:
        shape = serve_roofline.ModelShape(json.load(f))
    i, o = args.random_input_len, args.random_output_len
    prefill_gemm = 2 * shape.body * i
    prefill_attention = shape.request_flops(i, 1) - prefill_gemm - 2 * shape.head
    json.dump({"model": shape.describe(), "input_len": i, "output_len": o,
               "request_flops": shape.request_flops(i, o), "request_kv_bytes": shape.request_kv_bytes(i, o),
               "prefill_gemm_flops": prefill_gemm, "prefill_attention_flops": prefill_attention,
               "formulas": serve_roofline.FORMULAS}, sys.stdout, indent=1)
    print()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.roofline_only:
        roofline_only(args)
        return 0
    try:
        return asyncio.run(main_async(args))
    except BenchError as e:
        sys.stderr.write("serve_bench: error: %s\n" % e)
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("serve_bench: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
