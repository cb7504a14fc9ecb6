#include "tests/unit/runtime/tiny_model.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>

#include "model/backend/cpu/cpu_dsa.h"
#include "model/config/rope.h"
#include "model/runtime/transformer.h"
#include "model/weights/safetensors_writer.h"

namespace longbow::testing {

ModelConfig tiny_config(TinyFamily family) {
  ModelConfig c;
  c.vocab_size = 97;
  c.hidden_size = 64;
  c.intermediate_size = 96;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 24;
  c.max_position_embeddings = 1024;
  c.rms_norm_eps = 1e-5;
  c.rope.theta = 10000.0;
  c.rope.rotary_dim = c.head_dim;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  switch (family) {
    case TinyFamily::kLlama:
      c.model_type = "llama";
      c.o_bias = true;
      c.mlp_bias = true;
      c.rope.type = RopeType::kLlama3;
      c.rope.factor = 8.0;
      c.rope.original_max_position_embeddings = 64;
      break;
    case TinyFamily::kQwen2:
      c.model_type = "qwen2";
      c.qkv_bias = true;
      c.rope.type = RopeType::kYarn;  // attention_scaling != 1
      c.rope.factor = 4.0;
      c.rope.original_max_position_embeddings = 64;
      break;
    case TinyFamily::kQwen3:
      c.model_type = "qwen3";
      c.qk_norm = true;
      c.tie_word_embeddings = true;
      c.rope.theta = 1000000.0;
      break;
    case TinyFamily::kMistral:
      c.model_type = "mistral";
      c.sliding_window = 16;
      break;
    case TinyFamily::kLlamaDsa:
      c = with_dsa(tiny_config(TinyFamily::kLlama), 16);
      break;
  }
  return c;
}

ModelConfig with_dsa(ModelConfig config, int topk) {
  DsaIndexerConfig dsa;
  dsa.n_heads = 4;
  dsa.head_dim = 32;
  dsa.topk = topk;
  dsa.rope_dim = 16;
  config.dsa = dsa;
  return config;
}

ModelConfig tiny_minimax_config() {
  const nlohmann::json j = {
      {"model_type", "minimax"}, {"vocab_size", 97}, {"hidden_size", 48}, {"intermediate_size", 40},
      {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 16},
      {"max_position_embeddings", 1024},
      {"layer_types", {"linear_attention", "linear_attention", "full_attention", "linear_attention"}},
      {"block_size", 16}, {"num_local_experts", 4}, {"num_experts_per_tok", 2},
      {"full_attn_alpha_factor", 1.3}, {"full_attn_beta_factor", 0.9}, {"linear_attn_alpha_factor", 1.7},
      {"linear_attn_beta_factor", 0.8}, {"mlp_alpha_factor", 1.5}, {"mlp_beta_factor", 1.1},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 1000000.0}, {"partial_rotary_factor", 0.5}}}};
  StatusOr<ModelConfig> config = parse_model_config(j);
  EXPECT_TRUE(config.ok()) << config.status().to_string();
  return config.ok() ? *config : ModelConfig{};
}

ModelConfig tiny_deepseek_config(const nlohmann::json& overrides) {
  nlohmann::json j = {
      {"model_type", "deepseek_v3"}, {"vocab_size", 97}, {"hidden_size", 48}, {"intermediate_size", 40},
      {"moe_intermediate_size", 20}, {"num_hidden_layers", 3}, {"num_attention_heads", 4},
      {"num_key_value_heads", 4}, {"max_position_embeddings", 1024}, {"q_lora_rank", 24}, {"kv_lora_rank", 32},
      {"qk_nope_head_dim", 16}, {"qk_rope_head_dim", 8}, {"v_head_dim", 12}, {"n_routed_experts", 8},
      {"n_shared_experts", 1}, {"num_experts_per_tok", 3}, {"n_group", 4}, {"topk_group", 2},
      {"routed_scaling_factor", 2.5}, {"first_k_dense_replace", 1}, {"norm_topk_prob", true},
      {"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64},
                        {"beta_fast", 32}, {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}}},
      {"rope_theta", 10000.0}};
  j.update(overrides);
  StatusOr<ModelConfig> config = parse_model_config(j);
  EXPECT_TRUE(config.ok()) << config.status().to_string();
  return config.ok() ? *config : ModelConfig{};
}

void write_tiny_checkpoint(const ModelConfig& config, const std::string& dir, DType dtype, uint32_t seed) {
  write_tiny_tensors(expected_tensors(config), dir, dtype, seed);
}

void write_tiny_tensors(const std::vector<TensorSpec>& unordered, const std::string& dir, DType dtype, uint32_t seed) {
  std::vector<TensorSpec> specs = unordered;
  std::stable_partition(specs.begin(), specs.end(),
                        [](const TensorSpec& spec) { return spec.name.find(".indexer.") == std::string::npos; });
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  SafetensorsWriter writer;
  for (const TensorSpec& spec : specs) {
    int64_t n = 1;
    for (int64_t d : spec.shape) n *= d;
    std::vector<float> values(static_cast<size_t>(n));
    bool is_norm = spec.name.find("norm") != std::string::npos;
    bool is_bias = spec.name.ends_with(".bias");
    // Matrices scaled by 1/sqrt(fan_in) keep activations O(1) through the layers.
    float scale = is_norm || is_bias ? 0.1f : 1.0f / std::sqrt(static_cast<float>(spec.shape.back()));
    if (spec.name == "model.embed_tokens.weight") scale = 1.0f;
    for (float& v : values) v = (is_norm && !is_bias ? 1.0f : 0.0f) + scale * normal(rng);
    Status st = writer.add_float(spec.name, dtype, spec.shape, values);
    ASSERT_TRUE(st.ok()) << st.to_string();
  }
  Status st = writer.write(dir + "/model.safetensors");
  ASSERT_TRUE(st.ok()) << st.to_string();
}

namespace {

using Matrix = std::vector<double>;  // row-major

struct Reference {
  const ModelConfig& c;
  const Checkpoint& ck;

  std::vector<float> weight(const std::string& name) const {
    StatusOr<TensorView> view = ck.tensor(name);
    EXPECT_TRUE(view.ok()) << view.status().to_string();
    return view.ok() ? to_float32(*view) : std::vector<float>{};
  }
  std::string layer(int l, const std::string& suffix) const {
    return "model.layers." + std::to_string(l) + "." + suffix;
  }

  // x [n, in] · W[out, in]ᵀ + b
  Matrix linear(const Matrix& x, int n, const std::string& w_name, const std::string& b_name, bool has_bias) const {
    std::vector<float> w = weight(w_name);
    std::vector<float> b = has_bias ? weight(b_name) : std::vector<float>{};
    size_t in = x.size() / static_cast<size_t>(n);
    size_t out = w.size() / in;
    Matrix y(static_cast<size_t>(n) * out);
    for (size_t r = 0; r < static_cast<size_t>(n); ++r) {
      for (size_t o = 0; o < out; ++o) {
        double sum = has_bias ? b[o] : 0.0;
        for (size_t i = 0; i < in; ++i) sum += x[r * in + i] * w[o * in + i];
        y[r * out + o] = sum;
      }
    }
    return y;
  }

  // RMSNorm over consecutive groups of `dim` values (epsilon: the config's, or `eps`).
  Matrix rms_norm(const Matrix& x, size_t dim, const std::string& w_name, double eps = -1.0) const {
    if (eps < 0.0) eps = c.rms_norm_eps;
    std::vector<float> w = weight(w_name);
    Matrix y(x.size());
    for (size_t r = 0; r < x.size() / dim; ++r) {
      double ms = 0.0;
      for (size_t i = 0; i < dim; ++i) ms += x[r * dim + i] * x[r * dim + i];
      double inv = 1.0 / std::sqrt(ms / static_cast<double>(dim) + eps);
      for (size_t i = 0; i < dim; ++i) y[r * dim + i] = x[r * dim + i] * inv * w[i];
    }
    return y;
  }

  void rope(Matrix& x, int n, int heads, const RopeTable& table) const {
    size_t half = table.inv_freq.size();
    size_t d = static_cast<size_t>(c.head_dim);
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < heads; ++h) {
        double* v = &x[(static_cast<size_t>(t) * static_cast<size_t>(heads) + static_cast<size_t>(h)) * d];
        for (size_t i = 0; i < half; ++i) {
          double angle = static_cast<float>(t) * table.inv_freq[i];  // fp32 angle, as transformers
          double cs = std::cos(angle) * table.attention_scaling, sn = std::sin(angle) * table.attention_scaling;
          double a = v[i], b = v[i + half];
          v[i] = a * cs - b * sn;
          v[i + half] = b * cs + a * sn;
        }
      }
    }
  }

  // Causal attention; row t attends to `selected[t]` when given (a DSA layer's top-k), else to its
  // window (or every earlier token).
  Matrix attention(const Matrix& q, const Matrix& k, const Matrix& v, int n,
                   const std::vector<std::vector<int>>* selected = nullptr) const {
    const int hq = c.num_attention_heads, hkv = c.num_key_value_heads, d = c.head_dim;
    const int window = c.sliding_window.value_or(0);
    Matrix out(static_cast<size_t>(n * hq * d), 0.0);
    for (int t = 0; t < n; ++t) {
      std::vector<int> keys;
      if (selected != nullptr) {
        keys = (*selected)[static_cast<size_t>(t)];
      } else {
        for (int j = window > 0 ? std::max(0, t - window + 1) : 0; j <= t; ++j) keys.push_back(j);
      }
      for (int h = 0; h < hq; ++h) {
        int g = h / (hq / hkv);
        std::vector<double> p;
        for (int j : keys) {
          double s = 0.0;
          for (int i = 0; i < d; ++i) s += q[static_cast<size_t>((t * hq + h) * d + i)] * k[static_cast<size_t>((j * hkv + g) * d + i)];
          p.push_back(s / std::sqrt(static_cast<double>(d)));
        }
        double top = *std::max_element(p.begin(), p.end()), total = 0.0;
        for (double& x : p) total += (x = std::exp(x - top));
        for (size_t a = 0; a < keys.size(); ++a) {
          for (int i = 0; i < d; ++i) {
            out[static_cast<size_t>((t * hq + h) * d + i)] +=
                p[a] / total * v[static_cast<size_t>((keys[a] * hkv + g) * d + i)];
          }
        }
      }
    }
    return out;
  }

  bool is_dsa_layer(int l) const { return ck.tensor(layer(l, "self_attn.indexer.wk.weight")).ok(); }

  // The keys each row of a DSA layer keeps: its exact top-k of the FP8 index scores (DESIGN §4),
  // through the CPU reference functions on one sequence at slots 0..n-1. `q_latent`: an MLA layer's
  // q LoRA latent, which V3.2's wq_b reads (else wq reads x).
  std::vector<std::vector<int>> dsa_selection(const Matrix& x, int n, int l, const Matrix* q_latent = nullptr) const {
    const DsaIndexerConfig& dsa = *c.dsa;
    const int heads = dsa.n_heads, dim = dsa.head_dim;
    auto to_float = [](const Matrix& m) { return std::vector<float>(m.begin(), m.end()); };
    const std::string p = "self_attn.indexer.";
    std::vector<float> k_raw = to_float(linear(x, n, layer(l, p + "wk.weight"), "", false));
    std::vector<float> q = q_latent != nullptr ? to_float(linear(*q_latent, n, layer(l, p + "wq_b.weight"), "", false))
                                               : to_float(linear(x, n, layer(l, p + "wq.weight"), "", false));
    std::vector<float> w_raw = to_float(linear(x, n, layer(l, p + "weights_proj.weight"), "", false));
    std::vector<float> gamma = weight(layer(l, p + "k_norm.weight")), beta = weight(layer(l, p + "k_norm.bias"));
    RopeConfig index_rope = c.rope;
    index_rope.rotary_dim = dsa.rope_dim;
    RopeTable table = make_rope_table(index_rope);
    std::vector<int32_t> positions(static_cast<size_t>(n));
    for (int t = 0; t < n; ++t) positions[static_cast<size_t>(t)] = t;
    const int pages = (n + cpu::kDsaPageSize - 1) / cpu::kDsaPageSize;
    std::vector<int32_t> table_ids(static_cast<size_t>(pages));
    for (int i = 0; i < pages; ++i) table_ids[static_cast<size_t>(i)] = i;
    std::vector<uint8_t> cache(static_cast<size_t>(pages) * cpu::dsa_index_page_bytes(dim));
    cpu::DsaIndexKeyArgs keys;
    keys.k_raw = k_raw.data();
    keys.gamma = gamma.data();
    keys.beta = beta.data();
    keys.positions = positions.data();
    keys.slots = positions.data();
    keys.inv_freq = table.inv_freq.data();
    keys.attention_scaling = table.attention_scaling;
    keys.tokens = n;
    keys.head_dim = dim;
    keys.rope_dim = dsa.rope_dim;
    keys.fp8_cache = cache.data();
    cpu::dsa_write_index_keys(keys);
    cpu::dsa_rope(q.data(), n, heads, dim, dsa.rope_dim, positions.data(), table.inv_freq.data(),
                  table.attention_scaling);
    std::vector<uint8_t> q8(q.size());
    std::vector<float> w_eff(w_raw.size());
    cpu::dsa_prepare_query(q.data(), w_raw.data(), n, heads, dim, q8.data(), w_eff.data());
    std::vector<std::vector<int>> selected(static_cast<size_t>(n));
    std::vector<float> scores(static_cast<size_t>(n));
    std::vector<int32_t> top(static_cast<size_t>(dsa.topk));
    for (int t = 0; t < n; ++t) {  // row t alone: one sequence of context t + 1 with one query row
      const int32_t query_start[2] = {0, 1}, context = t + 1;
      cpu::DsaIndexLogitsArgs a;
      a.q_fp8 = q8.data() + static_cast<size_t>(t) * static_cast<size_t>(heads * dim);
      a.w_eff = w_eff.data() + static_cast<size_t>(t) * static_cast<size_t>(heads);
      a.fp8_cache = cache.data();
      a.query_start = query_start;
      a.context_lens = &context;
      a.block_tables = table_ids.data();
      a.seqs = 1;
      a.max_pages = pages;
      a.heads = heads;
      a.head_dim = dim;
      a.logits = scores.data();
      a.logits_stride = n;
      cpu::dsa_index_logits(a);
      cpu::dsa_topk(scores.data(), t + 1, dsa.topk, top.data());
      for (int32_t j : top) {
        if (j >= 0) selected[static_cast<size_t>(t)].push_back(j);
      }
    }
    return selected;
  }
};

// [n · vocab] → n rows.
std::vector<std::vector<double>> split_rows(const Matrix& logits, int n, size_t vocab) {
  std::vector<std::vector<double>> rows;
  for (int t = 0; t < n; ++t) {
    rows.emplace_back(logits.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(t) * vocab),
                      logits.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(t + 1) * vocab));
  }
  return rows;
}

}  // namespace

std::vector<int32_t> random_tokens(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = dist(rng);
  return out;
}

std::vector<std::vector<double>> reference_logits(const ModelConfig& c, const Checkpoint& ck,
                                                  const std::vector<int32_t>& tokens) {
  Reference ref{c, ck};
  const int n = static_cast<int>(tokens.size());
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  std::vector<float> embed = ref.weight("model.embed_tokens.weight");
  Matrix h(static_cast<size_t>(n) * hidden);
  for (int t = 0; t < n; ++t) {
    for (size_t i = 0; i < hidden; ++i) h[static_cast<size_t>(t) * hidden + i] = embed[static_cast<size_t>(tokens[static_cast<size_t>(t)]) * hidden + i];
  }
  RopeTable table = make_rope_table(c.rope);
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    Matrix x = ref.rms_norm(h, hidden, ref.layer(l, "input_layernorm.weight"));
    Matrix q = ref.linear(x, n, ref.layer(l, "self_attn.q_proj.weight"), ref.layer(l, "self_attn.q_proj.bias"), c.qkv_bias);
    Matrix k = ref.linear(x, n, ref.layer(l, "self_attn.k_proj.weight"), ref.layer(l, "self_attn.k_proj.bias"), c.qkv_bias);
    Matrix v = ref.linear(x, n, ref.layer(l, "self_attn.v_proj.weight"), ref.layer(l, "self_attn.v_proj.bias"), c.qkv_bias);
    if (c.qk_norm) {
      q = ref.rms_norm(q, static_cast<size_t>(c.head_dim), ref.layer(l, "self_attn.q_norm.weight"));
      k = ref.rms_norm(k, static_cast<size_t>(c.head_dim), ref.layer(l, "self_attn.k_norm.weight"));
    }
    ref.rope(q, n, c.num_attention_heads, table);
    ref.rope(k, n, c.num_key_value_heads, table);
    std::vector<std::vector<int>> selected;
    if (ref.is_dsa_layer(l)) selected = ref.dsa_selection(x, n, l);
    Matrix attn = ref.attention(q, k, v, n, selected.empty() ? nullptr : &selected);
    Matrix o = ref.linear(attn, n, ref.layer(l, "self_attn.o_proj.weight"), ref.layer(l, "self_attn.o_proj.bias"), c.o_bias);
    for (size_t i = 0; i < h.size(); ++i) h[i] += o[i];
    x = ref.rms_norm(h, hidden, ref.layer(l, "post_attention_layernorm.weight"));
    Matrix gate = ref.linear(x, n, ref.layer(l, "mlp.gate_proj.weight"), ref.layer(l, "mlp.gate_proj.bias"), c.mlp_bias);
    Matrix up = ref.linear(x, n, ref.layer(l, "mlp.up_proj.weight"), ref.layer(l, "mlp.up_proj.bias"), c.mlp_bias);
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    Matrix down = ref.linear(gate, n, ref.layer(l, "mlp.down_proj.weight"), ref.layer(l, "mlp.down_proj.bias"), c.mlp_bias);
    for (size_t i = 0; i < h.size(); ++i) h[i] += down[i];
  }
  Matrix x = ref.rms_norm(h, hidden, "model.norm.weight");
  std::string head = c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  Matrix logits = ref.linear(x, n, head, "", false);
  return split_rows(logits, n, static_cast<size_t>(c.vocab_size));
}

// MiniMax, written from transformers' MiniMaxDecoderLayer / MiniMaxLightningAttention /
// MixtralSparseMoeBlock in plain double loops: the linear attention in its quadratic form
// o_t = Σ_{u<=t} e^{−slope·(t−u)} (q_t·k_u) v_u, the MoE token by token.
std::vector<std::vector<double>> minimax_reference_logits(const ModelConfig& c, const Checkpoint& ck,
                                                          const std::vector<int32_t>& tokens) {
  Reference ref{c, ck};
  const int n = static_cast<int>(tokens.size());
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const int heads = c.num_attention_heads, d = c.head_dim, layers = c.num_hidden_layers;
  const int experts = c.moe->num_experts, top_k = c.moe->top_k, inter = c.intermediate_size;
  std::vector<float> embed = ref.weight("model.embed_tokens.weight");
  Matrix h(static_cast<size_t>(n) * hidden);
  for (int t = 0; t < n; ++t) {
    for (size_t i = 0; i < hidden; ++i) h[static_cast<size_t>(t) * hidden + i] = embed[static_cast<size_t>(tokens[static_cast<size_t>(t)]) * hidden + i];
  }
  RopeTable table = make_rope_table(c.rope);
  auto silu = [](double x) { return x / (1.0 + std::exp(-x)); };
  const LightningConfig& lc = *c.lightning;
  for (int l = 0; l < layers; ++l) {
    const Matrix x = ref.rms_norm(h, hidden, ref.layer(l, "input_layernorm.weight"));
    Matrix a;
    double alpha = lc.full_attn_alpha, beta = lc.full_attn_beta;
    if (c.layer_types[static_cast<size_t>(l)] == LayerAttention::kLinear) {
      alpha = lc.linear_attn_alpha;
      beta = lc.linear_attn_beta;
      Matrix qkv = ref.linear(x, n, ref.layer(l, "self_attn.qkv_proj.weight"), "", false);
      for (double& v : qkv) v = silu(v);
      auto at = [&](int t, int head, int part, int i) {  // per head: q, k, v
        return qkv[static_cast<size_t>(((t * heads + head) * 3 + part) * d + i)];
      };
      Matrix o(static_cast<size_t>(n * heads * d), 0.0);
      for (int head = 0; head < heads; ++head) {
        const double slope = std::pow(2.0, -8.0 * (head + 1) / heads) * (1.0 - l / (layers - 1 + 1e-5) + 1e-5);
        for (int t = 0; t < n; ++t) {
          for (int u = 0; u <= t; ++u) {
            double score = 0.0;
            for (int i = 0; i < d; ++i) score += at(t, head, 0, i) * at(u, head, 1, i);
            score *= std::exp(-slope * (t - u));
            for (int i = 0; i < d; ++i) o[static_cast<size_t>((t * heads + head) * d + i)] += score * at(u, head, 2, i);
          }
        }
      }
      o = ref.rms_norm(o, static_cast<size_t>(heads * d), ref.layer(l, "self_attn.norm.weight"), 1e-6);
      Matrix gate = ref.linear(x, n, ref.layer(l, "self_attn.output_gate.weight"), "", false);
      for (size_t i = 0; i < o.size(); ++i) o[i] *= 1.0 / (1.0 + std::exp(-gate[i]));
      a = ref.linear(o, n, ref.layer(l, "self_attn.out_proj.weight"), "", false);
    } else {
      Matrix q = ref.linear(x, n, ref.layer(l, "self_attn.q_proj.weight"), "", false);
      Matrix k = ref.linear(x, n, ref.layer(l, "self_attn.k_proj.weight"), "", false);
      Matrix v = ref.linear(x, n, ref.layer(l, "self_attn.v_proj.weight"), "", false);
      ref.rope(q, n, heads, table);
      ref.rope(k, n, c.num_key_value_heads, table);
      a = ref.linear(ref.attention(q, k, v, n), n, ref.layer(l, "self_attn.o_proj.weight"), "", false);
    }
    for (size_t i = 0; i < h.size(); ++i) h[i] = alpha * x[i] + beta * a[i];
    const Matrix y = ref.rms_norm(h, hidden, ref.layer(l, "post_attention_layernorm.weight"));
    const Matrix router = ref.linear(y, n, ref.layer(l, "mlp.gate.weight"), "", false);
    const std::vector<float> gate_up = ref.weight(ref.layer(l, "mlp.experts.gate_up_proj"));
    const std::vector<float> down = ref.weight(ref.layer(l, "mlp.experts.down_proj"));
    for (int t = 0; t < n; ++t) {
      std::vector<double> p(router.begin() + t * experts, router.begin() + (t + 1) * experts);
      const double top = *std::max_element(p.begin(), p.end());
      double z = 0.0;
      for (double& v : p) z += (v = std::exp(v - top));
      std::vector<int> order(static_cast<size_t>(experts));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&p](int e1, int e2) { return p[static_cast<size_t>(e1)] > p[static_cast<size_t>(e2)]; });
      double chosen = 0.0;
      for (int j = 0; j < top_k; ++j) chosen += p[static_cast<size_t>(order[static_cast<size_t>(j)])];
      std::vector<double> m(hidden, 0.0);
      for (int j = 0; j < top_k; ++j) {
        const int e = order[static_cast<size_t>(j)];
        const double w = p[static_cast<size_t>(e)] / chosen;
        std::vector<double> act(static_cast<size_t>(inter));
        for (int i = 0; i < inter; ++i) {
          double g = 0.0, up = 0.0;
          for (size_t col = 0; col < hidden; ++col) {
            const double xv = y[static_cast<size_t>(t) * hidden + col];
            g += gate_up[(static_cast<size_t>(e * 2 * inter + i)) * hidden + col] * xv;
            up += gate_up[(static_cast<size_t>(e * 2 * inter + inter + i)) * hidden + col] * xv;
          }
          act[static_cast<size_t>(i)] = silu(g) * up;
        }
        for (size_t o = 0; o < hidden; ++o) {
          double sum = 0.0;
          for (int i = 0; i < inter; ++i) sum += down[(static_cast<size_t>(e) * hidden + o) * static_cast<size_t>(inter) + static_cast<size_t>(i)] * act[static_cast<size_t>(i)];
          m[o] += w * sum;
        }
      }
      for (size_t o = 0; o < hidden; ++o) {
        const size_t i = static_cast<size_t>(t) * hidden + o;
        h[i] = lc.mlp_alpha * y[i] + lc.mlp_beta * m[o];
      }
    }
  }
  const Matrix x = ref.rms_norm(h, hidden, "model.norm.weight");
  const Matrix logits = ref.linear(x, n, "lm_head.weight", "", false);
  return split_rows(logits, n, static_cast<size_t>(c.vocab_size));
}

// DeepSeek-V3, written from transformers' DeepseekV3Attention (q LoRA, compressed KV, kv_b_proj
// expansion, interleaved RoPE, YaRN mscale² in the softmax scale) and DeepseekV3MoE (sigmoid router
// with the correction bias for the choice only, group-limited with −∞ masking, norm + 1e-20, scaled,
// plus the shared experts), in plain double loops.
std::vector<std::vector<double>> deepseek_reference_logits(const ModelConfig& c, const Checkpoint& ck,
                                                           const std::vector<int32_t>& tokens) {
  Reference ref{c, ck};
  const int n = static_cast<int>(tokens.size());
  const size_t hidden = static_cast<size_t>(c.hidden_size);
  const MlaConfig& mla = *c.mla;
  const MoeConfig& moe = *c.moe;
  const int heads = c.num_attention_heads, nope = mla.nope_dim, rope = mla.rope_dim, vd = mla.v_dim;
  const int qk = nope + rope, latent = mla.kv_lora_rank;
  std::vector<float> embed = ref.weight("model.embed_tokens.weight");
  Matrix h(static_cast<size_t>(n) * hidden);
  for (int t = 0; t < n; ++t) {
    for (size_t i = 0; i < hidden; ++i) h[static_cast<size_t>(t) * hidden + i] = embed[static_cast<size_t>(tokens[static_cast<size_t>(t)]) * hidden + i];
  }
  const RopeTable table = make_rope_table(c.rope);
  double scale = 1.0 / std::sqrt(static_cast<double>(qk));
  if (c.rope.mscale_all_dim.value_or(0.0) != 0.0 && c.rope.factor > 1.0) {
    const double m = 0.1 * *c.rope.mscale_all_dim * std::log(c.rope.factor) + 1.0;
    scale *= m * m;
  }
  // RoPE on x[0, rope): interleaved pairs (2i, 2i + 1) or half-split pairs (i, i + rope/2).
  auto rotate = [&](double* x, int pos) {
    for (int i = 0; i < rope / 2; ++i) {
      const double angle = static_cast<float>(pos) * table.inv_freq[static_cast<size_t>(i)];
      const double cs = std::cos(angle) * table.attention_scaling, sn = std::sin(angle) * table.attention_scaling;
      double& a = mla.rope_interleave ? x[2 * i] : x[i];
      double& b = mla.rope_interleave ? x[2 * i + 1] : x[i + rope / 2];
      const double a0 = a, b0 = b;
      a = a0 * cs - b0 * sn;
      b = b0 * cs + a0 * sn;
    }
  };
  auto silu = [](double x) { return x / (1.0 + std::exp(-x)); };
  // down(silu(gate(y)) · up(y)) for one token's row y, weights [I, H] / [H, I] as float arrays.
  auto mlp = [&](const double* y, const float* gate, const float* up, const float* down, int inter, double w,
                 double* out) {
    std::vector<double> act(static_cast<size_t>(inter));
    for (int i = 0; i < inter; ++i) {
      double g = 0.0, u = 0.0;
      for (size_t col = 0; col < hidden; ++col) {
        g += gate[static_cast<size_t>(i) * hidden + col] * y[col];
        u += up[static_cast<size_t>(i) * hidden + col] * y[col];
      }
      act[static_cast<size_t>(i)] = silu(g) * u;
    }
    for (size_t o = 0; o < hidden; ++o) {
      double sum = 0.0;
      for (int i = 0; i < inter; ++i) sum += down[o * static_cast<size_t>(inter) + static_cast<size_t>(i)] * act[static_cast<size_t>(i)];
      out[o] += w * sum;
    }
  };
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const Matrix x = ref.rms_norm(h, hidden, ref.layer(l, "input_layernorm.weight"));
    Matrix q;
    std::vector<std::vector<int>> selected;  // a V3.2 layer's selection per row (empty: causal)
    if (mla.q_lora_rank > 0) {
      const Matrix qa = ref.rms_norm(ref.linear(x, n, ref.layer(l, "self_attn.q_a_proj.weight"), "", false),
                                     static_cast<size_t>(mla.q_lora_rank), ref.layer(l, "self_attn.q_a_layernorm.weight"), 1e-6);
      q = ref.linear(qa, n, ref.layer(l, "self_attn.q_b_proj.weight"), "", false);
      if (ref.is_dsa_layer(l)) selected = ref.dsa_selection(x, n, l, &qa);
    } else {
      q = ref.linear(x, n, ref.layer(l, "self_attn.q_proj.weight"), "", false);
    }
    const Matrix kv_a = ref.linear(x, n, ref.layer(l, "self_attn.kv_a_proj_with_mqa.weight"), "", false);
    Matrix c_kv(static_cast<size_t>(n * latent)), k_rot(static_cast<size_t>(n * rope));
    for (int t = 0; t < n; ++t) {
      for (int i = 0; i < latent; ++i) c_kv[static_cast<size_t>(t * latent + i)] = kv_a[static_cast<size_t>(t * (latent + rope) + i)];
      for (int i = 0; i < rope; ++i) k_rot[static_cast<size_t>(t * rope + i)] = kv_a[static_cast<size_t>(t * (latent + rope) + latent + i)];
      rotate(&k_rot[static_cast<size_t>(t * rope)], t);
      for (int hd = 0; hd < heads; ++hd) rotate(&q[static_cast<size_t>((t * heads + hd) * qk + nope)], t);
    }
    c_kv = ref.rms_norm(c_kv, static_cast<size_t>(latent), ref.layer(l, "self_attn.kv_a_layernorm.weight"), 1e-6);
    const Matrix kv = ref.linear(c_kv, n, ref.layer(l, "self_attn.kv_b_proj.weight"), "", false);  // [n, H·(nope + v)]
    Matrix o(static_cast<size_t>(n * heads * vd), 0.0);
    for (int t = 0; t < n; ++t) {
      for (int hd = 0; hd < heads; ++hd) {
        const double* qh = &q[static_cast<size_t>((t * heads + hd) * qk)];
        std::vector<int> keys;
        if (!selected.empty()) {
          keys = selected[static_cast<size_t>(t)];
        } else {
          for (int j = 0; j <= t; ++j) keys.push_back(j);
        }
        std::vector<double> p;
        for (int j : keys) {
          const double* kh = &kv[static_cast<size_t>((j * heads + hd) * (nope + vd))];
          double s = 0.0;
          for (int i = 0; i < nope; ++i) s += qh[i] * kh[i];
          for (int i = 0; i < rope; ++i) s += qh[nope + i] * k_rot[static_cast<size_t>(j * rope + i)];
          p.push_back(s * scale);
        }
        const double top = *std::max_element(p.begin(), p.end());
        double total = 0.0;
        for (double& v : p) total += (v = std::exp(v - top));
        for (size_t a = 0; a < keys.size(); ++a) {
          const double* vh = &kv[static_cast<size_t>((keys[a] * heads + hd) * (nope + vd) + nope)];
          for (int i = 0; i < vd; ++i) o[static_cast<size_t>((t * heads + hd) * vd + i)] += p[a] / total * vh[i];
        }
      }
    }
    const Matrix a = ref.linear(o, n, ref.layer(l, "self_attn.o_proj.weight"), "", false);
    for (size_t i = 0; i < h.size(); ++i) h[i] += a[i];
    const Matrix y = ref.rms_norm(h, hidden, ref.layer(l, "post_attention_layernorm.weight"));
    if (moe.dense_layers[static_cast<size_t>(l)]) {
      const std::vector<float> gate = ref.weight(ref.layer(l, "mlp.gate_proj.weight"));
      const std::vector<float> up = ref.weight(ref.layer(l, "mlp.up_proj.weight"));
      const std::vector<float> down = ref.weight(ref.layer(l, "mlp.down_proj.weight"));
      for (int t = 0; t < n; ++t) mlp(&y[static_cast<size_t>(t) * hidden], gate.data(), up.data(), down.data(), c.intermediate_size, 1.0, &h[static_cast<size_t>(t) * hidden]);
      continue;
    }
    const int experts = moe.num_experts, inter = moe.intermediate_size, group_size = experts / moe.num_groups;
    const Matrix router = ref.linear(y, n, ref.layer(l, "mlp.gate.weight"), "", false);
    const std::vector<float> bias = ref.weight(ref.layer(l, "mlp.gate.e_score_correction_bias"));
    const std::vector<float> gate_up = ref.weight(ref.layer(l, "mlp.experts.gate_up_proj"));
    const std::vector<float> down = ref.weight(ref.layer(l, "mlp.experts.down_proj"));
    const int shared_inter = inter * moe.num_shared_experts;
    const std::vector<float> sg = ref.weight(ref.layer(l, "mlp.shared_experts.gate_proj.weight"));
    const std::vector<float> su = ref.weight(ref.layer(l, "mlp.shared_experts.up_proj.weight"));
    const std::vector<float> sd = ref.weight(ref.layer(l, "mlp.shared_experts.down_proj.weight"));
    for (int t = 0; t < n; ++t) {
      std::vector<double> s(static_cast<size_t>(experts)), choice(static_cast<size_t>(experts));
      for (int e = 0; e < experts; ++e) {
        s[static_cast<size_t>(e)] = 1.0 / (1.0 + std::exp(-router[static_cast<size_t>(t * experts + e)]));
        choice[static_cast<size_t>(e)] = s[static_cast<size_t>(e)] + bias[static_cast<size_t>(e)];
      }
      std::vector<std::pair<double, int>> groups;
      for (int g = 0; g < moe.num_groups; ++g) {
        std::vector<double> m(choice.begin() + g * group_size, choice.begin() + (g + 1) * group_size);
        std::sort(m.rbegin(), m.rend());
        groups.push_back({m[0] + m[1], g});
      }
      std::stable_sort(groups.begin(), groups.end(), [](auto a1, auto a2) { return a1.first > a2.first; });
      std::vector<double> masked(static_cast<size_t>(experts), -std::numeric_limits<double>::infinity());
      for (int j = 0; j < moe.topk_groups; ++j) {
        for (int e = groups[static_cast<size_t>(j)].second * group_size; e < (groups[static_cast<size_t>(j)].second + 1) * group_size; ++e) masked[static_cast<size_t>(e)] = choice[static_cast<size_t>(e)];
      }
      std::vector<int> order(static_cast<size_t>(experts));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&masked](int e1, int e2) { return masked[static_cast<size_t>(e1)] > masked[static_cast<size_t>(e2)]; });
      double chosen = 0.0;
      for (int j = 0; j < moe.top_k; ++j) chosen += s[static_cast<size_t>(order[static_cast<size_t>(j)])];
      double* out = &h[static_cast<size_t>(t) * hidden];
      const double* yt = &y[static_cast<size_t>(t) * hidden];
      for (int j = 0; j < moe.top_k; ++j) {
        const int e = order[static_cast<size_t>(j)];
        const double w = s[static_cast<size_t>(e)] / (moe.renormalize ? chosen + 1e-20 : 1.0) * moe.scaling;
        const float* g = gate_up.data() + static_cast<size_t>(e) * 2 * static_cast<size_t>(inter) * hidden;
        mlp(yt, g, g + static_cast<size_t>(inter) * hidden, down.data() + static_cast<size_t>(e) * hidden * static_cast<size_t>(inter), inter, w, out);
      }
      mlp(yt, sg.data(), su.data(), sd.data(), shared_inter, 1.0, out);
    }
  }
  const Matrix x = ref.rms_norm(h, hidden, "model.norm.weight");
  const Matrix logits = ref.linear(x, n, "lm_head.weight", "", false);
  return split_rows(logits, n, static_cast<size_t>(c.vocab_size));
}

CpuModel load_cpu_model(const ModelConfig& config, const std::string& dir, int max_num_seqs) {
  CpuModel m;
  auto checkpoint = Checkpoint::open(dir);
  EXPECT_TRUE(checkpoint.ok()) << checkpoint.status().to_string();
  if (!checkpoint.ok()) return m;
  m.checkpoint = std::move(checkpoint).value();
  m.backend = std::move(create_backend("cpu")).value();
  RuntimeOptions options;
  options.num_kv_pages = 12;
  options.max_batched_tokens = 128;
  options.max_num_seqs = max_num_seqs;
  auto transformer = Transformer::load(config, *m.checkpoint, *m.backend, options);
  EXPECT_TRUE(transformer.ok()) << transformer.status().to_string();
  if (transformer.ok()) m.transformer = std::move(transformer).value();
  return m;
}

void write_per_expert_checkpoint(const std::string& dir, const std::string& out_dir, int experts, int inter,
                                 int hidden) {
  auto stacked = Checkpoint::open(dir);
  ASSERT_TRUE(stacked.ok());
  SafetensorsWriter writer;
  for (const std::string& name : (*stacked)->tensor_names()) {
    auto view = (*stacked)->tensor(name);
    ASSERT_TRUE(view.ok());
    const auto* values = reinterpret_cast<const float*>(view->data);
    const size_t at = name.find(".mlp.experts.");
    if (at == std::string::npos) {
      ASSERT_TRUE(writer.add_float(name, DType::kF32, view->shape, std::span(values, view->num_elements())).ok());
      continue;
    }
    const std::string prefix = name.substr(0, at) + ".mlp.experts.";
    for (int e = 0; e < experts; ++e) {
      if (name.ends_with("gate_up_proj")) {
        const float* gate = values + int64_t{e} * 2 * inter * hidden;
        ASSERT_TRUE(writer.add_float(fmt::format("{}{}.gate_proj.weight", prefix, e), DType::kF32, {inter, hidden},
                                     std::span(gate, inter * hidden)).ok());
        ASSERT_TRUE(writer.add_float(fmt::format("{}{}.up_proj.weight", prefix, e), DType::kF32, {inter, hidden},
                                     std::span(gate + inter * hidden, inter * hidden)).ok());
      } else {
        ASSERT_TRUE(writer.add_float(fmt::format("{}{}.down_proj.weight", prefix, e), DType::kF32, {hidden, inter},
                                     std::span(values + int64_t{e} * hidden * inter, hidden * inter)).ok());
      }
    }
  }
  ASSERT_TRUE(writer.write(out_dir + "/model.safetensors").ok());
}

double relative_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff += (double{a[i]} - b[i]) * (double{a[i]} - b[i]);
    norm += double{b[i]} * b[i];
  }
  return std::isnan(diff) ? INFINITY : std::sqrt(diff / norm);
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::filesystem::path p = std::filesystem::temp_directory_path() /
                            ("longbow-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
  std::filesystem::create_directories(p);
  path_ = p.string();
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace longbow::testing
