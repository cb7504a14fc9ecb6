// The correctness guard of lightning_bench.cu: a small lightning attention call through the CUDA op
// (model/backend/cuda/cuda_lightning.h) against a plain fp64 recurrence on the host. Kept in its own
// C++20 translation unit because the backend headers need C++20 and the bench's .cu builds as C++17.
#pragma once

namespace longbow::bench {

struct LightningCheck {
  int tokens = 0, heads = 0, head_dim = 0, decode_steps = 0;
  // Max over elements of |gpu − ref| / max(|ref|, 0.01 · max |ref| of that token's head), for the
  // outputs of every row (prefill and decode) and for the final state.
  double max_rel_out = 0.0, max_rel_state = 0.0;
  char error[256] = "";  // non-empty: the op failed (the errors are then meaningless)
};

// One fresh sequence: a prefill of `tokens` rows, then `decode_steps` one-token calls carrying the
// state, all through cuda_lightning::lightning_attention on the default stream.
LightningCheck run_lightning_check(int tokens, int heads, int head_dim, int decode_steps);

}  // namespace longbow::bench
