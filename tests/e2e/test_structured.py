"""Structured outputs over REST on the demo model (random weights: without the grammar it never writes
JSON): response_format json_schema / json_object, guided_json, guided_regex, guided_choice, and the
errors for unsupported schemas and conflicting fields."""

import json
import re
import sys

import requests

from longbow_server import Checks, LongbowServer, parse_args

SCHEMA = {"type": "object", "properties": {
    "zeta": {"type": "string", "maxLength": 6},
    "alpha": {"type": "integer", "minimum": -5, "maximum": 5},
    "mode": {"enum": ["fast", "slow"]},
    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{1,4}$"}, "maxItems": 2}},
    "required": ["zeta", "alpha", "mode"], "additionalProperties": False}


def valid(value):
    return (isinstance(value, dict) and set(value) <= {"zeta", "alpha", "mode", "tags"}
            and isinstance(value.get("zeta"), str) and len(value["zeta"]) <= 6
            and isinstance(value.get("alpha"), int) and -5 <= value["alpha"] <= 5
            and value.get("mode") in ("fast", "slow")
            and all(re.fullmatch("[a-z]{1,4}", t) for t in value.get("tags", [])) and len(value.get("tags", [])) <= 2)


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    with LongbowServer(args.longbow) as server:
        url = server.url
        model = requests.get(url + "/v1/models").json()["data"][0]["id"]
        for seed in range(4):
            body = {"model": model, "messages": [{"role": "user", "content": "Describe a task"}], "max_tokens": 200,
                    "temperature": 1.0, "seed": seed,
                    "response_format": {"type": "json_schema",
                                        "json_schema": {"name": "task", "schema": SCHEMA, "strict": True}}}
            r = requests.post(url + "/v1/chat/completions", json=body)
            c.equal(r.status_code, 200, "json_schema chat status (%s)" % r.text[:200])
            if r.status_code != 200:
                continue
            content = r.json()["choices"][0]["message"]["content"]
            c.check(content.startswith('{"zeta":'), "properties in schema order: %r" % content)
            try:
                value = json.loads(content)
            except ValueError:
                value = None
            c.check(valid(value), "json_schema output validates: %r" % content)
            c.equal(r.json()["choices"][0]["finish_reason"], "stop", "json_schema output ends with EOS")

        r = requests.post(url + "/v1/completions", json={
            "model": model, "prompt": "Once", "max_tokens": 100, "temperature": 1.0, "seed": 1,
            "guided_json": json.dumps({"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 3})})
        text = r.json()["choices"][0]["text"] if r.status_code == 200 else ""
        c.check(re.fullmatch(r"\[(true|false)(,(true|false)){0,2}\]", text) is not None, "guided_json (text): %r" % text)

        r = requests.post(url + "/v1/completions", json={
            "model": model, "prompt": "Once", "max_tokens": 20, "temperature": 1.0, "seed": 2,
            "guided_choice": ["red", "green", "blue"]})
        c.check(r.status_code == 200 and r.json()["choices"][0]["text"] in ("red", "green", "blue"),
                "guided_choice: %s" % r.text[:200])

        r = requests.post(url + "/v1/completions", json={
            "model": model, "prompt": "Once", "max_tokens": 30, "temperature": 1.0, "seed": 3,
            "guided_regex": r"[A-Z]{2}-\d{3}"})
        text = r.json()["choices"][0]["text"] if r.status_code == 200 else ""
        c.check(re.fullmatch(r"[A-Z]{2}-\d{3}", text) is not None, "guided_regex: %r" % text)

        r = requests.post(url + "/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
            "response_format": {"type": "json_object"}})
        c.equal(r.status_code, 200, "json_object accepted")
        c.check(r.json()["choices"][0]["message"]["content"].startswith("{"), "json_object output starts an object")

        r = requests.post(url + "/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "x"}], "max_tokens": 3,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
                "type": "string", "format": "date-time"}}}})
        c.check(400 <= r.status_code < 600 and "'format'" in r.text, "unsupported keyword named: %s %s"
                % (r.status_code, r.text[:200]))

        r = requests.post(url + "/v1/completions", json={
            "model": model, "prompt": "x", "max_tokens": 3, "guided_json": {"type": "string"}, "guided_regex": "a"})
        c.equal(r.status_code, 400, "conflicting guided fields")
        c.check("cannot be combined" in r.text, "conflict message: %s" % r.text[:200])
        server.wait_idle()
    c.finish()


if __name__ == "__main__":
    main()
