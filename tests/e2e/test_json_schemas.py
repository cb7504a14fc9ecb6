"""100 random bounded JSON schemas on the demo model (random weights: without the grammar it never
writes JSON): every answer to response_format json_schema must finish by itself ("stop", not
"length": a bounded schema has a finite language) and validate against its schema, checked by the
Python jsonschema package (an independent validator). The schemas mix nested objects, required and
optional properties, arrays with maxItems, enums, const, integers with minimum/maximum, strings with
maxLength or a pattern, booleans and null. The generator is seeded: the same 100 schemas every run.

    test_json_schemas.py --longbow EXE
"""

import json
import random
import sys
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import requests

from longbow_server import Checks, LongbowServer, parse_args

WORDS = ["red", "green", "blue", "north", "south", "x", "y", "zeta", "alpha", "beta"]
PATTERNS = ["^[a-z]{1,5}$", "^[0-9]{2,4}$", "^(yes|no)$", "^[A-Z][a-z]{0,3}$", "^id-[0-9]{1,3}$"]


def random_schema(rng, depth=0):
    kinds = ["string", "pattern", "integer", "enum", "const", "boolean", "null", "array"]
    if depth < 2:
        kinds += ["object", "object"]
    kind = rng.choice(kinds)
    if kind == "string":
        return {"type": "string", "maxLength": rng.randint(0, 8)}
    if kind == "pattern":
        return {"type": "string", "pattern": rng.choice(PATTERNS)}
    if kind == "integer":
        lo = rng.randint(-1000, 1000)
        return {"type": "integer", "minimum": lo, "maximum": lo + rng.randint(0, 5000)}
    if kind == "enum":
        return {"enum": rng.sample(WORDS, rng.randint(1, 4)) + ([rng.randint(0, 9)] if rng.random() < 0.3 else [])}
    if kind == "const":
        return {"const": rng.choice([rng.choice(WORDS), rng.randint(-50, 50), True, None])}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "null":
        return {"type": "null"}
    if kind == "array":
        lo = rng.randint(0, 2)
        return {"type": "array", "items": random_schema(rng, depth + 1), "minItems": lo,
                "maxItems": lo + rng.randint(0, 2)}
    names = rng.sample(["id", "name", "size", "tags", "kind", "meta", "ok", "count", "note"], rng.randint(1, 4))
    properties = {name: random_schema(rng, depth + 1) for name in names}
    required = [name for name in names if rng.random() < 0.6]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def main():
    args = parse_args(sys.argv[1:])
    rng = random.Random(20261207)
    schemas = [random_schema(rng, depth=1) if i % 4 else {"type": "object", "properties": {
        "a": random_schema(rng, 1), "b": random_schema(rng, 1)}, "required": ["a"], "additionalProperties": False}
        for i in range(100)]
    c = Checks()
    with LongbowServer(args.longbow, "--max-num-seqs", "16") as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]

        def ask(i):
            body = {"model": model, "prompt": "Answer in JSON:", "max_tokens": 2048, "temperature": 1.0, "seed": i,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "s%d" % i,
                                                                               "schema": schemas[i]}}}
            return requests.post(server.url + "/v1/completions", json=body, timeout=600)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(len(schemas))))
        valid = 0
        for i, r in enumerate(answers):
            what = "schema %d %s" % (i, json.dumps(schemas[i])[:200])
            if r.status_code != 200:
                c.check(False, "%s: status %d %s" % (what, r.status_code, r.text[:200]))
                continue
            choice = r.json()["choices"][0]
            try:
                value = json.loads(choice["text"])
                jsonschema.validate(value, schemas[i])
                ok = choice["finish_reason"] == "stop"
            except (ValueError, jsonschema.ValidationError) as e:
                ok = False
                what += ": %s" % str(e)[:200]
            c.check(ok, "%s -> %r (%s)" % (what, choice["text"][:200], choice["finish_reason"]))
            valid += ok
        print("%d of %d random schemas answered with valid JSON that finished by itself" % (valid, len(schemas)))
    c.finish()


if __name__ == "__main__":
    main()
