"""`longbow serve` answers completions for the MLA + MoE (deepseek_v3, deepseek_v32 with a DSA indexer) and
lightning-hybrid (minimax) architectures on the cpu backend: tiny configs with dummy weights and the demo model's
tokenizer (no transformers fixture for these yet), at one rank and, for each, sharded over two
(--tensor-parallel-size 2; --enable-expert-parallel for deepseek_v3)."""

import json
import os
import sys
import tempfile

import requests

from longbow_server import Checks, LongbowServer, parse_args

COMMON = {"vocab_size": 2000, "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2,
          "tie_word_embeddings": False, "rms_norm_eps": 1e-6, "hidden_act": "silu"}
DEEPSEEK = dict(COMMON, model_type="deepseek_v3", hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, n_shared_experts=1,
                n_routed_experts=8, routed_scaling_factor=2.5, kv_lora_rank=32, q_lora_rank=24, qk_rope_head_dim=8,
                v_head_dim=16, qk_nope_head_dim=16, n_group=4, topk_group=2, num_experts_per_tok=2,
                first_k_dense_replace=1, norm_topk_prob=True, rope_theta=10000, rope_interleave=True)
CONFIGS = {
    "deepseek_v3": DEEPSEEK,
    # index_topk 16 below the prompts' lengths: the sparse path selects.
    "deepseek_v32": dict(DEEPSEEK, model_type="deepseek_v32", index_n_heads=4, index_head_dim=32, index_topk=16),
    "minimax": dict(COMMON, model_type="minimax", hidden_size=48, intermediate_size=40, num_hidden_layers=4,
                    num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                    layer_types=["linear_attention", "linear_attention", "full_attention", "linear_attention"],
                    block_size=16, num_local_experts=4, num_experts_per_tok=2,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.5}),
}
PROMPT = "Tell me a long story about a lighthouse keeper and the sea, with many details about the weather"


def serve_and_complete(c, exe, config_path, tokenizer, name, extra):
    with LongbowServer(exe, "--model", config_path, "--load-format", "dummy", "--tokenizer", tokenizer,
                       "--backend", "cpu", *extra) as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
        r = requests.post(server.url + "/v1/completions", timeout=120,
                          json={"model": model, "prompt": PROMPT, "max_tokens": 12, "temperature": 0,
                                "ignore_eos": True})
        c.equal(r.status_code, 200, "%s %s: completion status (%s)" % (name, extra, r.text[:200]))
        if r.status_code == 200:
            body = r.json()
            c.equal(body["usage"]["completion_tokens"], 12, "%s %s: 12 tokens" % (name, extra))
        # Streamed twice at once: batched decode steps of two sequences.
        r = requests.post(server.url + "/v1/completions", timeout=120,
                          json={"model": model, "prompt": [PROMPT, "Short one"], "max_tokens": 6, "temperature": 0.7,
                                "seed": 3})
        c.equal(r.status_code, 200, "%s %s: two prompts (%s)" % (name, extra, r.text[:200]))
        server.wait_idle()


def main():
    args = parse_args(sys.argv[1:])
    c = Checks()
    tokenizer = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(args.longbow))), "demo-model")
    with tempfile.TemporaryDirectory() as tmp:
        for name, config in CONFIGS.items():
            path = os.path.join(tmp, name + ".config.json")
            with open(path, "w") as f:
                json.dump(config, f)
            serve_and_complete(c, args.longbow, path, tokenizer, name, [])
            serve_and_complete(c, args.longbow, path, tokenizer, name, ["--tensor-parallel-size", "2"])
        serve_and_complete(c, args.longbow, os.path.join(tmp, "deepseek_v3.config.json"), tokenizer, "deepseek_v3",
                           ["--tensor-parallel-size", "2", "--enable-expert-parallel"])
    c.finish()


if __name__ == "__main__":
    main()
