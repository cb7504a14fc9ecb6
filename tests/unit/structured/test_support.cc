#include "tests/unit/structured/test_support.h"

#include <regex>

#include <fmt/format.h>

#include "server/structured/matcher.h"

namespace longbow::structured::testing {

using OJson = nlohmann::ordered_json;
using nlohmann::json;

std::shared_ptr<const Vocabulary> synthetic_vocabulary(uint32_t seed, int random_tokens) {
  VocabularyInfo info;
  for (int b = 0; b < 256; ++b) info.token_bytes.emplace_back(1, static_cast<char>(b));
  for (const char* t : {"{\"", "\":", "\",", "\"}", "},", "}}", "[\"", "\"]", "[]", "{}", "true", "false", "null",
                        "tr", "ue", "fa", "lse", "nu", "ll", "12", "-1", "0.", "e+", "abc", " the", "\\\"", "\\u",
                        "\\n", "00", "é", "\xc3", "\xa9", "ab", "cd", "foo", "bar", "baz", "\":\"", "\",\"", "\":[",
                        "\":{", "]}", "]]", ", ", ": ", "-", "123", "99", "x\"", "\"a", "A", "Zz"}) {
    info.token_bytes.emplace_back(t);
  }
  std::mt19937 rng(seed);
  const std::string alphabet = "{}[]\",:0123456789-.eE abcxyzAZ_\\/tnu";
  for (int i = 0; i < random_tokens; ++i) {
    const int len = 2 + static_cast<int>(rng() % 5);
    std::string t;
    for (int k = 0; k < len; ++k) t += alphabet[rng() % alphabet.size()];
    info.token_bytes.push_back(t);
  }
  info.token_bytes.emplace_back();  // a special token: never allowed
  info.token_bytes.emplace_back();  // EOS
  info.stop_ids.push_back(static_cast<int32_t>(info.token_bytes.size()) - 1);
  return std::make_shared<Vocabulary>(std::move(info));
}

namespace {

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<uint8_t>(c) & 0xC0) != 0x80;
  return n;
}

bool fail(std::string* why, std::string what) {
  if (why) *why = std::move(what);
  return false;
}

bool type_matches(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "integer") return v.is_number_integer();
  if (t == "number") return v.is_number();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  return false;
}

}  // namespace

bool validate(const json& v, const OJson& s, std::string* why) {
  if (s.is_boolean()) return s.get<bool>() || fail(why, "false schema");
  if (s.contains("anyOf")) {
    for (const OJson& sub : s["anyOf"]) {
      if (validate(v, sub, nullptr)) return true;
    }
    return fail(why, fmt::format("{} matches no anyOf branch", v.dump()));
  }
  if (s.contains("const") && json::parse(s["const"].dump()) != v) return fail(why, fmt::format("{} is not the const", v.dump()));
  if (s.contains("enum")) {
    bool found = false;
    for (const OJson& e : s["enum"]) found = found || json::parse(e.dump()) == v;
    if (!found) return fail(why, fmt::format("{} not in enum", v.dump()));
  }
  if (s.contains("type")) {
    bool ok = false;
    if (s["type"].is_string()) {
      ok = type_matches(v, s["type"].get<std::string>());
    } else {
      for (const OJson& t : s["type"]) ok = ok || type_matches(v, t.get<std::string>());
    }
    if (!ok) return fail(why, fmt::format("{} has the wrong type", v.dump()));
  }
  if (v.is_object()) {
    if (s.contains("required")) {
      for (const OJson& r : s["required"]) {
        if (!v.contains(r.get<std::string>())) return fail(why, fmt::format("missing required '{}'", r.get<std::string>()));
      }
    }
    const bool closed = s.contains("additionalProperties") && s["additionalProperties"] == false;
    for (const auto& [k, sub] : v.items()) {
      if (s.contains("properties") && s["properties"].contains(k)) {
        if (!validate(sub, s["properties"][k], why)) return false;
      } else if (closed) {
        return fail(why, fmt::format("unexpected property '{}'", k));
      }
    }
  }
  if (v.is_array()) {
    if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) return fail(why, "too few items");
    if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) return fail(why, "too many items");
    if (s.contains("items")) {
      for (const json& item : v) {
        if (!validate(item, s["items"], why)) return false;
      }
    }
  }
  if (v.is_string()) {
    const std::string& str = v.get_ref<const std::string&>();
    if (s.contains("minLength") && code_points(str) < s["minLength"].get<size_t>()) return fail(why, "string too short");
    if (s.contains("maxLength") && code_points(str) > s["maxLength"].get<size_t>()) return fail(why, "string too long");
    if (s.contains("pattern") && !std::regex_search(str, std::regex(s["pattern"].get<std::string>()))) {
      return fail(why, fmt::format("'{}' does not match pattern {}", str, s["pattern"].get<std::string>()));
    }
  }
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (s.contains("minimum") && x < s["minimum"].get<int64_t>()) return fail(why, fmt::format("{} below minimum", x));
    if (s.contains("maximum") && x > s["maximum"].get<int64_t>()) return fail(why, fmt::format("{} above maximum", x));
  }
  return true;
}

OJson random_bounded_schema(std::mt19937& rng, int depth) {
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint32_t>(n)); };
  static const char* patterns[] = {"^[a-z]{1,8}$", "^\\d{3}-\\d{4}$", "^(foo|bar|baz)[0-9]?$",
                                   "^[A-Z][a-z]{0,5}( [A-Z][a-z]{0,5})?$", "^(ab|cd){1,3}x?$", "^\\w{2,4}\\.\\w{1,3}$",
                                   "^[0-9a-f]{4}$", "^[!-/]{0,3}$", "^a[\\s\\d]?c$", "^\"q\\\\?\"$"};
  // The root is an object (as structured-output schemas are); deeper levels mix every kind.
  const int kind = depth == 0 ? 9 : pick(depth >= 2 ? 9 : 12);
  OJson s;
  switch (kind) {
    case 0: {
      s["type"] = "string";
      const int max = pick(12);
      s["maxLength"] = max;
      if (pick(2)) s["minLength"] = pick(max + 1);
      break;
    }
    case 1: s = {{"type", "string"}, {"pattern", patterns[pick(10)]}}; break;
    case 2: {
      const int64_t lo = pick(3) == 0 ? -pick(100000) : pick(1000) - 500;
      s = {{"type", "integer"}, {"minimum", lo}, {"maximum", lo + pick(3) * pick(2000)}};
      break;
    }
    case 3: s = {{"type", "number"}}; break;
    case 4: s = {{"type", "boolean"}}; break;
    case 5: s = {{"type", "null"}}; break;
    case 6: s = {{"enum", OJson::array({"red", "green", 3, nullptr, "bl\"ue"})}}; break;
    case 7: s = {{"const", pick(2) ? OJson("fixed") : OJson({{"a", 1}})}}; break;
    case 8: s = {{"type", OJson::array({"integer", "null"})}, {"minimum", 0}, {"maximum", 9}}; break;
    case 9:
    case 10: {
      s["type"] = "object";
      OJson props = OJson::object();
      OJson required = OJson::array();
      const int n = 1 + pick(4);
      for (int i = 0; i < n; ++i) {
        const std::string name = fmt::format("p{}_{}", depth, i);
        props[name] = random_bounded_schema(rng, depth + 1);
        if (pick(3) != 0) required.push_back(name);
      }
      s["properties"] = props;
      s["required"] = required;
      s["additionalProperties"] = false;
      break;
    }
    default: {
      const int min = pick(3);
      s = {{"type", "array"}, {"items", random_bounded_schema(rng, depth + 1)}, {"minItems", min}, {"maxItems", min + pick(4)}};
      if (pick(3) == 0) s = {{"anyOf", OJson::array({s, random_bounded_schema(rng, depth + 1)})}};
      break;
    }
  }
  return s;
}

Generation generate(const std::shared_ptr<const Grammar>& grammar, TokenMasker& masker, std::mt19937& rng,
                    int max_steps) {
  Generation out;
  GrammarMatcher matcher(grammar);
  const Vocabulary& vocab = masker.vocabulary();
  std::vector<uint64_t> mask;
  std::vector<int32_t> allowed;
  for (int step = 0; step < max_steps; ++step) {
    masker.fill_mask(matcher, mask);
    allowed.clear();
    for (int32_t id = 0; id < vocab.size(); ++id) {
      if (mask_allows(mask, id)) allowed.push_back(id);
    }
    if (allowed.empty()) {
      out.failure = fmt::format("dead end after '{}'", out.text);
      return out;
    }
    const int32_t id = allowed[rng() % allowed.size()];
    for (const int32_t stop : vocab.stop_ids()) {
      if (id == stop) {
        out.terminated = true;
        return out;
      }
    }
    if (!matcher.accept_bytes(vocab.bytes(id))) {
      out.failure = fmt::format("masked-in token {} rejected after '{}'", id, out.text);
      return out;
    }
    out.text += vocab.bytes(id);
  }
  out.failure = fmt::format("no stop within {} steps: '{}'", max_steps, out.text);
  return out;
}

}  // namespace longbow::structured::testing
