// DeepSeek Sparse Attention (DSA) reference: the lightning indexer in exact fp32 and in an FP8 mode
// that emulates the GPU kernels bit for bit, exact top-k, and sparse attention (DESIGN §4, §5).
//
// Plain functions over host memory, fp32 (sums that decide accuracy in double). They are the
// reference for kernels/dsa and for the runtime's DSA layers.
//
// Shapes: H index heads of head_dim D (a power of two, <= 128 on the GPU); R the rope_dim rotated
// leading dims (half-split pairs (i, i + R/2)). The FP8 index cache holds, per 64-token page,
// [64 × D e4m3 values][64 × fp32 scales] (dsa_index_page_bytes(D) bytes); a token at physical slot
// p = page·64 + off has its values at page·page_bytes + off·D and its scale at page·page_bytes +
// 64·D + 4·off. The fp32 ("exact") index cache is [pages][64][D] fp32.
//
// FP8 path of a vector x of D values (q per head, or k): y = hadamard(x)·D^-0.5 (butterflies in the
// fixed order of hadamard_transform, then one multiply), s = dsa_fp8_scale(max|y|), bytes =
// e4m3(y / s). q's scale folds into its head weight; k's scale multiplies after the head sum.
#pragma once

#include <cstddef>
#include <cstdint>

namespace longbow::cpu {

constexpr int kDsaPageSize = 64;  // tokens per page, shared with the K/V pools
constexpr float kDsaNormEps = 1e-6f;

// OCP FP8 E4M3 (bias 7, max 448, 0x7F/0xFF NaN, no infinities). Round to nearest even; finite
// values beyond ±448 and ±inf saturate to ±448; NaN encodes as 0x7F. Matches cvt.rn.satfinite.
uint8_t fp8_e4m3_from_float(float x);
float fp8_e4m3_to_float(uint8_t bits);

// The power-of-two block scale 2^ceil(log2(max(amax, 1e-4) / 448)), with the division rounded to
// fp32 and the ceiling taken exactly from its bits (as the GPU does).
float dsa_fp8_scale(float amax);

// In-place unnormalised fast Walsh–Hadamard transform of n = 2^m values: stages h = 1, 2, 4, ..., n/2,
// each pair (j, j + h) with bit h of j clear becoming (x[j] + x[j+h], x[j] - x[j+h]) in fp32.
void hadamard_transform(float* x, int n);

// Bytes of one index-cache page for head_dim D: 64·(D + 4).
constexpr size_t dsa_index_page_bytes(int head_dim) {
  return static_cast<size_t>(kDsaPageSize) * (static_cast<size_t>(head_dim) + 4);
}

// y = LayerNorm(x) per row (statistics in double, biased variance, eps kDsaNormEps); x, y [rows, dim].
void dsa_layer_norm(const float* x, int64_t rows, int dim, const float* gamma, const float* beta, float* y);

// In place: half-split RoPE on the leading rope_dim dims of every head of x [rows, heads, head_dim];
// pair (i, i + rope_dim/2) rotated by angle positions[row] · inv_freq[i], cos and sin scaled by
// attention_scaling (the model's RoPE table, as Backend::rope).
void dsa_rope(float* x, int64_t rows, int heads, int head_dim, int rope_dim, const int32_t* positions,
              const float* inv_freq, float attention_scaling);

// The FP8 path of one vector x [n] (n a power of two): writes n e4m3 bytes, returns the scale.
float dsa_quantize_fp8(const float* x, int n, uint8_t* out);

// The index-key path for tokens whose projection output is k_raw [tokens, D]: LayerNorm, RoPE at
// positions[t], then either FP8 (quantized into fp8_cache at slots[t]) or exact (fp32 into
// f32_cache at slots[t]); a null cache pointer skips that form.
struct DsaIndexKeyArgs {
  const float* k_raw = nullptr;  // [tokens, head_dim]
  const float* gamma = nullptr;  // [head_dim] LayerNorm weight
  const float* beta = nullptr;   // [head_dim] LayerNorm bias
  const int32_t* positions = nullptr;  // [tokens]
  const int32_t* slots = nullptr;      // [tokens] physical slots; -1: not stored (a padding row)
  const float* inv_freq = nullptr;     // [rope_dim / 2]
  float attention_scaling = 1.0f;
  int64_t tokens = 0;
  int head_dim = 0;
  int rope_dim = 0;
  uint8_t* fp8_cache = nullptr;  // pages × dsa_index_page_bytes(head_dim)
  float* f32_cache = nullptr;    // [pages, 64, head_dim]
};
void dsa_write_index_keys(const DsaIndexKeyArgs& args);

// The query side for rows whose q is [rows, heads, D] after RoPE and w_raw [rows, heads] is
// weights_proj(x): w_eff = w_raw · heads^-0.5 · D^-0.5 (· q's FP8 scale when q_fp8 is non-null, in
// which case q_fp8 [rows, heads, D] receives the quantized q).
void dsa_prepare_query(const float* q, const float* w_raw, int64_t rows, int heads, int head_dim, uint8_t* q_fp8,
                       float* w_eff);

// Index scores over a paged index cache. Sequence s owns rows [query_start[s], query_start[s+1]);
// its rows are the last q_len positions of its context_lens[s] tokens, so row i of s sits at
// position p = context_lens[s] - q_len + i and scores keys j in [0, p]:
//   logits[row][j] = Σ_h w_eff[row][h] · ReLU(q[row][h] · k[j])            (exact)
//   logits[row][j] = k_scale[j] · Σ_h w_eff[row][h] · ReLU(q8[row][h] · k8[j])  (FP8, decoded e4m3)
// Entries j > p of each row (up to logits_stride) are set to -inf.
struct DsaIndexLogitsArgs {
  const float* q_f32 = nullptr;     // [rows, heads, D] (exact mode), or
  const uint8_t* q_fp8 = nullptr;   // [rows, heads, D] (FP8 mode)
  const float* w_eff = nullptr;     // [rows, heads]
  const float* f32_cache = nullptr;    // exact mode
  const uint8_t* fp8_cache = nullptr;  // FP8 mode
  const int32_t* query_start = nullptr;   // [seqs + 1]
  const int32_t* context_lens = nullptr;  // [seqs]
  const int32_t* block_tables = nullptr;  // [seqs, max_pages]
  int seqs = 0;
  int max_pages = 0;
  int heads = 0;
  int head_dim = 0;
  float* logits = nullptr;  // [rows, logits_stride]
  int64_t logits_stride = 0;
};
void dsa_index_logits(const DsaIndexLogitsArgs& args);

// Exact top-k of scores[0, len): the k largest, ties broken by lower index, written in ascending
// index order to out[0, k), padded with -1 when len < k (len 0: all -1, scores unread). Scores must
// not be NaN (-inf is fine).
void dsa_topk(const float* scores, int64_t len, int k, int32_t* out);

// Sparse attention: row t (of sequence s, rows as in DsaIndexLogitsArgs) attends with every query
// head to exactly the logical tokens indices[t][0..topk) that are >= 0 (each selected once; all
// heads of a row share the selection), through sequence s's block table. Softmax over that set;
// a row with no valid index outputs 0. GQA: head h reads KV head h / (q_heads / kv_heads).
struct DsaSparseAttentionArgs {
  const float* q = nullptr;        // [rows, q_heads, D]
  const float* k_cache = nullptr;  // [pages, 64, kv_heads, D]
  const float* v_cache = nullptr;
  const int32_t* indices = nullptr;  // [rows, topk] logical token indices or -1
  const int32_t* query_start = nullptr;
  const int32_t* block_tables = nullptr;
  int seqs = 0;
  int max_pages = 0;
  int topk = 0;
  int q_heads = 0;
  int kv_heads = 0;
  int head_dim = 0;
  float scale = 0.0f;
  float* out = nullptr;  // [rows, q_heads, D]
};
void dsa_sparse_attention(const DsaSparseAttentionArgs& args);

}  // namespace longbow::cpu
