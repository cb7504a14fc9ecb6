"""Every REST error has its status and an OpenAI-shaped body; 200+ hostile bodies leave the server serving."""

import json
import random
import socket
import sys

import requests

from longbow_server import Checks, LongbowServer, parse_args

KEY = "sk-e2e-secret"
AUTH = {"Authorization": "Bearer " + KEY}


def is_error_body(r):
    try:
        body = r.json()
    except ValueError:
        return False
    e = body.get("error") if isinstance(body, dict) else None
    return isinstance(e, dict) and set(e.keys()) == {"message", "type", "param", "code"} and isinstance(
        e["message"], str) and isinstance(e["type"], str)


def expect(c, r, status, what, param=None, code=None):
    c.equal(r.status_code, status, what + ": status")
    c.check(is_error_body(r), what + ": OpenAI error body (%s)" % r.text[:200])
    if is_error_body(r):
        if param is not None:
            c.equal(r.json()["error"]["param"], param, what + ": param")
        if code is not None:
            c.equal(r.json()["error"]["code"], code, what + ": code")


def hostile_bodies(model):
    """200+ malformed or hostile request bodies (bytes), deterministic."""
    rng = random.Random(7)
    good = json.dumps({"model": model, "prompt": "Hello there", "max_tokens": 3}).encode()
    bodies = [good[:i] for i in range(0, len(good), max(1, len(good) // 40))]  # truncated JSON
    values = [None, True, -1, 0, 2 ** 63, -(2 ** 63) - 1, 1e308, -1e308, 1.5, "x", "", [], {}, [1, "a"], [[]],
              [-5], [2 ** 40], "\ud800", {"a": 1}, 10 ** 30, "NaN"]
    fields = ["prompt", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream", "logprobs", "top_k",
              "min_p", "logit_bias", "stream_options", "model", "echo", "best_of", "min_tokens", "stop_token_ids",
              "repetition_penalty", "presence_penalty"]
    for field in fields:
        for value in rng.sample(values, 8):
            body = {"model": model, "prompt": "Hello", "max_tokens": 3}
            body[field] = value
            bodies.append(json.dumps(body).encode())
    bodies += [b"\xff\xfe\xfd", b'{"model": "\xc3\x28", "prompt": "a"}', b'{"prompt": "\xed\xa0\x80"}',
               b"[" * 100000, b'{"a":' * 5000, b"null", b"42", b'"string"', b"{}", b'{"prompt": null}',
               b'{"prompt": 1e999}', b'{"max_tokens": -5, "prompt": "a"}', b'{"prompt": "a", "max_tokens": 1e999}',
               b'{"messages": "nope"}', b"\x00" * 64, b'{"prompt": "a"' + b" " * 10000]
    return bodies


def check_overload(c, exe):
    """429 + Retry-After: one running sequence and one waiting slot are taken by two streams that cannot
    end by themselves (each asks for 50,000 tokens, unread, until its client hangs up), so a third
    request is refused whatever the machine's speed."""
    with LongbowServer(exe, "--api-key", KEY, "--max-waiting-requests", "1", "--max-num-seqs", "1") as server:
        model = requests.get(server.url + "/v1/models", headers=AUTH).json()["data"][0]["id"]
        body = {"model": model, "prompt": "Hi", "max_tokens": 50000, "ignore_eos": True}

        def hold():
            s = socket.create_connection(("127.0.0.1", server.http_port), timeout=30)
            data = json.dumps(dict(body, stream=True)).encode()
            s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (KEY, len(data))).encode()
                      + data)
            return s
        running = hold()
        c.check(server.wait_metric(lambda m: m["longbow_num_requests_running"] >= 1), "blocker running")
        waiting = hold()
        c.check(server.wait_metric(lambda m: m["longbow_num_requests_waiting"] >= 1), "second request waiting")
        r = requests.post(server.url + "/v1/completions", json=body, headers=AUTH)
        expect(c, r, 429, "overloaded", code="rate_limit_exceeded")
        c.check(r.headers.get("Retry-After", "").isdigit(), "Retry-After on 429")
        running.close()
        waiting.close()
        server.wait_idle()


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    limits = ["--api-key", KEY, "--max-model-len", "128", "--max-body-mib", "1", "--max-waiting-requests", "1",
              "--max-num-seqs", "1"]
    with LongbowServer(args.longbow, *limits) as server:
        url = server.url
        model = requests.get(url + "/v1/models", headers=AUTH).json()["data"][0]["id"]
        ok = {"model": model, "prompt": "Hello", "max_tokens": 2}

        # 401: missing, wrong, malformed key; probes stay open.
        expect(c, requests.post(url + "/v1/completions", json=ok), 401, "no key", code="invalid_api_key")
        expect(c, requests.post(url + "/v1/completions", json=ok, headers={"Authorization": "Bearer nope"}), 401,
               "wrong key")
        expect(c, requests.post(url + "/v1/completions", json=ok, headers={"Authorization": KEY}), 401, "no Bearer")
        expect(c, requests.get(url + "/v1/models"), 401, "models need the key")
        c.equal(requests.get(url + "/health").status_code, 200, "health needs no key")
        c.equal(requests.get(url + "/metrics").status_code, 200, "metrics need no key")
        c.equal(requests.post(url + "/v1/completions", json=ok, headers=AUTH).status_code, 200, "right key")

        # 400s naming the parameter.
        post = lambda body, path="/v1/completions": requests.post(url + path, data=body, headers=dict(
            AUTH, **{"Content-Type": "application/json"}))
        expect(c, post(b'{"model": "x", "prompt": '), 400, "truncated JSON")
        expect(c, post(json.dumps(dict(ok, max_tokens=-1))), 400, "negative max_tokens", param="max_tokens")
        expect(c, post(json.dumps(dict(ok, temperature="hot"))), 400, "temperature type", param="temperature")
        expect(c, post(json.dumps(dict(ok, top_p=7))), 400, "top_p range", param="top_p")
        expect(c, post(json.dumps(dict(ok, n=0))), 400, "n range", param="n")
        expect(c, post(json.dumps(dict(ok, stop=[1, 2]))), 400, "stop type", param="stop")
        expect(c, post(json.dumps(dict(ok, prompt=[1, -3]))), 400, "negative token id", param="prompt")
        expect(c, post(json.dumps(dict(ok, prompt=[10 ** 8]))), 400, "token outside the vocabulary", param="prompt")
        expect(c, post(json.dumps({"model": model, "max_tokens": 2})), 400, "missing prompt", param="prompt")
        expect(c, post(json.dumps({"model": model, "messages": []}), "/v1/chat/completions"), 400, "empty messages",
               param="messages")
        expect(c, post(json.dumps({"model": model, "messages": [{"role": "wizard", "content": "x"}]}),
                       "/v1/chat/completions"), 400, "bad role", param="messages[0].role")
        # 400 context_length_exceeded: the server's context is 128 tokens.
        expect(c, post(json.dumps(dict(ok, prompt="word " * 400))), 400, "prompt too long",
               code="context_length_exceeded")
        expect(c, post(json.dumps(dict(ok, max_tokens=1000))), 400, "prompt + max_tokens too long",
               code="context_length_exceeded")
        # 404 unknown model.
        expect(c, post(json.dumps(dict(ok, model="gpt-nope"))), 404, "unknown model", param="model",
               code="model_not_found")
        expect(c, requests.get(url + "/no/such/route"), 404, "unknown route")
        # 413 oversized body (limit 1 MiB).
        expect(c, post(json.dumps(dict(ok, prompt="a" * (2 << 20)))), 413, "oversized body")

        # Hostile bodies: each gets a 4xx with an OpenAI body; the server keeps serving.
        bodies = hostile_bodies(model)
        c.check(len(bodies) >= 200, "at least 200 hostile bodies (%d)" % len(bodies))
        statuses = {}
        bad = []
        for i, body in enumerate(bodies):
            for path in ("/v1/completions", "/v1/chat/completions"):
                r = post(body, path)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code >= 500 or (r.status_code != 200 and not is_error_body(r)):
                    bad.append((i, path, r.status_code, r.text[:120]))
        c.check(not bad, "hostile bodies answered with 4xx + error body (bad: %s)" % bad[:5])
        print("hostile-body statuses:", statuses)
        # Raw garbage on the socket, too.
        for junk in (b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                     b"\x16\x03\x01\x02\x00\x01\x00"):
            with socket.create_connection(("127.0.0.1", server.http_port), timeout=5) as s:
                s.sendall(junk)
                try:
                    s.recv(4096)
                except OSError:
                    pass
        c.equal(requests.post(url + "/v1/completions", json=ok, headers=AUTH).status_code, 200, "still serving")
        c.check(server.proc.poll() is None, "process alive")
        server.wait_idle()
    check_overload(c, args.longbow)
    c.finish()


if __name__ == "__main__":
    main()
