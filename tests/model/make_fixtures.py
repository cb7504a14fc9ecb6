#!/usr/bin/env python3
"""Makes the transformers parity fixtures under tests/data/parity/ (run on the GPU machine).

For each family it builds a tiny random checkpoint with transformers itself, saves it in bf16, reloads the
saved weights in fp32 and records transformers' greedy continuation and logits, computed in fp32 with eager
attention and a full forward per step (no KV cache, so nothing but the model's math is involved):

  tests/data/parity/<name>/config.json, model.safetensors   as written by save_pretrained (bf16)
  tests/data/parity/<name>/expected.json                    {"cases": [{prompt_ids, generated_ids,
                                                              prompt_logits, final_logits, min_top2_margin}]}

prompt_logits are the logits after the prompt's last token (they pick generated_ids[0]); final_logits are the
logits of the step that picked the last generated token. EOS is ignored. min_top2_margin is the smallest gap
between the best and second-best logit over the greedy steps (a small gap means a near-tie).

Usage: python3 tests/model/make_fixtures.py OUT_DIR
"""
import json
import os
import sys

import torch
import transformers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

VOCAB = 320
NEW_TOKENS = 10
PROMPT_LENGTHS = [1, 13, 70]  # 70 > the mistral fixture's sliding window of 32

COMMON = dict(vocab_size=VOCAB, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, head_dim=64, max_position_embeddings=4096,
              rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, initializer_range=0.1)


def families():
    yield "llama", LlamaForCausalLM, LlamaConfig(
        **COMMON, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64})
    yield "qwen3", Qwen3ForCausalLM, Qwen3Config(
        **COMMON, tie_word_embeddings=True, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
    yield "mistral", MistralForCausalLM, MistralConfig(
        **COMMON, tie_word_embeddings=False, sliding_window=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    yield "qwen2", Qwen2ForCausalLM, Qwen2Config(
        **COMMON, tie_word_embeddings=False, use_sliding_window=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 1024})


def randomize(model, generator):
    """Default init leaves norms at 1 and biases at 0, which would hide a missing norm weight or bias."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(1.0 + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))


def greedy(model, prompt):
    ids = list(prompt)
    steps = []
    with torch.no_grad():
        for _ in range(NEW_TOKENS):
            logits = model(torch.tensor([ids])).logits[0, -1].double()
            steps.append(logits)
            ids.append(int(torch.argmax(logits)))
    margins = [float(torch.topk(l, 2).values[0] - torch.topk(l, 2).values[1]) for l in steps]
    return ids[len(prompt):], steps[0], steps[-1], min(margins)


def as_list(logits):
    return [float(f"{x:.9g}") for x in logits.tolist()]


def main():
    out_root = sys.argv[1]
    torch.manual_seed(0)
    for index, (name, cls, config) in enumerate(families()):
        generator = torch.Generator().manual_seed(1234 + index)
        torch.manual_seed(1234 + index)
        model = cls(config)
        randomize(model, generator)
        out_dir = os.path.join(out_root, name)
        model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
        reference = cls.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager").eval()
        cases = []
        for length in PROMPT_LENGTHS:
            prompt = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
            generated, prompt_logits, final_logits, margin = greedy(reference, prompt)
            cases.append({"prompt_ids": prompt, "generated_ids": generated, "prompt_logits": as_list(prompt_logits),
                          "final_logits": as_list(final_logits), "min_top2_margin": margin})
            print(f"{name}: prompt {length} -> {generated} (min top-2 margin {margin:.4f})")
        with open(os.path.join(out_dir, "expected.json"), "w") as f:
            json.dump({"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                       "dtype": "float32 compute on bf16-rounded weights", "attn_implementation": "eager",
                       "cases": cases}, f)
        for extra in ("generation_config.json",):
            path = os.path.join(out_dir, extra)
            if os.path.exists(path):
                os.remove(path)


if __name__ == "__main__":
    main()
