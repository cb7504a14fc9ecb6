"""What operators and integrations rely on, on the demo model:

- a second server on a port in use fails to start with a clear error (no SO_REUSEPORT sharing), for
  the HTTP port and for the gRPC port;
- `longbow serve DIR` (the model as a positional argument, as `vllm serve DIR`); the model twice is
  an error;
- --backend auto says which backend it chose and why;
- /ping (GET and POST) answers like /health; a known path with the wrong method is 405 with Allow;
- an incoming X-Request-Id names the request (response id, x-request-id header); a malformed one is a 400;
- CORS with --allowed-origins: preflight 204 with the allowed methods, Access-Control-Allow-Origin on
  answers to allowed origins only; without the flag no CORS headers;
- every request field longbow does not serve is a 400 naming it; null fields count as absent;
- Prometheus samples carry model_name, and docs/grafana's dashboard asks only for series that exist.

    test_operations.py --longbow EXE --demo-model DIR
"""

import argparse
import json
import os
import re
import subprocess

import requests

from longbow_server import Checks, LongbowServer


def start_fails(longbow, args, timeout=120):
    """Runs `longbow serve ARGS` expecting it to exit non-zero; returns (code, stderr)."""
    p = subprocess.run([longbow, "serve", "--host", "127.0.0.1"] + args, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longbow", required=True)
    ap.add_argument("--demo-model", required=True, help="the demo model's directory (the build's demo-model/)")
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = ap.parse_args()
    c = Checks()
    model_dir = args.demo_model
    # The model as a positional argument (longbow serve DIR).
    with LongbowServer(args.longbow, model_dir, "--served-model-name", "positional") as server:
        url = server.url
        c.equal(requests.get(url + "/v1/models").json()["data"][0]["id"], "positional", "longbow serve DIR")
        c.check(any("backend auto:" in line for line in server.lines) or
                any("backend: cuda" in line.lower() for line in server.lines),
                "--backend auto says why it runs where it runs")

        # Ports in use: the second server refuses to start, naming the port.
        code, err = start_fails(args.longbow, ["--port", str(server.http_port), "--grpc-port", "0"])
        c.check(code != 0 and "cannot bind HTTP" in err and str(server.http_port) in err,
                "HTTP port in use: exit %d, %s" % (code, err[-300:]))
        code, err = start_fails(args.longbow, ["--port", "0", "--grpc-port", str(server.grpc_port)])
        c.check(code != 0 and "gRPC" in err and str(server.grpc_port) in err,
                "gRPC port in use: exit %d, %s" % (code, err[-300:]))
        c.check(any("sampling on the backend (--sampling auto)" in line for line in server.lines) or
                any("sampling on the host (--sampling auto)" in line for line in server.lines),
                "the log says where tokens are sampled")
        code, err = start_fails(args.longbow, [model_dir, "--sampling", "gpu", "--port", "0", "--grpc-port", "0"])
        c.check(code != 0 and "--sampling must be device, host or auto, got 'gpu'" in err,
                "--sampling with a bad value: exit %d, %s" % (code, err[-300:]))
        # The first server still answers everything.
        c.equal(requests.get(url + "/health").status_code, 200, "the first server still serves")

        # /ping and 405.
        c.equal(requests.get(url + "/ping").status_code, 200, "GET /ping")
        c.equal(requests.post(url + "/ping").status_code, 200, "POST /ping")
        r = requests.get(url + "/v1/chat/completions")
        c.check(r.status_code == 405 and "POST" in r.headers.get("Allow", "") and
                r.json()["error"]["code"] == "method_not_allowed", "GET on a POST route: 405 with Allow")
        c.equal(requests.delete(url + "/v1/models").status_code, 405, "DELETE /v1/models")
        c.equal(requests.get(url + "/v2/nothing").status_code, 404, "unknown path: 404")
        r = requests.options(url + "/v1/completions", headers={"Origin": "https://app.example"})
        c.check(r.status_code == 204 and "POST" in r.headers.get("Allow", ""), "OPTIONS: 204 with Allow")
        c.check("Access-Control-Allow-Origin" not in r.headers, "no CORS headers without --allowed-origins")

        # X-Request-Id.
        body = {"model": "positional", "prompt": "hello", "max_tokens": 2}
        r = requests.post(url + "/v1/completions", json=body, headers={"X-Request-Id": "trace-42.a:b"})
        c.check(r.status_code == 200 and r.json()["id"] == "cmpl-trace-42.a:b" and
                r.headers.get("x-request-id") == "cmpl-trace-42.a:b", "X-Request-Id names the request: %s"
                % r.text[:200])
        c.check(any("[cmpl-trace-42.a:b]" in line for line in server.lines), "the log names it too")
        r = requests.post(url + "/v1/completions", json=body, headers={"X-Request-Id": "bad id\twith space"})
        c.check(r.status_code == 400 and r.json()["error"]["param"] == "X-Request-Id", "a malformed X-Request-Id")

        # Unserved fields are refused by name; nulls are absent; user is accepted (logged).
        for endpoint, extra in [("/v1/completions", {"prompt": "x"}),
                                ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})]:
            for field, value in [("service_tier", "flex"), ("store", True),
                                 ("reasoning_effort", "high"), ("typo_temprature", 0.5)]:
                r = requests.post(url + endpoint, json=dict({"model": "positional", "max_tokens": 2, field: value},
                                                            **extra))
                c.check(r.status_code == 400 and r.json()["error"]["param"] == field and field in
                        r.json()["error"]["message"], "%s %s: 400 naming it, got %s %s" %
                        (endpoint, field, r.status_code, r.text[:160]))
            r = requests.post(url + endpoint, json=dict({"model": "positional", "max_tokens": 2, "store": None,
                                                         "user": "u-1"}, **extra))
            c.equal(r.status_code, 200, "%s: null fields are absent, user is accepted" % endpoint)
        c.check(any('user "u-1"' in line for line in server.lines), "user goes to the request log")

        # best_of: the n candidates with the highest total logprob (choice i of a seeded request is the
        # same sample whatever n, so n=4 shows every candidate best_of=4 chose from).
        base = {"model": "positional", "prompt": "Once upon a time", "max_tokens": 6, "seed": 11,
                "temperature": 1.0, "logprobs": 0}
        all4 = requests.post(url + "/v1/completions", json=dict(base, n=4)).json()["choices"]
        totals = sorted(((sum(ch["logprobs"]["token_logprobs"]), ch["text"]) for ch in all4), reverse=True)
        best = requests.post(url + "/v1/completions", json=dict(base, n=2, best_of=4)).json()
        c.equal([ch["text"] for ch in best["choices"]], [t for _, t in totals[:2]], "best_of 4, n 2: the two best")
        c.equal([ch["index"] for ch in best["choices"]], [0, 1], "best_of: indices 0..n-1")
        quiet = requests.post(url + "/v1/completions", json={k: v for k, v in dict(base, best_of=3).items()
                                                              if k != "logprobs"}).json()["choices"]
        c.check(len(quiet) == 1 and quiet[0]["logprobs"] is None, "best_of without logprobs returns none")
        r = requests.post(url + "/v1/completions", json=dict(base, best_of=3, stream=True))
        c.check(r.status_code == 400 and r.json()["error"]["param"] == "best_of", "best_of cannot stream")
        r = requests.post(url + "/v1/completions", json=dict(base, n=3, best_of=2))
        c.check(r.status_code == 400 and r.json()["error"]["param"] == "best_of", "best_of < n")

        # include_stop_str_in_output: the stop string ends the text.
        greedy = {"model": "positional", "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0}
        text = requests.post(url + "/v1/completions", json=greedy).json()["choices"][0]["text"]
        stop = text[3:6] if len(text) >= 6 else None
        if stop and stop.strip() and text.find(stop) == 3:
            cut = requests.post(url + "/v1/completions", json=dict(greedy, stop=[stop])).json()["choices"][0]
            kept = requests.post(url + "/v1/completions", json=dict(greedy, stop=[stop],
                                                                    include_stop_str_in_output=True)).json()["choices"][0]
            c.check(cut["text"] == text[:3] and kept["text"] == text[:6] and kept["stop_reason"] == stop,
                    "include_stop_str_in_output: %r / %r from %r" % (cut["text"], kept["text"], text))
        else:
            c.check(False, "the greedy demo text %r gives no stop string to test with" % text)

        # Metrics carry model_name.
        text = requests.get(url + "/metrics").text
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        c.check(samples and all('model_name="positional"' in line for line in samples),
                "every sample is labelled model_name: %s" % [s for s in samples if "model_name" not in s][:3])
        # The shipped Grafana dashboard asks only for series the server exports.
        with open(os.path.join(args.source_dir, "..", "..", "docs", "grafana", "longbow-dashboard.json")) as f:
            dashboard = json.load(f)
        exported = {line.split("{")[0].split(" ")[0] for line in samples}
        wanted = {name for panel in dashboard["panels"] for target in panel["targets"]
                  for name in re.findall(r"longbow_[a-z0-9_]+", target["expr"])}
        c.check(wanted and wanted <= exported, "the dashboard's series exist: missing %s" % sorted(wanted - exported))

    # The model given twice.
    code, err = start_fails(args.longbow, [model_dir, "--model", model_dir + "-other", "--port", "0",
                                           "--grpc-port", "0"])
    c.check(code == 2 and "given twice" in err, "the model twice: exit %d, %s" % (code, err[-200:]))

    # CORS.
    with LongbowServer(args.longbow, "--allowed-origins", "https://app.example, https://other.example") as server:
        url = server.url
        r = requests.options(url + "/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        c.check(r.status_code == 204 and r.headers.get("Access-Control-Allow-Origin") == "https://app.example" and
                "POST" in r.headers.get("Access-Control-Allow-Methods", "") and
                r.headers.get("Access-Control-Allow-Headers") == "authorization, content-type",
                "preflight from an allowed origin: %s %s" % (r.status_code, dict(r.headers)))
        model = requests.get(url + "/v1/models").json()["data"][0]["id"]
        r = requests.post(url + "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 2},
                          headers={"Origin": "https://other.example"})
        c.check(r.status_code == 200 and r.headers.get("Access-Control-Allow-Origin") == "https://other.example",
                "an answer to an allowed origin carries Access-Control-Allow-Origin")
        r = requests.get(url + "/health", headers={"Origin": "https://evil.example"})
        c.check("Access-Control-Allow-Origin" not in r.headers, "no CORS headers for an origin not allowed")
        with requests.post(url + "/v1/completions", json={"model": model, "prompt": "x", "max_tokens": 2,
                                                          "stream": True},
                           headers={"Origin": "https://app.example"}, stream=True) as r:
            c.equal(r.headers.get("Access-Control-Allow-Origin"), "https://app.example", "a stream carries it too")
            r.content
    c.finish()


if __name__ == "__main__":
    main()
