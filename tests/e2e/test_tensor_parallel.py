"""`longbow serve --tensor-parallel-size 2` with the demo model on the cpu backend: the same greedy and seeded
sampled completions as one rank, streamed and not, with logprobs, and 8 concurrent requests at once."""

import concurrent.futures
import sys

import requests

from longbow_server import Checks, LongbowServer, parse_args

REQUESTS = [
    {"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0, "logprobs": 2},
    {"prompt": "The capital of France is", "max_tokens": 12, "temperature": 0.8, "seed": 7},
    {"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 10, "temperature": 0},
]


def complete(url, model, body):
    path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
    r = requests.post(url + path, json=dict(body, model=model), timeout=120)
    r.raise_for_status()
    choice = r.json()["choices"][0]
    text = choice["message"]["content"] if "messages" in body else choice["text"]
    tokens = (choice.get("logprobs") or {}).get("tokens")
    return text, tokens


def run_all(server):
    model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
    return model, [complete(server.url, model, body) for body in REQUESTS]


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    with LongbowServer(args.longbow, "--backend", "cpu") as one:
        _, expected = run_all(one)
    with LongbowServer(args.longbow, "--backend", "cpu", "--tensor-parallel-size", "2") as two:
        c.check(any("rank 1 of 2" in line for line in two.lines), "the load log names rank 1 of 2")
        model, got = run_all(two)
        for i, (want, have) in enumerate(zip(expected, got)):
            c.equal(have, want, "request %d at TP 2 against TP 1" % i)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: complete(two.url, model, dict(REQUESTS[0], prompt="Request %d:" % i)),
                                    range(8)))
        c.equal(len([r for r in results if r[0]]), 8, "8 concurrent completions at TP 2")
        two.wait_idle()
    c.finish()


if __name__ == "__main__":
    main()
