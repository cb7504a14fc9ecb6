"""The roofline of a serving workload: FLOPs and bytes of a set of requests on a dense decoder model.

Used by serve_bench.py (standard library only, like it). From a Hugging Face config.json:

  params        every weight of the model (bf16: 2 bytes each unless --weight-bytes says otherwise)
  P_body        the weights a prompt token multiplies: every linear layer except the LM head
  P_head        the LM head (vocab x hidden; the embedding table when tie_word_embeddings)
  W             weight bytes one forward step reads: weight_bytes * (params - embedding table), since a
                step reads only its own rows of the embedding table (tied: the table is the LM head, read
                whole)

A request of `in` prompt and `out` output tokens feeds positions p = 0 .. in+out-2 through the model
(the last output token is never fed back), and computes logits once per output token (prefill keeps
only its last row):

  flops = 2*P_body*(in+out-1) + 2*P_head*out
        + sum over fed positions p and layers of 4*Hq*D*keys(p)             (Q.K^T and P.V)
        + DSA layers: sum over p of 2*Hi*Di*(p+1)                           (the indexer's logits)
  keys(p) = p+1 (full attention), min(p+1, index_topk) (DSA), min(p+1, sliding_window) (local layers)

Decode traffic (positions in .. in+out-2 each read the K/V of keys(p) earlier tokens; DSA layers also
read the index cache of p+1 tokens, Di e4m3 bytes + a 4-byte scale each):

  kv_bytes = sum over decode positions p and layers of keys(p)*2*Hkv*D*kv_bytes_per_value
           + DSA layers: sum over p of (p+1)*(Di+4)

For a workload of N requests with at most B running at once (B = min(max concurrency, N)):

  compute_time   = sum(flops) / (gemm_tflops * 1e12)
  bandwidth_time = (ceil(sum(out-1) / B) * W + sum(kv_bytes)) / (copy_gbps * 1e9)
                   (each decode step reads the weights once and advances at most B requests)
  ceiling tok/s  = sum(out) / time, for each bound; roofline = sum(out) / max(compute_time,
                   bandwidth_time). Both are upper bounds: prefill weight reads, activation traffic and
                   attention running below the GEMM rate only lower the real figure.
"""

import math

FORMULAS = {
    "flops_per_request": "2*P_body*(in+out-1) + 2*P_head*out + sum_{p=0}^{in+out-2} sum_layers 4*Hq*D*keys(p)"
                         " [+ DSA layers 2*Hi*Di*(p+1)]; keys(p) = p+1 full, min(p+1, index_topk) DSA,"
                         " min(p+1, sliding_window) local",
    "kv_bytes_per_request": "sum_{p=in}^{in+out-2} sum_layers keys(p)*2*Hkv*D*kv_bytes_per_value"
                            " [+ DSA layers (p+1)*(Di+4)]",
    "compute_time_s": "sum(flops) / (gemm_tflops*1e12)",
    "bandwidth_time_s": "(ceil(sum(out-1)/B)*W + sum(kv_bytes)) / (copy_gbps*1e9), W = weight_bytes*(params -"
                        " embedding table), B = min(max_concurrency, num_prompts)",
    "ceiling_output_tok_s": "sum(out) / time (compute or bandwidth)",
    "roofline_output_tok_s": "sum(out) / max(compute_time_s, bandwidth_time_s)",
}


class ModelShape:
    """The parameter counts and per-layer attention shape of a decoder-only config.json."""

    def __init__(self, config, weight_bytes=2, kv_bytes_per_value=2):
        if "text_config" in config and isinstance(config["text_config"], dict):
            config = config["text_config"]
        for key in ("num_experts", "n_routed_experts", "num_local_experts"):
            if config.get(key):
                raise ValueError("config has %s: mixture-of-experts models are not modeled" % key)
        self.hidden = int(config["hidden_size"])
        self.intermediate = int(config["intermediate_size"])
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.kv_heads = int(config.get("num_key_value_heads") or self.heads)
        self.head_dim = int(config.get("head_dim") or self.hidden // self.heads)
        self.vocab = int(config["vocab_size"])
        self.tied = bool(config.get("tie_word_embeddings", False))
        self.weight_bytes = weight_bytes
        self.kv_bytes_per_value = kv_bytes_per_value
        # DSA indexer (every layer of a dummy-loaded config that has the index_* keys).
        self.index_heads = int(config.get("index_n_heads") or 0)
        self.index_dim = int(config.get("index_head_dim") or 0)
        self.index_topk = int(config.get("index_topk") or 0)
        self.dsa = self.index_heads > 0 and self.index_topk > 0
        # Local layers: Gemma-3's sliding_window_pattern (every Nth layer global) or layer_types; a bare
        # sliding_window (Qwen2's, often unused) is not taken as local attention.
        window = config.get("sliding_window")
        self.layer_windows = [None] * self.layers
        if window:
            types = config.get("layer_types")
            pattern = config.get("sliding_window_pattern")
            if isinstance(types, list) and len(types) == self.layers:
                self.layer_windows = [int(window) if t == "sliding_attention" else None for t in types]
            elif pattern:
                self.layer_windows = [None if (i + 1) % int(pattern) == 0 else int(window) for i in range(self.layers)]

        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        attn = h * q + 2 * h * kv + q * h
        if config.get("attention_bias"):
            attn += q + 2 * kv + h
        mlp = 3 * h * self.intermediate
        if config.get("mlp_bias"):
            mlp += 2 * self.intermediate + h
        indexer = 0
        if self.dsa:
            indexer = self.index_heads * self.index_dim * h + self.index_dim * h + self.index_heads * h
        norms = 2 * h + (2 * self.head_dim if config.get("model_type", "").startswith(("gemma3", "qwen3")) else 0)
        index_norm = 2 * self.index_dim if self.dsa else 0
        self.embed = self.vocab * h
        self.head = self.vocab * h
        # Matmul weights a token goes through below the LM head.
        self.body = self.layers * (attn + mlp + indexer)
        self.params = self.embed + (0 if self.tied else self.head) + self.body + self.layers * (norms + index_norm) + h

    # ---- per-request sums ------------------------------------------------------------------
    @staticmethod
    def _sum_keys(a, b, cap):
        """sum over p in [a, b) of min(p+1, cap) (cap None: p+1)."""

        def upto(n):  # sum_{k=1}^{n} min(k, cap)
            if n <= 0:
                return 0
            if cap is None or n <= cap:
                return n * (n + 1) // 2
            return cap * (cap + 1) // 2 + (n - cap) * cap

        return upto(b) - upto(a)

    def _layer_cap(self, layer):
        window = self.layer_windows[layer]
        if self.dsa:
            return self.index_topk if window is None else min(window, self.index_topk)
        return window

    def request_flops(self, prompt, output):
        fed = prompt + max(output, 1) - 1
        flops = 2 * self.body * fed + 2 * self.head * output
        for layer in range(self.layers):
            flops += 4 * self.heads * self.head_dim * self._sum_keys(0, fed, self._layer_cap(layer))
            if self.dsa:
                flops += 2 * self.index_heads * self.index_dim * self._sum_keys(0, fed, None)
        return flops

    def request_kv_bytes(self, prompt, output):
        a, b = prompt, prompt + max(output, 1) - 1
        per_key = 2 * self.kv_heads * self.head_dim * self.kv_bytes_per_value
        total = 0
        for layer in range(self.layers):
            total += per_key * self._sum_keys(a, b, self._layer_cap(layer))
            if self.dsa:
                total += (self.index_dim + 4) * self._sum_keys(a, b, None)
        return total

    def step_weight_bytes(self):
        return self.weight_bytes * (self.params - (0 if self.tied else self.embed))

    def describe(self):
        return {
            "params": self.params,
            "params_body": self.body,
            "params_lm_head": self.head,
            "params_embedding": self.embed,
            "tied_embeddings": self.tied,
            "weight_bytes_per_param": self.weight_bytes,
            "step_weight_bytes": self.step_weight_bytes(),
            "layers": self.layers,
            "heads": self.heads,
            "kv_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "kv_bytes_per_value": self.kv_bytes_per_value,
            "dsa": {"index_n_heads": self.index_heads, "index_head_dim": self.index_dim,
                    "index_topk": self.index_topk} if self.dsa else None,
            "local_layers": sum(1 for w in self.layer_windows if w is not None),
        }


def workload_roofline(shape, pairs, batch, gemm_tflops, copy_gbps):
    """pairs: (prompt_tokens, output_tokens) of each completed request; batch: the most requests that
    can run at once. Returns the workload's FLOPs, bytes, both times and the ceilings (None when
    nothing completed)."""
    if not pairs or batch < 1:
        return None
    flops = sum(shape.request_flops(p, o) for p, o in pairs)
    kv_bytes = sum(shape.request_kv_bytes(p, o) for p, o in pairs)
    outputs = sum(o for _, o in pairs)
    decode_positions = sum(max(o - 1, 0) for _, o in pairs)
    steps = math.ceil(decode_positions / batch)
    weight_bytes = steps * shape.step_weight_bytes()
    compute_time = flops / (gemm_tflops * 1e12)
    bandwidth_time = (weight_bytes + kv_bytes) / (copy_gbps * 1e9)
    bound_time = max(compute_time, bandwidth_time)
    return {
        "batch": batch,
        "gemm_tflops": gemm_tflops,
        "copy_gbps": copy_gbps,
        "flops": flops,
        "weight_bytes": weight_bytes,
        "kv_bytes": kv_bytes,
        "decode_steps_min": steps,
        "compute_time_s": compute_time,
        "bandwidth_time_s": bandwidth_time,
        "compute_ceiling_output_tok_s": outputs / compute_time if compute_time > 0 else None,
        "bandwidth_ceiling_output_tok_s": outputs / bandwidth_time if bandwidth_time > 0 else None,
        "roofline_output_tok_s": outputs / bound_time if bound_time > 0 else None,
        "bound": "compute" if compute_time >= bandwidth_time else "bandwidth",
    }
