"""The attack suite: every scenario of the black-box security review (issue 19), each with its expected
outcome. Loopback only; bounded in count and time (each scenario runs for seconds, not minutes).

Scenarios (expected outcome in brackets):
  parsers    deep JSON in /v1/completions, chat messages, /tokenize [400, server alive];
             flat token-id prompt of 300 ids [200: one prompt];
             gRPC: 400k stop strings, 17 stop strings, 1025 stop ids, temperature 3 [INVALID_ARGUMENT, as REST]
  loader     deep JSON in config.json and in a safetensors header; heads = head_dim = 2^28;
             num_hidden_layers 1e9; 1e400 in config.json; a FIFO named model.safetensors
             [exit 1 within seconds, the message naming the file and the field; no signal]
  ports      a second server on the HTTP or the gRPC port of a running one [refused, exit 1]
  transport  (attack_transport.py) slowloris, idle flood, 1,500 streams, oversized and chunked bodies,
             gzip bodies, endless header lines, 100k headers, multi-range, connection cap, SIGTERM with
             a slow client [service maintained: /health within 1 s; RSS growth < 100 MB; bounded exit]
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import requests

from longbow_server import Checks, LongbowServer, parse_args

LOADER_TIMEOUT_S = 60  # a liveness bound: the loader must fail fast, never hang


def demo_model_dir(exe):
    return os.path.normpath(os.path.join(os.path.dirname(exe), "..", "demo-model"))


def serve_exit(exe, model_dir, timeout=LOADER_TIMEOUT_S):
    """Runs `longbow serve --model DIR`, expecting it to fail; returns (returncode, stderr)."""
    p = subprocess.run([exe, "serve", "--host", "127.0.0.1", "--port", "0", "--grpc-port", "0", "--model", model_dir],
                       capture_output=True, text=True, errors="replace", timeout=timeout)
    return p.returncode, p.stderr


def copy_model(src, dst):
    """A copy of the demo model whose files can be replaced one by one (weights are hard-linked)."""
    os.makedirs(dst)
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if name.endswith(".safetensors"):
            try:
                os.link(s, d)
                continue
            except OSError:
                pass
        shutil.copy(s, d)


def check_parsers(c, exe):
    deep = "[" * 100000 + "]" * 100000
    with LongbowServer(exe) as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
        url = server.url
        cases = [
            ("/v1/completions", '{"model": "%s", "prompt": [1, %s]}' % (model, deep)),
            ("/v1/completions", '{"model": "%s", "prompt": [[1, %s]]}' % (model, deep)),
            ("/v1/completions", '{"model": "%s", "prompt": "hi", "stop": %s}' % (model, deep)),
            ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": %s}]}' % (model, deep)),
            ("/v1/chat/completions", '{"model": "%s", "messages": %s}' % (model, "[" * 100000)),
            ("/tokenize", '{"prompt": %s}' % deep),
            ("/detokenize", '{"tokens": [1, %s]}' % deep),
        ]
        for path, body in cases:
            r = requests.post(url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
            c.equal(r.status_code, 400, "deep JSON to %s" % path)
            c.check(len(r.content) < 4096, "deep JSON error body is short (%d bytes)" % len(r.content))
        c.check(server.proc.poll() is None, "alive after deep JSON")

        # A flat list of token ids is one prompt, however long (the 256-prompt cap is for lists of prompts).
        r = requests.post(url + "/v1/completions", json={"model": model, "prompt": list(range(1, 301)), "max_tokens": 1})
        c.equal(r.status_code, 200, "300 token ids are one prompt")
        if r.status_code == 200:
            c.equal(len(r.json()["choices"]), 1, "one choice for a flat token-id prompt")
            c.equal(r.json()["usage"]["prompt_tokens"], 300, "prompt tokens of a flat token-id prompt")
        r = requests.post(url + "/v1/completions", json={"model": model, "prompt": [[1, 2]] * 257, "max_tokens": 1})
        c.equal(r.status_code, 400, "257 prompts are refused")

        # REST caps (the same values as gRPC's below).
        ok = {"model": model, "prompt": "hi", "max_tokens": 1}
        for field, value in (("stop", ["x%d" % i for i in range(17)]), ("stop", ["y" * 1025]),
                             ("stop_token_ids", list(range(1025))), ("temperature", 2.5),
                             ("logit_bias", {str(i): 1 for i in range(1025)})):
            r = requests.post(url + "/v1/completions", json=dict(ok, **{field: value}))
            c.equal(r.status_code, 400, "REST %s over its cap" % field)

        check_grpc_caps(c, server, model)
        c.check(server.proc.poll() is None, "alive after the parser attacks")
        server.wait_idle()


def check_grpc_caps(c, server, model):
    from test_grpc import generate_stubs
    generate_stubs(os.path.dirname(os.path.abspath(__file__)))
    import grpc
    from proto import longbow_pb2 as pb, longbow_pb2_grpc as pb_grpc
    channel = grpc.insecure_channel(server.grpc_target, options=[("grpc.max_send_message_length", 64 << 20)])
    stub = pb_grpc.LongbowStub(channel)

    def code_of(request):
        try:
            list(stub.Generate(request, timeout=60))
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    def request(**stop):
        r = pb.GenerateRequest(model=model, text="hi")
        r.stop.max_tokens = 2
        for k, v in stop.items():
            getattr(r.stop, k).extend(v)
        return r
    # 400k stop strings made a neighbour's 64-token request 90x slower; now refused before any work.
    t0 = time.time()
    c.equal(code_of(request(stop=["s%d" % i for i in range(400000)])), grpc.StatusCode.INVALID_ARGUMENT,
            "gRPC 400k stop strings")
    print("gRPC 400k stop strings refused in %.2f s" % (time.time() - t0))
    c.equal(code_of(request(stop=["s%d" % i for i in range(17)])), grpc.StatusCode.INVALID_ARGUMENT,
            "gRPC 17 stop strings (REST's cap is 16)")
    c.equal(code_of(request(stop=["z" * 1025])), grpc.StatusCode.INVALID_ARGUMENT, "gRPC stop string of 1025 bytes")
    c.equal(code_of(request(stop_token_ids=list(range(1025)))), grpc.StatusCode.INVALID_ARGUMENT,
            "gRPC 1025 stop token ids")
    c.equal(code_of(request(stop=["s%d" % i for i in range(16)])), grpc.StatusCode.OK, "gRPC 16 stop strings")
    hot = request()
    hot.sampling.temperature = 2.5
    c.equal(code_of(hot), grpc.StatusCode.INVALID_ARGUMENT, "gRPC temperature 2.5 (REST's cap is 2)")
    biased = request()
    for i in range(1025):
        biased.sampling.logit_bias[i] = 1.0
    c.equal(code_of(biased), grpc.StatusCode.INVALID_ARGUMENT, "gRPC 1025 logit_bias entries")
    channel.close()


def safetensors_file(path, header_text, data=b""):
    header = header_text.encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


def check_loader(c, exe):
    src = demo_model_dir(exe)
    with open(os.path.join(src, "config.json")) as f:
        base = json.load(f)
    work = tempfile.mkdtemp(prefix="longbow_attack_")
    try:
        def case(name, what, mutate, expect_in):
            d = os.path.join(work, name)
            copy_model(src, d)
            mutate(d)
            t0 = time.time()
            try:
                code, err = serve_exit(exe, d)
            except subprocess.TimeoutExpired:
                c.check(False, "%s: the loader hung for %d s" % (what, LOADER_TIMEOUT_S))
                return
            c.equal(code, 1, "%s: exit status (negative = killed by a signal)" % what)
            for text in expect_in:
                c.check(text in err, "%s: message names %r (%s)" % (what, text, err.strip().splitlines()[-1:]))
            print("%s: exit %d in %.1f s" % (what, code, time.time() - t0))

        def write_config(d, text):
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write(text)

        def with_fields(**fields):
            return lambda d: write_config(d, json.dumps(dict(base, **fields)))

        case("deep_config", "config.json nested 100k deep",
             lambda d: write_config(d, json.dumps(base)[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}"),
             ["config.json", "nested deeper than"])
        case("huge_heads", "heads = head_dim = 2^28",
             with_fields(num_attention_heads=1 << 28, num_key_value_heads=1 << 28, head_dim=1 << 28),
             ["num_attention_heads", "not a plausible value"])
        case("layers", "num_hidden_layers 1e9", with_fields(num_hidden_layers=1000000000),
             ["config.json", "num_hidden_layers"])
        case("layers_float", "num_hidden_layers 1e9 (a float)",
             lambda d: write_config(d, json.dumps(base)[:-1] + ', "num_hidden_layers": 1e9}'),
             ["config.json", "num_hidden_layers"])
        case("overflow", "1e400 in config.json",
             lambda d: write_config(d, json.dumps(base)[:-1] + ', "rope_theta": 1e400}'),
             ["config.json", "rope_theta"])

        def deep_header(d):
            os.unlink(os.path.join(d, "model.safetensors"))
            safetensors_file(os.path.join(d, "model.safetensors"),
                             '{"w": {"dtype": "F32", "shape": ' + "[" * 100000 + "]" * 100000 + ', "data_offsets": [0, 4]}}',
                             b"\0" * 4)
        if os.path.exists(os.path.join(src, "model.safetensors")):
            case("deep_header", "safetensors header nested 100k deep", deep_header,
                 ["model.safetensors", "nested deeper than"])

            def fifo(d):
                os.unlink(os.path.join(d, "model.safetensors"))
                os.mkfifo(os.path.join(d, "model.safetensors"))
            case("fifo", "a FIFO named model.safetensors", fifo, ["model.safetensors", "not a regular file"])
        else:
            c.check(False, "the demo model is one model.safetensors file")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_ports(c, exe):
    with LongbowServer(exe) as first:
        for flag, port in (("--port", first.http_port), ("--grpc-port", first.grpc_port)):
            other = "--grpc-port" if flag == "--port" else "--port"
            p = subprocess.Popen([exe, "serve", "--host", "127.0.0.1", flag, str(port), other, "0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
            try:
                _, err = p.communicate(timeout=LOADER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                _, err = p.communicate()
                c.check(False, "a second server on the %s of a running one kept running" % flag)
                continue
            c.equal(p.returncode, 1, "a second server on the same %s exits 1" % flag)
            c.check("cannot bind" in err, "the refusal says why (%s)" % err.strip().splitlines()[-1:])
        c.equal(requests.get(first.url + "/health").status_code, 200, "the first server still serves")


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    check_parsers(c, args.longbow)
    check_loader(c, args.longbow)
    check_ports(c, args.longbow)
    c.finish()


if __name__ == "__main__":
    main()
