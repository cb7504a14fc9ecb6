// Backend: owns device memory and runs the few ops the transformer needs.
//
// CpuBackend (model/backend/cpu) is the reference: fp32, plain loops, obviously right. CudaBackend
// (model/backend/cuda) forwards to kernels/. model/runtime sees only this interface, and every kernel
// is tested against the CPU implementation of the same op.
//
// Conventions for every op:
//  - Tensors are contiguous row-major and live on this backend. "T" is the number of tokens in the
//    step, "S" the number of sequences, "D" head_dim, "P" KV pages, kPageSize tokens per page.
//  - Floating tensors are in compute_dtype() unless an op says otherwise; index tensors are I32.
//  - Ops may run asynchronously; download() and synchronize() wait for prior work.
//  - Shape or dtype mismatches are INVALID_ARGUMENT naming the op and the tensor, never a crash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "common/dtype.h"
#include "common/status.h"
#include "model/backend/tensor.h"
#include "model/config/model_config.h"
#include "model/sampling/sampling_row.h"

namespace longbow {

// Tokens per KV page (DESIGN §5). Logical token i of a sequence lives in slot
// block_table[i / kPageSize] * kPageSize + i % kPageSize.
constexpr int kPageSize = 64;

struct MemoryInfo {
  size_t free_bytes = 0;
  size_t total_bytes = 0;
};

// Paged attention over a batch that mixes prefill chunks and decode tokens.
// Sequence s owns queries [query_start[s], query_start[s+1]) of q; its context after this step's
// append is context_lens[s] tokens, and its queries are the last q_len = query_start[s+1] -
// query_start[s] of them: query i sits at position p = context_lens[s] - q_len + i and attends to
// the cached positions j with j <= p (causal) and, when sliding_window > 0, j > p - sliding_window.
struct PagedAttentionArgs {
  Tensor q;             // [T, Hq, D]
  Tensor k_cache;       // [P, kPageSize, Hkv, D]
  Tensor v_cache;       // [P, kPageSize, Hkv, D]
  Tensor query_start;   // [S + 1] I32, query_start[0] = 0, query_start[S] = T
  Tensor context_lens;  // [S] I32, >= q_len; 0 only for a one-query padding row (output 0, reads nothing)
  // [S, max_pages_per_seq] I32 physical page ids of this layer's pool. Every entry a context needs is a
  // page of the pool; with sliding_window > 0 the entries behind the window are the null page
  // (kNullPage, page 0, model/kv_cache/window_pages.h), which an implementation may read but must
  // mask by the window, so its contents never matter. (-1 appears only past a row's context and in a
  // graph batch's padding rows, which read nothing.)
  Tensor block_tables;
  Tensor out;           // [T, Hq, D]
  int max_query_len = 0;    // max over s of q_len (a launch hint; must be an upper bound)
  int max_context_len = 0;  // max over s of context_lens[s] (likewise)
  float scale = 0.0f;       // softmax scale, usually 1/sqrt(D)
  int sliding_window = 0;   // 0: attend to the whole causal prefix
  // Logit soft-cap (Gemma 2): each scaled score x becomes softcap · tanh(x / softcap) before the
  // softmax. 0: none; otherwise > 0.
  float softcap = 0.0f;
};

// The activation of a gated MLP: out = act(gate) · up.
//   kSilu      x · sigmoid(x)                                   (Llama, Qwen, Mistral, MiniMax)
//   kGeluTanh  0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))) (Gemma's gelu_pytorch_tanh)
//   kGelu      0.5 · x · (1 + erf(x / √2))                       (exact GELU: ModernBERT's "gelu")
//   kSigmoid   1 / (1 + exp(−x))                                 (MiniMax's lightning output gate)
enum class Activation { kSilu, kGeluTanh, kGelu, kSigmoid };

// ---- lightning attention (MiniMax; DESIGN §4; reference: model/backend/cpu/cpu_lightning.cc) ----
// Causal linear attention with a fixed decay per head, λ_h = exp(−slopes[h]) (Lightning Attention-2 as
// transformers' MiniMaxLightningAttention computes it). For each sequence and head h, over the
// sequence's tokens u in order, with S [D, D] and S = 0 before the sequence's first token:
//   S ← λ_h · S + k_uᵀ v_u;   o_u = q_u · S        (o_u = Σ_{u' ≤ u} λ_h^{u−u'} (q_u · k_u') v_u')
// where q, k, v are SiLU of the layer's qkv projection, split per head as transformers splits it:
// qkv[t] = [q_0 k_0 v_0 | q_1 k_1 v_1 | ...], each piece D wide.
// Sequence s owns rows [query_start[s], query_start[s+1]) of qkv and out: the last q_len of its
// context_lens[s] tokens, as in PagedAttentionArgs. Its state is state[slots[s]] ([H, D, D] F32):
// read at entry unless context_lens[s] == q_len (the sequence's first step: the slot is fresh, taken
// as 0 and never read), and replaced by S after the sequence's last new token. A row whose slot is
// −1 (a graph batch's padding: one query, context 0) reads and writes no state and outputs 0. No two
// sequences of one call hold the same slot.
// Multi-token rows run blockwise, block_size tokens at a time (intra-block: masked, decayed QKᵀ;
// inter-block: through S), as transformers does; any block size gives the recurrence up to rounding.
struct LightningAttentionArgs {
  Tensor qkv;           // [T, H·3·D] the qkv projection, before SiLU
  Tensor slopes;        // [H] F32
  Tensor state;         // [num_slots, H, D, D] F32: the layer's state pool
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32
  Tensor slots;         // [S] I32 state slots, or −1
  Tensor out;           // [T, H·D]
  int num_heads = 0, head_dim = 0;
  int block_size = 256;
  int max_query_len = 0;  // an upper bound on every q_len (a launch hint)
};

// ---- mixture of experts (MiniMax, Mixtral, DeepSeek; reference: model/backend/cpu/cpu_moe.cc) ----
// Top-k routing of row t over E experts, k = ids.dim(1); ids[t] in descending order of the selection
// score, ties to the lower id:
//  kSoftmax (transformers' MixtralTopKRouter): p = softmax(logits[t]); the k largest p; w_j = p[ids[t][j]].
//  kSigmoid (DeepseekV3MoE.route_tokens_to_experts): s = sigmoid(logits[t]); c = s + correction_bias
//    (selection only); the E experts form num_groups equal groups, each scored by the sum of its two
//    largest c; the topk_groups best groups (ties to the lower group) stay and every other expert's c
//    becomes −∞ (transformers ≥ 5.15's masked_fill; earlier 5.x used 0); the k largest c;
//    w_j = s[ids[t][j]].
// Then, with renormalize, w_j /= Σ_j' w_j' (+ 1e-20 under kSigmoid, as transformers), and w_j *= scaling.
enum class MoeScoring { kSoftmax, kSigmoid };

struct MoeRouteArgs {
  Tensor logits;   // [T, E] F32 router logits
  Tensor ids;      // [T, k] I32, written
  Tensor weights;  // [T, k] F32, written
  MoeScoring scoring = MoeScoring::kSoftmax;
  Tensor correction_bias;  // [E] F32 (kSigmoid's e_score_correction_bias); empty: none
  int num_groups = 1, topk_groups = 1;  // kSigmoid: n_group, topk_group (E % num_groups == 0)
  bool renormalize = true;              // norm_topk_prob (Mixtral and MiniMax always)
  float scaling = 1.0f;                 // routed_scaling_factor
};

// The routed experts (transformers' MixtralExperts, stacked as it stores them):
//   out[t] = Σ_j weights[t][j] · down[e] · (act(gate[e] · x[t]) ⊙ up[e] · x[t]),  e = ids[t][j],
// with gate[e] = gate_up[e] rows [0, I) and up[e] = rows [I, 2I); with `accumulate`, out[t] += that
// sum instead (DeepSeek's shared experts computed first into out). Under expert parallelism gate_up
// and down hold experts [expert_begin, expert_begin + gate_up.dim(0)) of num_experts: ids are global,
// and an id outside that range (another rank's expert) contributes nothing.
struct MoeExpertsArgs {
  Tensor x;        // [T, H]
  Tensor ids;      // [T, k] I32 in [0, E)
  Tensor weights;  // [T, k] F32
  Tensor gate_up;  // [E, 2I, H]
  Tensor down;     // [E, H, I]
  Activation activation = Activation::kSilu;
  Tensor out;      // [T, H]
  bool accumulate = false;
  int64_t expert_begin = 0;
  int64_t num_experts = 0;  // routed experts in all; 0: gate_up.dim(0)
};

// ---- multi-head latent attention (DeepSeek V2/V3 MLA; reference model/backend/cpu/cpu_mla.cc) ----
// An MLA layer caches per token one latent row: the normed compressed KV c (Dl = kv_lora_rank values)
// followed by the RoPE'd key k_r shared by every head (Dr = qk_rope_head_dim values), in a pool
// [P, kPageSize, Dl + Dr] indexed like the K/V pools. Attention runs "absorbed": each head's query is
// carried into the latent space (q_l = W_UK,hᵀ q_nope, head_matmul), scored against the cached rows
// and its output taken back out (o_h = W_UV,h · o_l, head_matmul), so every head reads the same row.

// Per-head products with each head's own weight block w[h] (rows [row_begin, row_begin + n) of it):
//   transpose_w = false:  out[t][h] = W_h · x[t][h]     x [T, H, C], W_h [n, C], out [T, H, n]
//   transpose_w = true:   out[t][h] = W_hᵀ · x[t][h]    x [T, H, n], W_h [n, C], out [T, H, C]
// (MLA's kv_b_proj [H, nope + v, Dl]: the first form with rows [nope, nope + v) is W_UV, the second
// with rows [0, nope) is W_UKᵀ.)
struct HeadMatmulArgs {
  Tensor x;
  Tensor w;    // [H, R, C]
  int64_t row_begin = 0, num_rows = 0;  // n = num_rows, row_begin + n <= R
  bool transpose_w = false;
  Tensor out;
};

// Writes latent [T, Dl] and rope_key [T, Dr] to slots[t] of cache [P, kPageSize, Dl + Dr]; slot -1
// (a padding row) is not written.
struct AppendLatentArgs {
  Tensor latent;
  Tensor rope_key;
  Tensor slots;  // [T] I32
  Tensor cache;
};

// Latent attention over the paged latent cache (rows, positions, padding rows and block tables as in
// PagedAttentionArgs; causal, no window): for head h of query row t at position p,
//   score(j) = scale · (q_latent[t][h] · c_j + q_rope[t][h] · k_r,j),  out[t][h] = Σ_j softmax(score)_j · c_j
// over j <= p, or, when `indices` is given (a DSA layer), over exactly the tokens indices[t][*] >= 0
// (DsaTopkArgs' selection; no index: output 0).
struct LatentAttentionArgs {
  Tensor q_latent;      // [T, H, Dl]
  Tensor q_rope;        // [T, H, Dr]
  Tensor cache;         // [P, kPageSize, Dl + Dr]
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32
  Tensor block_tables;  // [S, max_pages_per_seq] I32
  Tensor indices;       // [T, topk] I32, or empty (data == nullptr): the whole causal prefix
  Tensor out;           // [T, H, Dl]
  int max_query_len = 0, max_context_len = 0;  // launch hints, upper bounds as in PagedAttentionArgs
  float scale = 0.0f;
};

// ---- DeepSeek Sparse Attention (DESIGN §4, §5; reference model/backend/cpu/cpu_dsa.h) ----
// A DSA layer's index cache is [P, kPageSize · (Di + 4)] kFP8E4M3 raw page bytes: the page's 64 e4m3
// key vectors of Di (index_head_dim) values, then their 64 fp32 power-of-two scales; it shares the
// K/V pools' page ids. Both backends run the FP8 path (the CPU emulates the GPU's quantization bit
// for bit); cpu_dsa.h also has the exact fp32 indexer for recall measurements.
//
// Context 0 (a graph batch's padding row: one query, context_lens 0, slot -1, a block-table row of
// -1): such a row has length 0. dsa_index_keys writes nothing for slot -1; dsa_index_scores reads
// nothing for it (no cache byte, no block-table entry) and writes no score; dsa_topk selects nothing
// (the row is all -1, without reading its logits); dsa_sparse_attention of a row with no index
// writes 0, as paged attention does for context 0.

// Index keys of the step's tokens: k = LayerNorm(k_raw; norm_weight, norm_bias, eps 1e-6), half-split
// RoPE on its leading 2·inv_freq.dim(0) dims at positions[t], Hadamard, FP8 quantization, stored at
// slots[t]. Written for every token (prefill included) before any score of the step; a token whose
// slot is -1 (a padding row) is not written.
struct DsaIndexKeysArgs {
  Tensor k_raw;        // [T, Di] the indexer's wk projection
  Tensor norm_weight;  // [Di]
  Tensor norm_bias;    // [Di]
  Tensor positions;    // [T] I32
  Tensor slots;        // [T] I32 physical slots, or -1: not written
  Tensor inv_freq;     // [index_rope_dim / 2] F32
  float attention_scaling = 1.0f;
  Tensor index_cache;  // [P, kPageSize · (Di + 4)] kFP8E4M3
};

// Index scores: for row t (rows and positions as in PagedAttentionArgs) and each cached j <= its
// position, logits[t][j] = k_scale[j] · Σ_h w[t][h] · ReLU(q8[t][h] · k8[j]) with q RoPE'd at
// positions[t] (as the keys), Hadamard-rotated and FP8-quantized per head, and w = weights ·
// Hi^-0.5 · Di^-0.5 · q's scale. Entries past a row's length are unspecified. Rows whose length is
// <= skip_len may be left unscored (their top-k is every token).
struct DsaIndexScoresArgs {
  Tensor q;             // [T, Hi, Di] the indexer's wq projection
  Tensor weights;       // [T, Hi] weights_proj output
  Tensor positions;     // [T] I32
  Tensor inv_freq;      // [index_rope_dim / 2] F32
  float attention_scaling = 1.0f;
  Tensor index_cache;   // [P, kPageSize · (Di + 4)] kFP8E4M3
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32, >= q_len; 0 only for a one-query padding row (no score)
  Tensor block_tables;  // [S, max_pages_per_seq] I32
  Tensor logits;        // [T, L] F32, L >= max_context_len
  // An upper bound on every context (launch grids derive from it; rows stop at their own length,
  // so a bound far above the real contexts costs empty blocks, not work).
  int max_context_len = 0;
  int skip_len = 0;
};

// Exact top-k of each row's logits[t][0, len_t): the k = indices.dim(1) largest, ties to the lower
// index, in ascending index order, padded with -1 (len_t <= k selects every token; len_t = 0, a
// padding row, selects nothing).
struct DsaTopkArgs {
  Tensor logits;        // [T, L] F32
  Tensor query_start;   // [S + 1] I32
  Tensor context_lens;  // [S] I32, as in DsaIndexScoresArgs
  Tensor indices;       // [T, k] I32 logical token indices
};

// Attention of every head of row t over exactly the tokens indices[t][*] >= 0 (the row's selection,
// shared by all heads; GQA as in paged_attention), softmax over that set; no index: output 0.
struct DsaSparseAttentionArgs {
  Tensor q;             // [T, Hq, D]
  Tensor k_cache;       // [P, kPageSize, Hkv, D]
  Tensor v_cache;       // [P, kPageSize, Hkv, D]
  Tensor indices;       // [T, topk] I32
  Tensor query_start;   // [S + 1] I32
  Tensor block_tables;  // [S, max_pages_per_seq] I32
  Tensor out;           // [T, Hq, D]
  float scale = 0.0f;
};

// The launch shape of one scoring block of a DSA step, as far as the DSA ops' scratch depends on it.
struct DsaWorkspaceShape {
  int rows = 0;                 // query rows scored at once
  int64_t logits_width = 0;     // the index logits' row width (dsa_logits_width of the context bound)
  int index_heads = 0, index_head_dim = 0, topk = 0;
  int q_heads = 0, kv_heads = 0, head_dim = 0;  // sparse attention
};

// A recorded sequence of one backend's launches (a CUDA graph), replayed without the host cost of
// issuing them. A replay runs the recorded kernels with their recorded arguments: the same device
// addresses, read with whatever values they hold when the replay runs.
class BackendGraph {
 public:
  virtual ~BackendGraph() = default;
  // Enqueues the recorded launches; asynchronous like any op.
  virtual Status replay() = 0;
  // Device memory the graph itself took when it was instantiated (for logs); 0 when unknown.
  virtual size_t num_bytes() const = 0;
};

// What a layer asks of a backend when it is built (llama.cpp's supports_op): `op` names a Backend
// op ("paged_attention", "layer_norm", "softcap", "dsa", ...), and the fields its shape, where the
// op has one (attention: heads, head_dim, rotary dims, window, soft-cap).
struct OpQuery {
  std::string_view op;
  int head_dim = 0, num_heads = 0, num_kv_heads = 0, rotary_dim = 0;
  int window = 0;
  float softcap = 0.0f;
  const DsaIndexerConfig* dsa = nullptr;  // "dsa": the indexer's shape
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  // The dtype of weights, activations and the KV cache: F32 on the CPU, BF16 on CUDA.
  virtual DType compute_dtype() const = 0;
  // OK when this backend can run `query`, else UNIMPLEMENTED naming the op, the field and what is
  // supported. The base answers OK: a backend that lacks an op says so in the op itself
  // (UNIMPLEMENTED at the first call) until it answers here.
  virtual Status supports(const OpQuery& query) const {
    (void)query;
    return Status::Ok();
  }
  // The whole-model check of a backend that does not yet answer supports() for each op (CUDA:
  // model/backend/cuda/cuda_support.h); the runtime asks it once before building the layers.
  virtual Status check_supported(const ModelConfig& config) const {
    (void)config;
    return Status::Ok();
  }

  // ---- memory ----
  virtual StatusOr<Tensor> allocate(DType dtype, std::initializer_list<int64_t> dims) = 0;
  virtual StatusOr<MemoryInfo> memory_info() const = 0;
  // Copies host bytes into dst (dst.num_bytes() of them).
  virtual Status upload(const void* host, Tensor& dst) = 0;
  // Copies `count` host elements of `src_dtype` (F32, F16 or BF16) into dst, converting to dst.dtype.
  virtual Status upload_converted(const void* host, DType src_dtype, int64_t count, Tensor& dst) = 0;
  // Copies src's bytes to host memory of src.num_bytes(); waits for prior work.
  virtual Status download(const Tensor& src, void* host) = 0;
  virtual Status synchronize() = 0;

  // ---- ops ----
  // out[t] = table[ids[t]]; table [V, H], ids [T], out [T, H]. Ids outside [0, V) are INVALID_ARGUMENT
  // on the CPU; kernels may clamp.
  virtual Status embed(const Tensor& table, const Tensor& ids, Tensor& out) = 0;
  // A vocabulary-parallel rank's embedding (model/arch/plan_shard.h): table [n, C] holds vocabulary
  // rows [vocab_begin, vocab_begin + n); out[t] = table[ids[t] − vocab_begin] for ids in that range,
  // zeros for every other id (another rank's row; the ranks' outputs are summed).
  virtual Status embed_shard(const Tensor& table, const Tensor& ids, int64_t vocab_begin, Tensor& out) {
    (void)table, (void)ids, (void)vocab_begin, (void)out;
    return missing_op("embed_shard");
  }
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight; x, out [R, C], weight [C]. out may alias x.
  virtual Status rms_norm(const Tensor& x, const Tensor& weight, float eps, Tensor& out) = 0;
  // residual += delta, then out = rms_norm(residual); all [R, C].
  virtual Status add_rms_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, float eps,
                              Tensor& out) = 0;
  // out = x · wᵀ (+ bias); x [M, K], w [N, K], bias [N] or empty (data == nullptr), out [M, N].
  // out may be F32 whatever compute_dtype() is (logits).
  virtual Status matmul(const Tensor& x, const Tensor& w, const Tensor& bias, Tensor& out) = 0;
  // In-place half-split RoPE on the leading rotary_dim dims of each head of q [T, Hq, D] and
  // k [T, Hkv, D]: for pair (i, i + rotary_dim/2), angle = positions[t] · inv_freq[i], cos and sin
  // scaled by attention_scaling. inv_freq [rotary_dim/2] is F32.
  virtual Status rope(Tensor& q, Tensor& k, const Tensor& positions, const Tensor& inv_freq,
                      float attention_scaling) = 0;
  // out = act(gate) * up (Activation above); all [T, I]. out may equal gate or up.
  virtual Status gated_activation(Activation act, const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  Status silu_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
    return gated_activation(Activation::kSilu, gate, up, out);
  }
  // Writes k, v [T, Hkv, D] to slots[t] of k_cache, v_cache [P, kPageSize, Hkv, D]; a token whose
  // slot is -1 (a graph batch's padding row) is not written.
  virtual Status append_kv(const Tensor& k, const Tensor& v, const Tensor& slots, Tensor& k_cache,
                           Tensor& v_cache) = 0;
  virtual Status paged_attention(const PagedAttentionArgs& args) = 0;
  // out[s] = x[rows[s]]; x [R, C], rows [S], out [S, C].
  virtual Status gather_rows(const Tensor& x, const Tensor& rows, Tensor& out) = 0;
  // Fills an F32 or compute_dtype() tensor with values of mean `mean` and standard deviation `std`,
  // uniform on [mean - sqrt(3)·std, mean + sqrt(3)·std). Element i is a function of (seed, i) alone,
  // computed in fp32 without fused multiply-adds, then rounded once to the tensor's dtype: every
  // backend writes the same values for the same seed (dummy weights, `--load-format dummy`).
  virtual Status fill_random(Tensor& tensor, uint64_t seed, float mean, float std) = 0;

  // ---- ops of the local/global families (Gemma, ModernBERT); UNIMPLEMENTED where a backend lacks them ----
  // out[r] = (x[r] − mean(x[r])) / sqrt(var(x[r]) + eps) · weight (+ bias); x, out [R, C], weight and
  // bias [C] (bias empty: none), biased variance as torch.nn.LayerNorm. out may alias x.
  virtual Status layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps, Tensor& out) {
    (void)x, (void)weight, (void)bias, (void)eps, (void)out;
    return missing_op("layer_norm");
  }
  // residual += delta, then out = layer_norm(residual); all [R, C].
  virtual Status add_layer_norm(Tensor& residual, const Tensor& delta, const Tensor& weight, const Tensor& bias,
                                float eps, Tensor& out) {
    (void)residual, (void)delta, (void)weight, (void)bias, (void)eps, (void)out;
    return missing_op("add_layer_norm");
  }
  // x *= factor, element-wise in place; x F32 or compute_dtype() (Gemma's embedding × √hidden).
  virtual Status scale(Tensor& x, float factor) {
    (void)x, (void)factor;
    return missing_op("scale");
  }
  // x = cap · tanh(x / cap), element-wise in place, cap > 0; x F32 or compute_dtype() (final logit
  // soft-cap).
  virtual Status softcap(Tensor& x, float cap) {
    (void)x, (void)cap;
    return missing_op("softcap");
  }

  // ---- ops of the lightning hybrid family (MiniMax; contracts above the class) ----
  virtual Status lightning_attention(const LightningAttentionArgs&) { return missing_op("lightning_attention"); }
  virtual Status moe_route(const MoeRouteArgs&) { return missing_op("moe_route"); }
  virtual Status moe_experts(const MoeExpertsArgs&) { return missing_op("moe_experts"); }
  // Allocates now the op scratch moe_experts needs for up to `tokens` rows of this shape (gate_up
  // [experts, 2·inter, hidden], top-k), so that the memory plan counts it and no step grows it;
  // returns the backend's op scratch in bytes afterwards (0 for a backend whose ops need none).
  virtual StatusOr<size_t> reserve_moe_workspace(int64_t tokens, int top_k, int64_t experts, int64_t hidden,
                                                 int64_t inter) {
    (void)tokens, (void)top_k, (void)experts, (void)hidden, (void)inter;
    return size_t{0};
  }

  // ---- multi-head latent attention (DeepSeek; contracts above the class) ----
  virtual Status head_matmul(const HeadMatmulArgs&) { return missing_op("head_matmul"); }
  virtual Status append_latent(const AppendLatentArgs&) { return missing_op("append_latent"); }
  virtual Status latent_attention(const LatentAttentionArgs&) { return missing_op("latent_attention"); }

  // ---- graphs: whether capture_graph works here (CUDA: yes; CPU: no, the runtime runs eagerly) ----
  virtual bool supports_graphs() const { return false; }
  // Records, without running them, the launches that `issue` makes through this backend's ops.
  // `issue` must not upload, download, synchronize or allocate, and every scratch buffer an op needs
  // must already be large enough (run the same launches eagerly once first): such a call fails the
  // capture. On any failure no capture remains active and the backend works as before.
  virtual StatusOr<std::unique_ptr<BackendGraph>> capture_graph(const std::function<Status()>& issue) {
    (void)issue;
    return unimplemented(std::string(name()) + " backend: graph capture is not supported");
  }

  // ---- DSA ops (contracts above the class); UNIMPLEMENTED on a backend that has no DSA path ----
  virtual Status dsa_index_keys(const DsaIndexKeysArgs&) { return missing_op("dsa_index_keys"); }
  virtual Status dsa_index_scores(const DsaIndexScoresArgs&) { return missing_op("dsa_index_scores"); }
  virtual Status dsa_topk(const DsaTopkArgs&) { return missing_op("dsa_topk"); }
  virtual Status dsa_sparse_attention(const DsaSparseAttentionArgs&) { return missing_op("dsa_sparse_attention"); }
  // Allocates now the op scratch that the DSA ops need for blocks of each of these shapes (a graph's
  // padded decode steps), so that running or capturing them later never grows it; returns the
  // scratch's size in bytes afterwards (0 for a backend whose ops need none), for the memory plan.
  virtual StatusOr<size_t> reserve_dsa_workspace(std::span<const DsaWorkspaceShape> shapes) {
    (void)shapes;
    return size_t{0};
  }

  // ---- sampling on the device (the order of operations is in model/sampling/sampling_row.h) ----
  // Whether sample() takes `row` over a vocabulary of `vocab_size` (a backend may lack a filter or
  // bound num_logprobs). The base takes none: the runtime then returns logits to the host.
  virtual bool supports_sampling(const SamplingRow& row, int vocab_size) const {
    (void)row, (void)vocab_size;
    return false;
  }
  // Samples row r of logits [R, vocab] F32 under rows[r] into out[r] (R == rows.size() == out.size(),
  // every row supported): exactly what the reference (model/sampling/reference_sampler.h) gives for
  // the same inputs, up to the order of floating-point sums (the CUDA op states where that can move
  // a draw). Only ids and the asked logprobs come back to the host. The logits are the op's scratch:
  // bias, masks and penalties may be applied to them in place. Waits for its result.
  virtual Status sample(Tensor& logits, std::span<const SamplingRow> rows, std::span<RowSample> out) {
    (void)logits, (void)rows, (void)out;
    return missing_op("sample");
  }

 private:
  Status missing_op(std::string_view op) const {
    return unimplemented(std::string(name()) + " backend: " + std::string(op) + " is not implemented");
  }
};

// "cpu", "cuda", or "auto" (cuda when built with it and a device is present, else cpu).
// UNIMPLEMENTED for "cuda" in a build without LONGBOW_CUDA; UNAVAILABLE when no device is found.
StatusOr<std::unique_ptr<Backend>> create_backend(std::string_view name);

}  // namespace longbow
