#!/usr/bin/env python3
"""Renders every template x conversation with Debian's python3-jinja2 in the environment
transformers' apply_chat_template uses (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks,
loopcontrols, tojson with ensure_ascii=False, raise_exception, strftime_now), writing goldens in the
same shape as make_hf_goldens.py's chat/<template>.json. A second oracle beside transformers:

    /usr/bin/python3 render_with_jinja2.py --templates TEMPLATES.json --conversations conversations.json --out DIR

TEMPLATES.json: {"name": {"source": ..., "bos_token": ..., "eos_token": ...}, ...}
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
    ap.add_argument("--templates", required=True)
    ap.add_argument("--conversations", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.templates, encoding="utf-8") as f:
        templates = json.load(f)
    with open(args.conversations, encoding="utf-8") as f:
        conversations = json.load(f)
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
