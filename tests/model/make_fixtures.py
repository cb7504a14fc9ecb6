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

The local/global families (gemma2, gemma3_text, modernbert-decoder) use odd head sizes (48, 256, 32), a sliding
window (24) shorter than the longest prompt, soft-caps small enough to bend the scores, and biases/norm weights
away from their identity values. minimax (lightning hybrid, MoE) uses a block size of 16, so the longest prompt
crosses several blocks. deepseek_v3 (MLA + DeepSeek MoE) uses YaRN and group-limited routing with a random
correction bias; deepseek_v32 adds an indexer whose top-16 is shorter than the longest prompt. Families are appended, never reordered: each one's seed is its index.

Usage: python3 tests/model/make_fixtures.py OUT_DIR [NAME,NAME,...]   (default: every family)
"""
import json
import os
import sys
import traceback

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
    """(name, make) in a fixed order; make() returns (model class, config), built only when its fixture is made."""
    yield "llama", lambda: (LlamaForCausalLM, LlamaConfig(
        **COMMON, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64}))
    yield "qwen3", lambda: (Qwen3ForCausalLM, Qwen3Config(
        **COMMON, tie_word_embeddings=True, attention_bias=False,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}))
    yield "mistral", lambda: (MistralForCausalLM, MistralConfig(
        **COMMON, tie_word_embeddings=False, sliding_window=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0}))
    yield "qwen2", lambda: (Qwen2ForCausalLM, Qwen2Config(
        **COMMON, tie_word_embeddings=False, use_sliding_window=False,
        rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                         "original_max_position_embeddings": 1024}))
    yield "gemma2", gemma2
    yield "gemma3_text", gemma3_text
    yield "modernbert-decoder", modernbert_decoder
    yield "minimax", minimax
    yield "deepseek_v3", deepseek_v3
    yield "deepseek_v32", deepseek_v32


LOCAL = dict(vocab_size=VOCAB, max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=0,
             initializer_range=0.1)
WINDOW = 24  # < the longest prompt (70)


def gemma2():
    from transformers import Gemma2Config, Gemma2ForCausalLM
    return Gemma2ForCausalLM, Gemma2Config(
        **LOCAL, hidden_size=96, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=48, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=64, sliding_window=WINDOW, attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
        tie_word_embeddings=True, rope_parameters={"rope_type": "default", "rope_theta": 10000.0})


def gemma3_text():
    """5 local : 1 global (+ one more local), linear-scaled global RoPE, a local RoPE base of its own."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig
    types = ["sliding_attention"] * 5 + ["full_attention", "sliding_attention"]
    common = dict(**LOCAL, hidden_size=64, intermediate_size=128, num_hidden_layers=7, num_attention_heads=2,
                  num_key_value_heads=1, head_dim=256, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
                  query_pre_attn_scalar=144, sliding_window=WINDOW, tie_word_embeddings=True)
    try:
        config = Gemma3TextConfig(**common, layer_types=types, rope_parameters={
            "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
            "sliding_attention": {"rope_type": "default", "rope_theta": 20000.0}})
    except Exception:  # older signature: rope_scaling for the global layers, rope_local_base_freq
        traceback.print_exc()
        config = Gemma3TextConfig(**common, sliding_window_pattern=6, rope_theta=1000000.0,
                                  rope_scaling={"rope_type": "linear", "factor": 8.0}, rope_local_base_freq=20000.0)
    return Gemma3ForCausalLM, config


def modernbert_decoder():
    from transformers import ModernBertDecoderConfig, ModernBertDecoderForCausalLM
    return ModernBertDecoderForCausalLM, ModernBertDecoderConfig(
        **LOCAL, cls_token_id=1, sep_token_id=2, hidden_size=96, intermediate_size=160, num_hidden_layers=4,
        num_attention_heads=3, hidden_activation="gelu", classifier_activation="gelu", norm_eps=1e-5,
        norm_bias=True, attention_bias=True, mlp_bias=True, decoder_bias=True, classifier_bias=True,
        local_attention=2 * WINDOW, global_attn_every_n_layers=3, global_rope_theta=160000.0,
        local_rope_theta=10000.0)


def minimax():
    """Lightning hybrid: linear-attention layers around one softmax layer, a block size (16) that the 70-token
    prompt crosses four times, residual alpha/beta factors away from 1, partial RoPE on the softmax layer, and a
    softmax top-2 MoE over 4 experts."""
    from transformers import MiniMaxConfig, MiniMaxForCausalLM
    types = ["linear_attention", "linear_attention", "full_attention", "linear_attention"]
    return MiniMaxForCausalLM, MiniMaxConfig(
        **LOCAL, hidden_size=96, intermediate_size=80, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False,
        layer_types=types, block_size=16, num_local_experts=4, num_experts_per_tok=2,
        full_attn_alpha_factor=1.3, full_attn_beta_factor=0.9, linear_attn_alpha_factor=1.7,
        linear_attn_beta_factor=0.8, mlp_alpha_factor=1.5, mlp_beta_factor=1.1,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.5})


DEEPSEEK = dict(**LOCAL, hidden_size=96, intermediate_size=160, moe_intermediate_size=48, num_hidden_layers=3,
                num_attention_heads=4, num_key_value_heads=4, q_lora_rank=40, kv_lora_rank=64, qk_nope_head_dim=32,
                qk_rope_head_dim=16, v_head_dim=24, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=3,
                n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True, first_k_dense_replace=1,
                rms_norm_eps=1e-6, hidden_act="silu", tie_word_embeddings=False,
                rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0, "factor": 4.0,
                                 "original_max_position_embeddings": 64, "beta_fast": 32, "beta_slow": 1,
                                 "mscale": 1.0, "mscale_all_dim": 1.0})


def deepseek_v3():
    """MLA (q LoRA, compressed KV with interleaved RoPE, YaRN whose mscale enters the softmax scale) and
    DeepSeek's MoE: a dense first layer, then sigmoid routing over 8 experts in 4 groups (top-2 groups, top-3
    experts) with a random correction bias, renormalized and scaled, plus a shared expert."""
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM
    return DeepseekV3ForCausalLM, DeepseekV3Config(**DEEPSEEK, rope_interleave=True)


def deepseek_v32():
    """deepseek_v3's shape with V3.2's indexer on every layer (16 heads of 64, a size the CUDA indexer takes;
    top-16 of the 70-token prompt, so the selection is real)."""
    from transformers import DeepseekV32Config, DeepseekV32ForCausalLM
    return DeepseekV32ForCausalLM, DeepseekV32Config(**DEEPSEEK, index_n_heads=16, index_head_dim=64,
                                                     index_topk=16)


UNIT_OFFSET_NORMS = ("gemma2", "gemma3_text")  # RMSNorm scales by (1 + weight)


def randomize(model, generator):
    """Default init leaves norms at 1 and biases at 0, which would hide a missing norm weight or bias.
    Every norm's effective scale becomes 1 + 0.1·N(0, 1): for the Gemma families, whose norms multiply
    by (1 + weight), the weight itself is 0.1·N(0, 1). (Their first fixtures drew weight = 1 + 0.1·N,
    a scale of 2 on every norm and 4 on the attention scores through the q/k norms, which made the
    gemma3_text fixture so sensitive that transformers' own bf16 run was 0.09–0.21 away from fp32.)"""
    offset = 0.0 if model.config.model_type in UNIT_OFFSET_NORMS else 1.0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.copy_(offset + 0.1 * torch.randn(param.shape, generator=generator))
            elif name.endswith("bias"):
                param.copy_(0.1 * torch.randn(param.shape, generator=generator))
        for name, buffer in model.named_buffers():  # DeepSeek's router bias: wide enough to change choices
            if name.endswith("e_score_correction_bias"):
                buffer.copy_(0.3 * torch.randn(buffer.shape, generator=generator))


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
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    torch.manual_seed(0)
    for index, (name, make) in enumerate(families()):
        if only is not None and name not in only:
            continue
        try:
            make_fixture(out_root, index, name, *make())
        except Exception:
            traceback.print_exc()
            print(f"{name}: FAILED")


def make_fixture(out_root, index, name, cls, config):
    generator = torch.Generator().manual_seed(1234 + index)
    torch.manual_seed(1234 + index)
    model = cls(config)
    randomize(model, generator)
    out_dir = os.path.join(out_root, name)
    model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
    reference = cls.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager").eval()
    reference_bf16 = cls.from_pretrained(out_dir, dtype=torch.bfloat16, attn_implementation="eager").eval()
    cases = []
    for length in PROMPT_LENGTHS:
        prompt = torch.randint(3, VOCAB, (length,), generator=generator).tolist()
        generated, prompt_logits, final_logits, margin = greedy(reference, prompt)
        with torch.no_grad():  # how far transformers' own bf16 run is from the fp32 reference
            bf16 = reference_bf16(torch.tensor([prompt])).logits[0, -1].double()
        bf16_error = float((bf16 - prompt_logits).norm() / prompt_logits.norm())
        cases.append({"prompt_ids": prompt, "generated_ids": generated, "prompt_logits": as_list(prompt_logits),
                      "final_logits": as_list(final_logits), "min_top2_margin": margin,
                      "transformers_bf16_prompt_logits_rel_l2": bf16_error})
        print(f"{name}: prompt {length} -> {generated} (min top-2 margin {margin:.4f}, "
              f"transformers bf16 vs fp32 {bf16_error:.2e})")
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
