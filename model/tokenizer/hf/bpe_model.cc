#include "model/tokenizer/hf/bpe_model.h"

#include <fmt/format.h>

#include <atomic>
#include <queue>

#include "model/tokenizer/hf/unicode.h"

namespace longbow::hf {
namespace {

using nlohmann::json;

constexpr size_t kCacheCapacity = 10000;  // words per thread (as tokenizers' default)
constexpr size_t kCacheMaxWordBytes = 256;
constexpr size_t kCutMinWordBytes = kCacheMaxWordBytes;  // shorter words are merged and cached whole

uint64_t pair_key(TokenId left, TokenId right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct WordCache {
  uint64_t owner = 0;
  StringMap<std::vector<TokenId>> words;
};
thread_local WordCache t_cache;

std::atomic<uint64_t> g_next_cache_key{1};

// A symbol of a word being merged: a token and its neighbours in the linked list (-1: none).
struct Symbol {
  TokenId id;
  int prev, next;
  bool removed;
};

struct Candidate {
  int32_t rank;
  int pos;
  TokenId merged;
  // std::priority_queue pops the largest: lowest rank first, then leftmost.
  bool operator<(const Candidate& other) const {
    return rank != other.rank ? rank > other.rank : pos > other.pos;
  }
};

// Splits a merges entry: "a b" (exactly one space) or ["a", "b"].
StatusOr<std::pair<std::string, std::string>> parse_merge(const json& entry, size_t index) {
  if (entry.is_string()) {
    const std::string& s = entry.get_ref<const std::string&>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
      return invalid_argument(fmt::format("model.merges[{}] \"{}\" is not two tokens separated by one space", index, s));
    }
    return std::make_pair(s.substr(0, space), s.substr(space + 1));
  }
  if (entry.is_array() && entry.size() == 2 && entry[0].is_string() && entry[1].is_string()) {
    return std::make_pair(entry[0].get<std::string>(), entry[1].get<std::string>());
  }
  return invalid_argument(fmt::format("model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", index));
}

}  // namespace

StatusOr<BpeModel> BpeModel::from_json(const json& model) {
  BpeModel bpe;
  if (!model.contains("vocab") || !model["vocab"].is_object()) return invalid_argument("model.vocab must be an object");
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() != 0.0) {
    return unimplemented("BPE dropout is not supported");
  }
  const json& vocab = model["vocab"];
  bpe.vocab_.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= kMaxVocabSize) {
      return invalid_argument(fmt::format("model.vocab[\"{}\"] must be an id in [0, {})", token, kMaxVocabSize));
    }
    const auto tid = static_cast<TokenId>(id.get<int64_t>());
    bpe.vocab_[token] = tid;
    if (static_cast<size_t>(tid) >= bpe.tokens_.size()) {
      bpe.tokens_.resize(static_cast<size_t>(tid) + 1);
      bpe.has_token_.resize(static_cast<size_t>(tid) + 1, false);
    }
    bpe.tokens_[static_cast<size_t>(tid)] = token;
    bpe.has_token_[static_cast<size_t>(tid)] = true;
  }
  auto optional_string = [&](const char* key) -> std::string {
    return model.contains(key) && model[key].is_string() ? model[key].get<std::string>() : std::string();
  };
  bpe.continuing_subword_prefix_ = optional_string("continuing_subword_prefix");
  bpe.end_of_word_suffix_ = optional_string("end_of_word_suffix");
  bpe.fuse_unk_ = model.value("fuse_unk", false);
  bpe.byte_fallback_ = model.value("byte_fallback", false);
  bpe.ignore_merges_ = model.value("ignore_merges", false);
  if (const std::string unk = optional_string("unk_token"); !unk.empty()) {
    auto it = bpe.vocab_.find(unk);
    if (it == bpe.vocab_.end()) return invalid_argument(fmt::format("model.unk_token \"{}\" is not in the vocab", unk));
    bpe.unk_id_ = it->second;
  }
  if (bpe.byte_fallback_) {
    bpe.byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      auto it = bpe.vocab_.find(fmt::format("<0x{:02X}>", b));
      if (it != bpe.vocab_.end()) bpe.byte_ids_[static_cast<size_t>(b)] = it->second;
    }
  }
  if (model.contains("merges")) {
    const json& merges = model["merges"];
    if (!merges.is_array()) return invalid_argument("model.merges must be a list");
    bpe.merges_.reserve(merges.size());
    const size_t prefix_length = bpe.continuing_subword_prefix_.size();
    for (size_t i = 0; i < merges.size(); ++i) {
      ASSIGN_OR_RETURN(auto parts, parse_merge(merges[i], i));
      auto left = bpe.vocab_.find(parts.first);
      auto right = bpe.vocab_.find(parts.second);
      if (left == bpe.vocab_.end() || right == bpe.vocab_.end()) {
        return invalid_argument(fmt::format("model.merges[{}]: \"{}\" + \"{}\" uses a token outside the vocab", i,
                                            parts.first, parts.second));
      }
      // The merged token drops the right part's continuing-subword prefix.
      const std::string merged = parts.first + parts.second.substr(std::min(prefix_length, parts.second.size()));
      auto result = bpe.vocab_.find(merged);
      if (result == bpe.vocab_.end()) {
        return invalid_argument(fmt::format("model.merges[{}]: the merged token \"{}\" is not in the vocab", i, merged));
      }
      // A repeated pair keeps its last rank (as a map filled in order).
      bpe.merges_[pair_key(left->second, right->second)] = {static_cast<int32_t>(i), result->second};
    }
  }
  bpe.index_cut_points();
  bpe.cache_key_ = g_next_cache_key.fetch_add(1);
  return bpe;
}

void BpeModel::index_cut_points() {
  cuttable_ = continuing_subword_prefix_.empty() && end_of_word_suffix_.empty() && !ignore_merges_;
  if (!cuttable_) return;
  single_char_bmp_.assign(0x10000, false);
  for (const auto& [token, id] : vocab_) {
    if (token.empty()) continue;
    size_t length;
    const char32_t cp = next_code_point(token, &length);
    if (length != token.size()) continue;
    if (cp < 0x10000) {
      single_char_bmp_[cp] = true;
    } else {
      single_char_other_.insert(cp);
    }
  }
  for (const auto& [pair, rank_and_id] : merges_) {
    const std::string& left = tokens_[static_cast<size_t>(pair >> 32)];
    const std::string& right = tokens_[static_cast<size_t>(pair & 0xFFFFFFFFu)];
    if (left.empty() || right.empty()) continue;
    size_t start = left.size() - 1;
    while (start > 0 && (static_cast<unsigned char>(left[start]) & 0xC0) == 0x80) --start;
    size_t length;
    const char32_t last = next_code_point(std::string_view(left).substr(start), &length);
    const char32_t first = next_code_point(right, &length);
    joinable_.insert((static_cast<uint64_t>(last) << 32) | first);
  }
}

bool BpeModel::is_single_char_token(char32_t cp) const {
  return cp < 0x10000 ? static_cast<bool>(single_char_bmp_[cp]) : single_char_other_.count(cp) > 0;
}

std::optional<TokenId> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(TokenId id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !has_token_[static_cast<size_t>(id)]) return nullptr;
  return &tokens_[static_cast<size_t>(id)];
}

void BpeModel::tokenize(std::string_view word, std::vector<TokenId>* out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out->push_back(it->second);
      return;
    }
  }
  if (!cuttable_ || word.size() < kCutMinWordBytes) {
    merge_cached(word, out);
    return;
  }
  size_t cut = 0, pos = 0;
  char32_t previous = 0;
  bool previous_single = false;
  while (pos < word.size()) {
    size_t length;
    const char32_t cp = next_code_point(word.substr(pos), &length);
    const bool single = is_single_char_token(cp);
    if (previous_single && single && joinable_.count((static_cast<uint64_t>(previous) << 32) | cp) == 0) {
      merge_cached(word.substr(cut, pos - cut), out);
      cut = pos;
    }
    previous = cp;
    previous_single = single;
    pos += length;
  }
  merge_cached(word.substr(cut), out);
}

void BpeModel::merge_cached(std::string_view word, std::vector<TokenId>* out) const {
  WordCache& cache = t_cache;
  if (cache.owner != cache_key_) {
    cache.words.clear();
    cache.owner = cache_key_;
  }
  if (auto hit = cache.words.find(word); hit != cache.words.end()) {
    out->insert(out->end(), hit->second.begin(), hit->second.end());
    return;
  }
  const size_t first = out->size();
  merge_word(word, out);
  if (word.size() < kCacheMaxWordBytes && cache.words.size() < kCacheCapacity) {
    cache.words.emplace(std::string(word), std::vector<TokenId>(out->begin() + static_cast<std::ptrdiff_t>(first), out->end()));
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<TokenId>* out) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](TokenId id) {
    const int index = static_cast<int>(symbols.size());
    symbols.push_back(Symbol{id, index - 1, -1, false});
    if (index > 0) symbols[static_cast<size_t>(index - 1)].next = index;
  };
  TokenId pending_unk = -1;  // an unk token not yet added (fuse_unk grows it)
  std::string scratch;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t length;
    next_code_point(word.substr(pos), &length);
    std::string_view piece = word.substr(pos, length);
    const bool is_first = pos == 0;
    pos += length;
    const bool is_last = pos == word.size();
    if ((!is_first && !continuing_subword_prefix_.empty()) || (is_last && !end_of_word_suffix_.empty())) {
      scratch.assign(is_first ? "" : continuing_subword_prefix_);
      scratch.append(piece);
      if (is_last) scratch.append(end_of_word_suffix_);
      piece = scratch;
    }
    if (auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk);
      pending_unk = -1;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (const char c : piece) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (const char c : piece) add(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) add(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) add(pending_unk);

  std::priority_queue<Candidate> queue;
  auto consider = [&](int left) {
    const int right = symbols[static_cast<size_t>(left)].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[static_cast<size_t>(left)].id, symbols[static_cast<size_t>(right)].id));
    if (it != merges_.end()) queue.push(Candidate{it->second.first, left, it->second.second});
  };
  for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (left.removed || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    // A stale entry: the pair at this position changed since it was queued.
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.second != top.merged) continue;
    left.id = top.merged;
    right.removed = true;
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (const Symbol& s : symbols) {
    if (!s.removed) out->push_back(s.id);
  }
}

}  // namespace longbow::hf
