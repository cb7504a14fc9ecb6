#!/usr/bin/env python3
"""Peer figures for docs/benchmarks.md, measured with PyTorch on the GPU machine in the same run as
tools/bench/kernel_bench (a reference only: nothing in longbow uses PyTorch).

  python3 torch_attention_peer.py OUT.json [--quick | --prefill] [--head-dim 256]
  (--prefill: the prefill figures alone; --head-dim 256: d=256 with Hq=16, Hkv=8, as kernel_bench.)

Prefill: causal SDPA, B=1, Hq=32, Hkv=8 (K/V expanded to 32 heads before timing), d=128, bf16,
with the cuDNN and the flash backends; TFLOP/s = 2*Hq*N^2*d / t.
Decode: SDPA with one query per sequence over contiguous K/V (enable_gqa), B = 1/8/32,
context 4K/32K/128K; microseconds per call (one layer).
"""
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from torch_timing import time_ms


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "torch_peer.json"
    quick = "--quick" in sys.argv
    prefill_alone = "--prefill" in sys.argv
    d = int(sys.argv[sys.argv.index("--head-dim") + 1]) if "--head-dim" in sys.argv else 128
    hq, hkv = (32, 8) if d == 128 else (16, 8)
    dev = "cuda"
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "head_dim": d, "prefill": [],
              "decode": []}
    lines = []
    for n in (4096, 16384, 65536, 131072):
        if quick and n > 16384:
            continue
        q = torch.randn(1, hq, n, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(1, hkv, n, d, device=dev, dtype=torch.bfloat16).repeat_interleave(hq // hkv, dim=1)
        v = torch.randn(1, hkv, n, d, device=dev, dtype=torch.bfloat16).repeat_interleave(hq // hkv, dim=1)
        for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            try:
                with sdpa_kernel(backend):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                                 5 if n <= 16384 else 3, 5 if n <= 16384 else 1)
                tflops = 2.0 * hq * n * n * d / (ms * 1e-3) / 1e12
                result["prefill"].append({"n": n, "backend": name, "ms": ms, "tflops": tflops})
                lines.append(f"torch sdpa {name:5s} prefill d{d} N={n:<6d}   {tflops:8.1f} TFLOP/s  ({ms:.3f} ms)")
            except Exception as err:  # a backend may refuse a shape; record it rather than stop
                result["prefill"].append({"n": n, "backend": name, "error": str(err)[:200]})
                lines.append(f"torch sdpa {name:5s} prefill N={n:<6d}        failed: {str(err)[:60]}")
        del q, k, v
        torch.cuda.empty_cache()
    for ctx in (4096, 32768, 131072):
        for b in (1, 8, 32):
            if prefill_alone or (quick and (ctx > 32768 or b > 8)):
                continue
            q = torch.randn(b, hq, 1, d, device=dev, dtype=torch.bfloat16)
            k = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
            v = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
            try:
                ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True), 7, 20)
                kv_bytes = 2.0 * b * ctx * hkv * d * 2
                result["decode"].append({"ctx": ctx, "batch": b, "us": ms * 1e3, "kv_tbps": kv_bytes / (ms * 1e-3) / 1e12})
                lines.append(f"torch sdpa decode d{d} ctx={ctx:<6d} B={b:<2d}     {ms * 1e3:8.1f} us  "
                             f"{kv_bytes / (ms * 1e-3) / 1e12:5.2f} TB/s")
            except Exception as err:
                result["decode"].append({"ctx": ctx, "batch": b, "error": str(err)[:200]})
                lines.append(f"torch sdpa decode ctx={ctx:<6d} B={b:<2d} failed: {str(err)[:60]}")
            del q, k, v
            torch.cuda.empty_cache()
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"== torch {torch.__version__} peers on {result['device']} ==")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
