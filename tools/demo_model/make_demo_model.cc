// make_demo_model: writes a deterministic random-weight Llama checkpoint in Hugging Face layout
// (config.json, model.safetensors, tokenizer_config.json, generation_config.json) for tests, the
// e2e suite and `longbow serve` without --model. The tokenizer.model beside it comes from spm_train
// (tools/CMakeLists.txt); this tool only reads its vocabulary size and special ids.
//
//   make_demo_model --out DIR --vocab-from-tokenizer DIR/tokenizer.model [--layers 4] [--hidden 256] ...
//
// Weight scales keep activations O(1) through the layers (hidden RMS about 1 to 1.5). The output
// layer is half "bigram": row succ(t) holds the direction of token t's embedding, so the logit of
// succ(t) stands out by several units whenever the last token is t, and half random, so that about
// one greedy step in eight is decided by the context instead. Purely random logits put a near-tie
// at the top every few dozen steps, and the bf16 CUDA backend must reproduce the fp32 CPU backend's
// greedy tokens: measured with transformers 5.17 (bf16 vs fp32, 72 random prompts, 48 greedy
// tokens), i.i.d. weights agreed on ~30% of the sequences, this layout on ~85%, with context
// deciding 13% of the steps.
//
// Layers from --dense-layers on (default 1: layer 0 dense, layers 1-3 DSA) carry a DeepSeek Sparse
// Attention indexer (DESIGN §3): 16 index heads of 64 dims, 32 of them rotated, index_topk 64, so a
// prompt past 64 tokens exercises real top-k selection on the CPU and in the server. Its weights
// (demo_indexer.h) give the index scores a wide gap, so both backends select the same tokens; that
// sets two hidden dimensions of every embedding, which the bigram directions leave out.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"
#include "model/weights/safetensors_writer.h"
#include "tools/demo_model/demo_indexer.h"
#include "tools/demo_model/prng.h"
#include "tools/demo_model/spm_vocab.h"

namespace longbow::demo {
namespace {

using ordered_json = nlohmann::ordered_json;

struct Options {
  std::string out_dir;
  std::string tokenizer;  // --vocab-from-tokenizer
  int vocab_size = 0;     // --vocab, when there is no tokenizer
  int hidden = 256;
  int intermediate = 768;
  int layers = 4;
  int heads = 4;
  int kv_heads = 2;
  int head_dim = 64;
  int max_position = 131072;
  int dense_layers = 1;  // layers [0, dense_layers) have no indexer; >= layers: no DSA at all
  int index_heads = 16;  // the CUDA index-logits kernel takes 16 or 64 heads at head_dim 64
  int index_head_dim = 64;
  int index_topk = 64;
  int index_rope_dim = 32;
  uint64_t seed = 20261122;
  std::string dtype = "bf16";
  int bos_id = 1;
  int eos_id = 2;
};

constexpr char kUsage[] =
    "usage: make_demo_model --out DIR (--vocab-from-tokenizer FILE | --vocab N)\n"
    "         [--hidden 256] [--intermediate 768] [--layers 4] [--heads 4] [--kv-heads 2]\n"
    "         [--head-dim 64] [--max-position 131072] [--seed N] [--dtype bf16|f16|f32]\n"
    "         [--dense-layers 1] [--index-heads 16] [--index-head-dim 64] [--index-topk 64] [--index-rope-dim 32]\n";

StatusOr<Options> parse_flags(int argc, char** argv) {
  Options options;
  std::map<std::string, int*> int_flags = {
      {"--vocab", &options.vocab_size},       {"--hidden", &options.hidden},     {"--intermediate", &options.intermediate},
      {"--layers", &options.layers},          {"--heads", &options.heads},       {"--kv-heads", &options.kv_heads},
      {"--head-dim", &options.head_dim},      {"--max-position", &options.max_position},
      {"--dense-layers", &options.dense_layers},  {"--index-heads", &options.index_heads},
      {"--index-head-dim", &options.index_head_dim},  {"--index-topk", &options.index_topk},
      {"--index-rope-dim", &options.index_rope_dim},
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return invalid_argument(flag + ": missing value");
    const std::string value = argv[++i];
    if (flag == "--out") {
      options.out_dir = value;
    } else if (flag == "--vocab-from-tokenizer") {
      options.tokenizer = value;
    } else if (flag == "--dtype") {
      options.dtype = value;
    } else if (flag == "--seed") {
      options.seed = std::strtoull(value.c_str(), nullptr, 10);
    } else if (auto it = int_flags.find(flag); it != int_flags.end()) {
      char* end = nullptr;
      long parsed = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || parsed <= 0 || parsed > (1 << 30)) {
        return invalid_argument(flag + ": expected a positive integer, got \"" + value + "\"");
      }
      *it->second = static_cast<int>(parsed);
    } else {
      return invalid_argument("unknown flag " + flag);
    }
  }
  if (options.out_dir.empty()) return invalid_argument("--out is required");
  if (options.tokenizer.empty() == (options.vocab_size == 0)) {
    return invalid_argument("give exactly one of --vocab-from-tokenizer and --vocab");
  }
  if (options.heads % options.kv_heads != 0) return invalid_argument("--kv-heads must divide --heads");
  if (options.head_dim % 2 != 0) return invalid_argument("--head-dim must be even");
  if ((options.index_head_dim & (options.index_head_dim - 1)) != 0) {
    return invalid_argument("--index-head-dim must be a power of two");
  }
  if (options.index_rope_dim % 2 != 0 || options.index_rope_dim > options.index_head_dim - 2) {
    return invalid_argument("--index-rope-dim must be even and leave at least 2 unrotated dims of --index-head-dim");
  }
  if (options.hidden < 3) return invalid_argument("--hidden must be at least 3");
  if (options.dtype != "bf16" && options.dtype != "f16" && options.dtype != "f32") {
    return invalid_argument("--dtype: expected bf16, f16 or f32, got \"" + options.dtype + "\"");
  }
  return options;
}

bool has_dsa(const Options& o) { return o.dense_layers < o.layers; }

ordered_json model_config(const Options& o) {
  ordered_json config{
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"vocab_size", o.vocab_size},
      {"hidden_size", o.hidden},
      {"intermediate_size", o.intermediate},
      {"num_hidden_layers", o.layers},
      {"num_attention_heads", o.heads},
      {"num_key_value_heads", o.kv_heads},
      {"head_dim", o.head_dim},
      {"hidden_act", "silu"},
      {"max_position_embeddings", o.max_position},
      {"rms_norm_eps", 1e-5},
      {"rope_theta", 500000.0},
      {"rope_scaling",
       {{"rope_type", "llama3"},
        {"factor", 8.0},
        {"low_freq_factor", 1.0},
        {"high_freq_factor", 4.0},
        {"original_max_position_embeddings", 8192}}},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", false},
      {"bos_token_id", o.bos_id},
      {"eos_token_id", o.eos_id},
      {"initializer_range", 0.02},
      {"torch_dtype", o.dtype == "bf16" ? "bfloat16" : o.dtype == "f16" ? "float16" : "float32"},
  };
  if (has_dsa(o)) {
    config["index_n_heads"] = o.index_heads;
    config["index_head_dim"] = o.index_head_dim;
    config["index_topk"] = o.index_topk;
    config["index_rope_dim"] = o.index_rope_dim;
  }
  return config;
}

// A plain-text chat format: the vocabulary has no chat control tokens.
constexpr char kChatTemplate[] =
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ 'System: ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + '\\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

ordered_json tokenizer_config(const Options& o) {
  return ordered_json{
      {"tokenizer_class", "LlamaTokenizer"},
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"unk_token", "<unk>"},
      {"pad_token", nullptr},
      {"model_max_length", o.max_position},
      {"clean_up_tokenization_spaces", false},
      {"chat_template", kChatTemplate},
  };
}

ordered_json generation_config(const Options& o) {
  return ordered_json{{"bos_token_id", o.bos_id}, {"eos_token_id", o.eos_id}, {"do_sample", false}};
}

Status write_json(const std::string& path, const ordered_json& value) {
  std::ofstream out(path);
  out << value.dump(2) << "\n";
  out.close();
  if (!out) return data_loss(path + ": write failed");
  return Status::Ok();
}

size_t numel_of(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

Status add_normal(SafetensorsWriter& writer, DType dtype, uint64_t seed, const std::string& name,
                  std::vector<int64_t> shape, double mean, double std) {
  std::vector<float> values = normals(seed, name, numel_of(shape), mean, std);
  return writer.add_float(name, dtype, std::move(shape), values);
}

constexpr int64_t kFirstOrdinary = 3;  // sentencepiece's <unk>, <s>, </s> come first

// The bigram successor of every token: a random permutation of the ordinary tokens [3, V) (ids 0-2
// are <unk>, <s>, </s> in sentencepiece's layout), and random ordinary tokens for 0-2, so that no
// control token is ever a favoured successor.
std::vector<int64_t> successors(uint64_t seed, int64_t vocab) {
  std::vector<int64_t> succ(static_cast<size_t>(vocab));
  Prng prng(seed, "lm_head.successors");
  const int64_t first = std::min(kFirstOrdinary, vocab - 1);
  for (int64_t t = first; t < vocab; ++t) succ[static_cast<size_t>(t)] = t;
  for (int64_t i = vocab - 1; i > first; --i) {  // Fisher-Yates over [first, vocab)
    const int64_t j = first + static_cast<int64_t>(prng.next() % static_cast<uint64_t>(i - first + 1));
    std::swap(succ[static_cast<size_t>(i)], succ[static_cast<size_t>(j)]);
  }
  for (int64_t t = 0; t < first; ++t) {
    succ[static_cast<size_t>(t)] = first + static_cast<int64_t>(prng.next() % static_cast<uint64_t>(vocab - first));
  }
  return succ;
}

// A DSA layer's indexer tensors (DESIGN §3 shapes; weights from demo_indexer.h).
Status add_indexer(SafetensorsWriter& writer, DType dtype, const Options& o, const std::string& prefix) {
  const IndexerShape shape{o.hidden, o.index_heads, o.index_head_dim, o.index_rope_dim};
  const IndexerTensors t = make_indexer(o.seed, prefix, shape);
  RETURN_IF_ERROR(writer.add_float(prefix + "wq.weight", dtype, {shape.heads * shape.head_dim, shape.hidden}, t.wq));
  RETURN_IF_ERROR(writer.add_float(prefix + "wk.weight", dtype, {shape.head_dim, shape.hidden}, t.wk));
  RETURN_IF_ERROR(
      writer.add_float(prefix + "weights_proj.weight", dtype, {shape.heads, shape.hidden}, t.weights_proj));
  RETURN_IF_ERROR(writer.add_float(prefix + "k_norm.weight", dtype, {shape.head_dim}, t.k_norm_weight));
  return writer.add_float(prefix + "k_norm.bias", dtype, {shape.head_dim}, t.k_norm_bias);
}

Status write_weights(const Options& o, const std::string& path) {
  const DType dtype = o.dtype == "bf16" ? DType::kBF16 : o.dtype == "f16" ? DType::kF16 : DType::kF32;
  const int64_t hidden = o.hidden;
  const int64_t q_dim = static_cast<int64_t>(o.heads) * o.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(o.kv_heads) * o.head_dim;
  const int64_t ff = o.intermediate;
  const int64_t vocab = o.vocab_size;
  // Linear layers get std 1/sqrt(fan_in), so each output has the variance of one input element;
  // RMSNorm in front of every block keeps the inputs at RMS 1. Norm weights are 1 ± 0.1.
  auto fan_in = [](int64_t n) { return 1.0 / std::sqrt(static_cast<double>(n)); };

  SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<float> embedding =
      normals(o.seed, "model.embed_tokens.weight", static_cast<size_t>(vocab * hidden), 0.0, 1.0);
  const std::vector<int64_t> succ = successors(o.seed, vocab);
  if (has_dsa(o)) {
    shape_embedding_for_indexer(embedding, hidden, index_markers(o.seed, vocab, kFirstOrdinary));
  }
  RETURN_IF_ERROR(writer.add_float("model.embed_tokens.weight", dtype, {vocab, hidden}, embedding));
  for (int layer = 0; layer < o.layers; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "input_layernorm.weight", {hidden}, 1.0, 0.1));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "self_attn.q_proj.weight", {q_dim, hidden}, 0.0,
                               fan_in(hidden)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "self_attn.k_proj.weight", {kv_dim, hidden}, 0.0,
                               fan_in(hidden)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "self_attn.v_proj.weight", {kv_dim, hidden}, 0.0,
                               fan_in(hidden)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "self_attn.o_proj.weight", {hidden, q_dim}, 0.0,
                               fan_in(q_dim)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "post_attention_layernorm.weight", {hidden}, 1.0, 0.1));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "mlp.gate_proj.weight", {ff, hidden}, 0.0,
                               fan_in(hidden)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "mlp.up_proj.weight", {ff, hidden}, 0.0,
                               fan_in(hidden)));
    RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, prefix + "mlp.down_proj.weight", {hidden, ff}, 0.0,
                               fan_in(ff)));
    if (layer >= o.dense_layers) RETURN_IF_ERROR(add_indexer(writer, dtype, o, prefix + "self_attn.indexer."));
  }
  RETURN_IF_ERROR(add_normal(writer, dtype, o.seed, "model.norm.weight", {hidden}, 1.0, 0.1));

  // lm_head = kBigram · unit(embedding[t]) on row succ(t), + N(0, kRandomLogitStd² / hidden).
  // The final hidden state has RMS ~1 and about 2/3 of its direction from the last token's
  // embedding, so the bigram logit is ~kBigram · 0.66 · sqrt(hidden) ≈ 17 against a random part of
  // std kRandomLogitStd (whose maximum over the vocabulary is ~3.4 · kRandomLogitStd).
  constexpr double kBigram = 1.6;
  constexpr double kRandomLogitStd = 3.0;
  std::vector<float> lm_head = normals(o.seed, "lm_head.weight", static_cast<size_t>(vocab * hidden), 0.0,
                                       kRandomLogitStd * fan_in(hidden));
  // The indexer's two dimensions are the same for many tokens: they would pull the bigram rows
  // together, so the directions leave them out.
  const size_t h = static_cast<size_t>(hidden);
  const size_t first_dim = has_dsa(o) ? kIndexMarkerDim + 1 : 0;
  for (size_t t = 0; t < static_cast<size_t>(vocab); ++t) {
    const float* e = &embedding[t * h];
    double norm = 0.0;
    for (size_t i = first_dim; i < h; ++i) norm += static_cast<double>(e[i]) * e[i];
    const double scale = kBigram / std::sqrt(norm);
    float* row = &lm_head[static_cast<size_t>(succ[t]) * h];
    for (size_t i = first_dim; i < h; ++i) row[i] += static_cast<float>(scale * e[i]);
  }
  RETURN_IF_ERROR(writer.add_float("lm_head.weight", dtype, {vocab, hidden}, lm_head));
  return writer.write(path);
}

Status run(int argc, char** argv) {
  ASSIGN_OR_RETURN(Options options, parse_flags(argc, argv));
  if (!options.tokenizer.empty()) {
    ASSIGN_OR_RETURN(SpmVocab vocab, read_spm_vocab(options.tokenizer));
    options.vocab_size = vocab.size;
    if (!vocab.bos_id || !vocab.eos_id) {
      return invalid_argument(options.tokenizer + ": the tokenizer has no <s> or </s> control piece");
    }
    options.bos_id = *vocab.bos_id;
    options.eos_id = *vocab.eos_id;
  }
  std::error_code error;
  std::filesystem::create_directories(options.out_dir, error);
  if (error) return invalid_argument(options.out_dir + ": cannot create: " + error.message());

  const std::string& dir = options.out_dir;
  RETURN_IF_ERROR(write_weights(options, dir + "/model.safetensors"));
  RETURN_IF_ERROR(write_json(dir + "/config.json", model_config(options)));
  RETURN_IF_ERROR(write_json(dir + "/generation_config.json", generation_config(options)));
  if (!options.tokenizer.empty()) RETURN_IF_ERROR(write_json(dir + "/tokenizer_config.json", tokenizer_config(options)));
  return Status::Ok();
}

}  // namespace
}  // namespace longbow::demo

int main(int argc, char** argv) {
  longbow::Status status = longbow::demo::run(argc, argv);
  if (!status.ok()) {
    std::fprintf(stderr, "make_demo_model: %s\n%s", status.to_string().c_str(), longbow::demo::kUsage);
    return 1;
  }
  return 0;
}
