#!/usr/bin/env python3
"""Torch peers for the DSA decode table in docs/benchmarks.md, measured in the same run as
tools/bench/dsa_bench.cu (a reference only: nothing in longbow uses PyTorch).

  python3 dsa_torch_peer.py OUT.json

Per layer, context 131072, Hq=32, Hkv=8, d=128, one query per sequence, B = 1/8/32:
  sdpa_dense: F.scaled_dot_product_attention over contiguous bf16 K/V (enable_gqa);
  naive_dsa:  bf16 index keys [B, ctx, 128] and queries [B, 64, 128]; logits = sum_h w * relu(q k),
              torch.topk(2048), gather the selected K/V rows, SDPA over them;
  torch.topk of 8 rows x 131072 fp32 (k = 2048).
Microseconds per call, median of event-timed repetitions.
"""
import json
import sys

import torch
import torch.nn.functional as F

from torch_timing import time_ms


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "dsa_torch_peer.json"
    ctx, hq, hkv, d, ih, idim, topk = 131072, 32, 8, 128, 64, 128, 2048
    dev = "cuda"
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "cases": []}
    for b in (1, 8, 32):
        q = torch.randn(b, hq, 1, d, device=dev, dtype=torch.bfloat16)
        k = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
        v = torch.randn(b, hkv, ctx, d, device=dev, dtype=torch.bfloat16)
        iq = torch.randn(b, ih, idim, device=dev, dtype=torch.bfloat16)
        ik = torch.randn(b, ctx, idim, device=dev, dtype=torch.bfloat16)
        w = torch.randn(b, ih, 1, device=dev, dtype=torch.float32)
        dense = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))

        def naive():
            scores = torch.bmm(iq, ik.transpose(1, 2)).float().relu_()  # [b, ih, ctx]
            logits = (scores * w).sum(dim=1)  # [b, ctx]
            idx = logits.topk(topk, dim=-1).indices  # [b, topk]
            gather = idx[:, None, :, None].expand(b, hkv, topk, d)
            ks = k.gather(2, gather)
            vs = v.gather(2, gather)
            return F.scaled_dot_product_attention(q, ks, vs, enable_gqa=True)

        naive_ms = time_ms(naive, reps=5, inner=3)
        case = {"batch": b, "sdpa_dense_us": dense * 1e3, "naive_dsa_us": naive_ms * 1e3}
        result["cases"].append(case)
        print(f"torch dsa peer B={b}: sdpa dense {dense * 1e3:.1f} us, naive DSA {naive_ms * 1e3:.1f} us", flush=True)
        del q, k, v, iq, ik, w
        torch.cuda.empty_cache()
    rows = torch.randn(8, ctx, device=dev, dtype=torch.float32)
    topk_ms = time_ms(lambda: rows.topk(topk, dim=-1))
    result["torch_topk_8x131072_us"] = topk_ms * 1e3
    print(f"torch.topk 8 x 131072 (k=2048): {topk_ms * 1e3:.1f} us", flush=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
