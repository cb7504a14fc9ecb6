"""REST API behaviour with curl and requests: responses, SSE byte layout, extensions, utility routes."""

import json
import subprocess
import sys

import requests

from longbow_server import Checks, LongbowServer, parse_args


def sse_events(raw):
    """Splits an SSE body into data payloads, checking the exact framing: `data: X\\n\\n` only."""
    assert raw.endswith("\n\n"), "stream does not end with a blank line"
    blocks = raw[:-2].split("\n\n")
    payloads = []
    for block in blocks:
        assert block.startswith("data: "), "event without 'data: ': %r" % block[:80]
        assert "\n" not in block, "multi-line event: %r" % block[:80]
        payloads.append(block[len("data: "):])
    return payloads


def curl_stream(url, body):
    # Accept-Encoding as browsers and fetch send it: a compressed SSE body would arrive all at the end.
    out = subprocess.run(["curl", "-sS", "-N", "-D", "-", "-X", "POST", url, "-H", "Content-Type: application/json",
                          "-H", "Accept-Encoding: gzip, deflate, br",
                          "-d", json.dumps(body)], capture_output=True, timeout=120, check=True).stdout
    head, _, payload = out.partition(b"\r\n\r\n")  # bytes: text mode would rewrite the CRLFs
    return head.decode(), payload.decode()


def check_chat_sse(c, server, model):
    head, raw = curl_stream(server.url + "/v1/chat/completions", {
        "model": model, "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 6,
        "temperature": 0, "stream": True, "stream_options": {"include_usage": True}})
    c.check("content-type: text/event-stream" in head.lower(), "chat SSE content type (%s)" % head)
    c.check("content-encoding" not in head.lower(), "SSE is never compressed (%s)" % head)
    payloads = sse_events(raw)
    c.equal(payloads[-1], "[DONE]", "chat SSE ends with [DONE]")
    chunks = [json.loads(p) for p in payloads[:-1]]
    first, usage, finish = chunks[0], chunks[-1], chunks[-2]
    c.equal(list(first.keys()), ["id", "object", "created", "model", "choices"], "chunk key order")
    c.equal(list(first["choices"][0].keys()), ["index", "delta", "logprobs", "finish_reason"], "choice key order")
    c.equal(first["choices"][0]["delta"], {"role": "assistant", "content": ""}, "first delta carries the role")
    c.check(all(ch["id"] == first["id"] and ch["created"] == first["created"] for ch in chunks), "same id/created")
    c.check(all(ch["object"] == "chat.completion.chunk" for ch in chunks), "chunk object")
    c.check(first["id"].startswith("chatcmpl-"), "chat id prefix")
    for ch in chunks[1:-2]:
        c.check("role" not in ch["choices"][0]["delta"] and ch["choices"][0]["finish_reason"] is None,
                "middle chunks: content deltas without finish_reason")
        c.check(ch["choices"][0]["delta"].get("content", "") != "", "no empty content deltas")
    c.equal(finish["choices"][0]["delta"], {}, "finish chunk has an empty delta")
    c.check(finish["choices"][0]["finish_reason"] in ("stop", "length"), "finish_reason set")
    c.equal(usage["choices"], [], "usage chunk has no choices")
    u = usage["usage"]
    c.equal(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"], "usage totals")
    c.check(1 <= u["completion_tokens"] <= 6, "completion_tokens within max_tokens")
    return "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks[1:-1] if ch["choices"])


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    with LongbowServer(args.longbow) as server:
        url = server.url
        models = requests.get(url + "/v1/models").json()
        c.equal(models["object"], "list", "models object")
        model = models["data"][0]["id"]
        c.equal(set(models["data"][0].keys()) >= {"id", "object", "created", "owned_by"}, True, "model card fields")
        c.equal(requests.get(url + "/v1/models/" + model).json()["id"], model, "GET /v1/models/{id}")
        c.equal(requests.get(url + "/v1/models/nope").status_code, 404, "unknown model card")
        c.equal(requests.get(url + "/health").status_code, 200, "health ready")
        c.check("version" in requests.get(url + "/version").json(), "version")

        # Non-streaming chat, then the same request streamed: greedy, so the same text.
        body = {"model": model, "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 6,
                "temperature": 0}
        r = requests.post(url + "/v1/chat/completions", json=body)
        c.equal(r.status_code, 200, "chat status")
        chat = r.json()
        c.equal(chat["object"], "chat.completion", "chat object")
        c.equal(chat["choices"][0]["message"]["role"], "assistant", "chat role")
        c.check(r.headers.get("x-request-id") == chat["id"], "x-request-id header")
        streamed = check_chat_sse(c, server, model)
        c.equal(streamed, chat["choices"][0]["message"]["content"], "streamed chat text == non-streamed")

        # Completions: all four prompt shapes, n, return_token_ids, echo, logprobs.
        tok = requests.post(url + "/tokenize", json={"prompt": "Once upon a time"}).json()
        c.equal(tok["count"], len(tok["tokens"]), "tokenize count")
        detok = requests.post(url + "/detokenize", json={"tokens": tok["tokens"]}).json()
        c.equal(detok["prompt"], "Once upon a time", "detokenize round trip")
        base = {"model": model, "max_tokens": 5, "temperature": 0, "return_token_ids": True}
        as_text = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time")).json()
        as_ids = requests.post(url + "/v1/completions", json=dict(base, prompt=tok["tokens"])).json()
        c.equal(as_text["object"], "text_completion", "completion object")
        c.equal(as_ids["choices"][0]["token_ids"], as_text["choices"][0]["token_ids"],
                "token-id prompt == text prompt (BOS included by /tokenize)")
        c.equal(len(as_text["choices"][0]["token_ids"]), as_text["usage"]["completion_tokens"], "token_ids count")
        many = requests.post(url + "/v1/completions", json=dict(base, prompt=["Once upon a time", "The sea"], n=2)).json()
        c.equal([ch["index"] for ch in many["choices"]], [0, 1, 2, 3], "2 prompts x n=2 -> 4 dense choices")
        c.equal(many["choices"][0]["token_ids"], as_text["choices"][0]["token_ids"], "list prompt == single prompt")
        lists = requests.post(url + "/v1/completions", json=dict(base, prompt=[tok["tokens"], tok["tokens"]])).json()
        c.equal(len(lists["choices"]), 2, "list of token lists")
        c.equal(many["usage"]["prompt_tokens"], lists["usage"]["prompt_tokens"] // 2 * 1 +
                requests.post(url + "/tokenize", json={"prompt": "The sea"}).json()["count"], "usage summed over prompts")
        echo = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", echo=True)).json()
        c.check(echo["choices"][0]["text"].startswith("Once upon a time"), "echo")
        lp = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", logprobs=2)).json()
        lps = lp["choices"][0]["logprobs"]
        c.equal(len(lps["tokens"]), 5, "completion logprobs tokens")
        c.check(all(len(t) <= 2 for t in lps["top_logprobs"]), "top_logprobs bounded")
        # echo with logprobs scores the prompt too (OpenAI): its first token has no logprob.
        n_prompt = tok["count"]
        el = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", logprobs=2,
                                                              echo=True)).json()["choices"][0]["logprobs"]
        c.equal(len(el["tokens"]), n_prompt + 5, "echo logprobs: prompt + completion tokens")
        c.check(el["token_logprobs"][0] is None and el["top_logprobs"][0] is None, "echo: the first token has none")
        c.check(all(x <= 0 for x in el["token_logprobs"][1:]), "echo: prompt logprobs are log-probabilities")
        c.check(all(len(t) <= 2 for t in el["top_logprobs"][1:]), "echo: top_logprobs bounded")
        c.check(el["text_offset"][0] == 0 and el["text_offset"] == sorted(el["text_offset"]), "echo: text offsets")
        c.check(all(abs(a - b) < 1e-4 for a, b in zip(el["token_logprobs"][n_prompt:], lps["token_logprobs"])),
                "echo: the completion's logprobs are unchanged")
        # vLLM's prompt_logprobs: scoring prompt + [t1] gives t1 the logprob its generation had (a prefill
        # row against a decode step: two paths through the model).
        t1, l1 = as_ids["choices"][0]["token_ids"][0], lps["token_logprobs"][0]
        pl = requests.post(url + "/v1/completions", json=dict(base, prompt=tok["tokens"] + [t1], max_tokens=1,
                                                              prompt_logprobs=2)).json()["choices"][0]
        entries = pl["prompt_logprobs"]
        c.equal(len(entries), n_prompt + 1, "prompt_logprobs: one entry per prompt token")
        c.check(entries[0] is None, "prompt_logprobs: the first is null")
        last = entries[-1].get(str(t1), {})
        c.check(abs(last.get("logprob", 1.0) - l1) < 1e-3, f"prompt_logprobs == generation logprob ({last}, {l1})")
        c.check(all(1 <= len(e) <= 3 for e in entries[1:]), "prompt_logprobs: the token and its top 2")
        c.check(all(str(t) in e and e[str(t)]["rank"] >= 1 for t, e in zip(tok["tokens"][1:], entries[1:])),
                "prompt_logprobs: each entry holds its prompt token with a rank")
        chat_pl = requests.post(url + "/v1/chat/completions", json=dict(body, prompt_logprobs=0)).json()
        c.check(chat_pl.get("prompt_logprobs", [1])[0] is None and len(chat_pl["prompt_logprobs"]) > 1,
                "chat: prompt_logprobs at the top level")
        # Streamed: the echo chunk (with the prompt's logprobs) comes first; prompt_logprobs with the first token.
        r = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", logprobs=2, echo=True,
                                                             stream=True), stream=True)
        chunks = [json.loads(p) for p in sse_events(r.content.decode("utf-8"))[:-1]]
        first = chunks[0]["choices"][0] if chunks else {}
        c.equal(first.get("text"), "Once upon a time", "streamed echo: the prompt's text first")
        c.equal(len((first.get("logprobs") or {}).get("tokens", [])), n_prompt, "streamed echo: the prompt's tokens")
        c.equal(first.get("logprobs", {}).get("token_logprobs", [0])[1:], el["token_logprobs"][1:n_prompt],
                "streamed echo logprobs == non-streamed")
        c.equal("".join(ch["choices"][0]["text"] for ch in chunks if ch["choices"]), echo["choices"][0]["text"],
                "streamed echo text == non-streamed")
        r = requests.post(url + "/v1/completions", json=dict(base, prompt=tok["tokens"] + [t1], max_tokens=1,
                                                             prompt_logprobs=2, stream=True), stream=True)
        chunks = [json.loads(p) for p in sse_events(r.content.decode("utf-8"))[:-1]]
        streamed_pl = [ch["choices"][0]["prompt_logprobs"] for ch in chunks
                       if ch["choices"] and "prompt_logprobs" in ch["choices"][0]]
        c.equal(streamed_pl, [entries], "streamed prompt_logprobs: once, == non-streamed")
        r = requests.post(url + "/v1/completions", json=dict(base, prompt="Hi", prompt_logprobs=21))
        c.equal(r.status_code, 400, "prompt_logprobs above 20: 400")
        chat_lp = requests.post(url + "/v1/chat/completions", json=dict(body, logprobs=True, top_logprobs=3)).json()
        content = chat_lp["choices"][0]["logprobs"]["content"]
        c.check(len(content) >= 1 and len(content[0]["top_logprobs"]) == 3 and "bytes" in content[0], "chat logprobs")
        c.check(all(x["logprob"] <= 0 for x in content), "logprobs are log-probabilities")

        # Stop strings and sampling extensions.
        seeded = dict(base, prompt="Once upon a time", temperature=1.0, seed=1234, top_k=20, min_p=0.01,
                      repetition_penalty=1.1, max_tokens=8, ignore_eos=True, min_tokens=2)
        a = requests.post(url + "/v1/completions", json=seeded).json()
        b = requests.post(url + "/v1/completions", json=seeded).json()
        c.equal(a["choices"][0]["token_ids"], b["choices"][0]["token_ids"], "same seed, same tokens")
        c.equal(len(a["choices"][0]["token_ids"]), 8, "ignore_eos runs to max_tokens")
        full = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", max_tokens=12)).json()
        text = full["choices"][0]["text"]
        if len(text.strip()) >= 3:
            stop = text.strip()[1:3]
            stopped = requests.post(url + "/v1/completions",
                                    json=dict(base, prompt="Once upon a time", max_tokens=12, stop=[stop])).json()
            c.check(stop not in stopped["choices"][0]["text"], "stop string not in output")
            c.equal(stopped["choices"][0]["finish_reason"], "stop", "stop string finishes with stop")
            c.equal(stopped["choices"][0]["stop_reason"], stop, "stop_reason names the stop string")

        # Streamed completions with return_token_ids: the chunks' ids concatenate to the full list.
        r = requests.post(url + "/v1/completions", json=dict(base, prompt="Once upon a time", stream=True), stream=True)
        chunks = [json.loads(p) for p in sse_events(r.content.decode("utf-8"))[:-1]]  # SSE is UTF-8
        ids = [t for ch in chunks for t in ch["choices"][0]["token_ids"]]
        c.equal(ids, as_text["choices"][0]["token_ids"], "streamed token_ids == non-streamed")
        c.equal("".join(ch["choices"][0]["text"] for ch in chunks), as_text["choices"][0]["text"],
                "streamed text == non-streamed")
        c.check(all("usage" not in ch for ch in chunks), "no usage chunk without include_usage")

        # Metrics: Prometheus text with longbow_ names, back to idle.
        metrics = requests.get(url + "/metrics")
        c.check(metrics.headers["content-type"].startswith("text/plain"), "metrics content type")
        names = [l.split(" ")[2] for l in metrics.text.splitlines() if l.startswith("# TYPE")]
        c.check(names and all(n.startswith("longbow_") for n in names), "metric names prefixed longbow_")
        m = server.wait_idle()
        c.check(m["longbow_generation_tokens_total"] > 0, "generation tokens counted")
    c.finish()


if __name__ == "__main__":
    main()
