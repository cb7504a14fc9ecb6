"""Client disconnects cancel requests (streaming and not); SIGTERM drains and exits 0; --config and flags."""

import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time

import requests

from longbow_server import Checks, LongbowServer, parse_args
from test_grpc import generate_stubs


def raw_post(port, path, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    data = json.dumps(body).encode()
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (path, len(data))).encode() + data)
    return s


def wait_metric(server, predicate, timeout=60):
    """Polls /metrics until predicate(metrics) holds; the timeout is a liveness bound, not a speed guess."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate(server.metrics()):
            return True
        time.sleep(0.02)
    return False


def wait_running(server):
    return wait_metric(server, lambda m: m["longbow_num_requests_running"] >= 1 and
                       m["longbow_kv_cache_pages_used"] >= 1)


def main():
    args = parse_args(sys.argv[1:])
    generate_stubs(args.source_dir)
    global grpc, health_pb2, health_pb2_grpc, pb, pb_grpc
    import grpc
    import health_pb2, health_pb2_grpc  # noqa: E401
    from proto import longbow_pb2 as pb, longbow_pb2_grpc as pb_grpc
    c = Checks()
    # One sequence at a time: the SIGTERM check below queues a request behind a running one.
    with LongbowServer(args.longbow, "--max-num-seqs", "1", "--drain-timeout", "120") as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
        endless = {"model": model, "prompt": "Once upon a time", "max_tokens": 50000, "ignore_eos": True}

        # Non-streaming: the client hangs up while its request generates.
        s = raw_post(server.http_port, "/v1/completions", endless)
        c.check(wait_running(server), "non-streaming request running")
        s.close()
        t0 = time.time()
        m = server.wait_idle(timeout=10)
        c.check(time.time() - t0 < 5, "non-streaming disconnect cancelled promptly")
        c.check(m["longbow_request_failure_total"] >= 1, "cancel counted")

        # Streaming: read a few events, then hang up.
        s = raw_post(server.http_port, "/v1/chat/completions",
                     {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50000,
                      "ignore_eos": True, "stream": True})
        received = b""
        while received.count(b"data: ") < 4:
            received += s.recv(4096)
        c.check(received.startswith(b"HTTP/1.1 200"), "stream started")
        s.close()
        t0 = time.time()
        server.wait_idle(timeout=10)
        c.check(time.time() - t0 < 5, "streaming disconnect cancelled promptly")

        # SIGTERM while requests are in flight: readiness off, new requests 503, in-flight requests finish,
        # exit 0. Nothing here depends on how fast the model runs: a blocker stream generates until its
        # client hangs up, and a short stream waits behind it (--max-num-seqs 1), so the drain lasts as
        # long as the checks need; then the blocker hangs up and the short stream runs to its length.
        result = {}

        def run_stream():
            r = requests.post(server.url + "/v1/completions", json=dict(endless, max_tokens=20, stream=True),
                              stream=True, timeout=120)
            result["status"] = r.status_code
            result["body"] = r.text
        blocker = raw_post(server.http_port, "/v1/completions", dict(endless, stream=True))
        c.check(wait_running(server), "blocker stream running before SIGTERM")
        t = threading.Thread(target=run_stream)
        t.start()
        c.check(wait_metric(server, lambda m: m["longbow_num_requests_waiting"] >= 1),
                "short stream waiting behind the blocker")
        server.terminate(signal.SIGTERM)
        deadline = time.time() + 60
        health = None
        while time.time() < deadline:
            health = requests.get(server.url + "/health").status_code
            if health == 503:
                break
            time.sleep(0.01)
        c.equal(health, 503, "health 503 while draining")
        # gRPC agrees: NOT_SERVING, and new calls are UNAVAILABLE.
        channel = grpc.insecure_channel(server.grpc_target)
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
            c.equal(status, health_pb2.HealthCheckResponse.NOT_SERVING, "gRPC health while draining")
            request = pb.GenerateRequest(model=model, text="x")
            request.stop.max_tokens = 2
            list(pb_grpc.LongbowStub(channel).Generate(request, timeout=5))
            c.check(False, "gRPC Generate while draining must fail")
        except grpc.RpcError as e:
            c.equal(e.code(), grpc.StatusCode.UNAVAILABLE, "gRPC Generate while draining")
        channel.close()
        r = requests.post(server.url + "/v1/completions", json=dict(endless, max_tokens=2))
        c.equal(r.status_code, 503, "new request refused while draining")
        c.check("error" in r.json() and r.headers.get("Retry-After"), "503 carries an error body and Retry-After")
        blocker.close()  # its request is cancelled; the short stream starts
        t.join(timeout=120)
        c.equal(result.get("status"), 200, "in-flight stream status")
        body = result.get("body", "")
        c.check(body.endswith("data: [DONE]\n\n") and '"finish_reason":"length"' in body,
                "in-flight stream completed during the drain")
        c.equal(server.wait_exit(timeout=60), 0, "exit status after SIGTERM")

    # --config FILE sets values; flags override them.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"served_model_name": "from-config", "max_model_len": 64, "drain_timeout": 5}, f)
        config_path = f.name
    try:
        with LongbowServer(args.longbow, "--config", config_path, "--max-model-len", "96") as server:
            card = requests.get(server.url + "/v1/models").json()["data"][0]
            c.equal(card["id"], "from-config", "served_model_name from the config file")
            c.equal(card["max_model_len"], 96, "flag overrides the config file")
            c.check(any("effective config" in line for line in server.lines), "effective config logged")
    finally:
        os.unlink(config_path)

    # A bad config key is a usage error (exit 2) naming the key.
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"no_such_key": 1}, f)
        bad_path = f.name
    try:
        import subprocess
        p = subprocess.run([args.longbow, "serve", "--config", bad_path], capture_output=True, text=True, timeout=30)
        c.equal(p.returncode, 2, "unknown config key exit status")
        c.check("no_such_key" in p.stderr, "unknown config key named")
    finally:
        os.unlink(bad_path)
    c.finish()


if __name__ == "__main__":
    main()
