"""256 concurrent streaming requests complete without error; /metrics returns to idle.

Every client reads its first event, then waits until all 256 have theirs before reading on: so 256
streams are open at once whatever the machine's speed (a sampled "peak running" gauge is printed for
information only, since a fast machine can finish requests between samples).
"""

import concurrent.futures
import http.client
import json
import sys
import threading
import time

from longbow_server import Checks, LongbowServer, parse_args

CONCURRENCY = 256


def stream_one(port, model, i, barrier, opened):
    try:
        return stream_one_unguarded(port, model, i, barrier, opened)
    except Exception as e:  # noqa: BLE001 (reported as this stream's failure)
        barrier.abort()
        opened.abort()
        return "exception: %r" % e


def stream_one_unguarded(port, model, i, barrier, opened):
    chat = i % 2 == 1
    body = {"model": model, "max_tokens": 8, "stream": True, "stream_options": {"include_usage": True},
            "temperature": 0.7, "seed": i}
    if chat:
        body["messages"] = [{"role": "user", "content": "Request number %d, tell me something." % i}]
    else:
        body["prompt"] = "Request number %d:" % i
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    barrier.wait()
    conn.request("POST", "/v1/chat/completions" if chat else "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        opened.abort()  # the others stop waiting for this one
        return "status %d: %s" % (r.status, r.read()[:200])
    first = b""
    while not first.endswith(b"\n\n"):
        line = r.readline()
        if not line:
            opened.abort()
            return "stream ended before its first event"
        first += line
    try:
        opened.wait(timeout=240)
    except threading.BrokenBarrierError:
        return "not every stream got its first event"
    raw = (first + r.read()).decode()
    conn.close()
    events = [e[len("data: "):] for e in raw.split("\n\n") if e]
    if events[-1] != "[DONE]":
        return "no [DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    if any("error" in ch for ch in chunks):
        return "error event"
    finishes = [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"] and ch["choices"][0]["finish_reason"]]
    if len(finishes) != 1:
        return "expected one finish chunk, got %d" % len(finishes)
    usage = chunks[-1].get("usage")
    if not usage or not 1 <= usage["completion_tokens"] <= 8:
        return "bad usage %s" % usage
    return None


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    with LongbowServer(args.longbow) as server:
        model = json.loads(__import__("requests").get(server.url + "/v1/models").text)["data"][0]["id"]
        before = server.metrics()
        barrier = threading.Barrier(CONCURRENCY)
        opened = threading.Barrier(CONCURRENCY)
        start = time.time()
        peak = {"running": 0}
        stop = threading.Event()

        def watch():
            while not stop.is_set():
                m = server.metrics()
                peak["running"] = max(peak["running"], m["longbow_num_requests_running"])
                time.sleep(0.05)
        watcher = threading.Thread(target=watch)
        watcher.start()
        with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
            results = list(pool.map(lambda i: stream_one(server.http_port, model, i, barrier, opened), range(CONCURRENCY)))
        stop.set()
        watcher.join()
        elapsed = time.time() - start
        errors = [(i, r) for i, r in enumerate(results) if r]
        c.check(not errors, "%d streams failed: %s" % (len(errors), errors[:5]))
        print("%d streams in %.1f s, peak running %d" % (CONCURRENCY, elapsed, peak["running"]))
        after = server.wait_idle(timeout=30)
        c.equal(after["longbow_request_failure_total"] - before["longbow_request_failure_total"], 0, "no failures")
        c.equal(after["longbow_request_rejected_total"] - before["longbow_request_rejected_total"], 0, "no rejections")
        finished = sum(v for k, v in after.items() if k.startswith("longbow_request_success_total"))
        c.check(finished >= CONCURRENCY, "all requests counted finished (%d)" % finished)
    c.finish()


if __name__ == "__main__":
    main()
