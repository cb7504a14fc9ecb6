#include "server/frontend/http/openai_request.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <utility>

#include <fmt/format.h>

#include "common/bounded_json.h"
#include "server/engine/request_validation.h"

namespace longbow::http {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Stop, stop-id and logit-bias counts and the temperature range are the engine's
// (request_validation.h), shared with gRPC; they are checked here too, before values are copied.
constexpr int kMaxPrompts = 256;        // prompts in one completions request
constexpr int64_t kMaxN = 128;          // OpenAI's bound; the engine's own limit applies after

std::string type_name(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    case json::value_t::binary: return "binary";
    case json::value_t::discarded: return "invalid";
  }
  return "?";
}

// Typed access to one JSON object's fields. Absent and null fields leave targets unchanged. Every
// failure is INVALID_ARGUMENT naming the field, which also goes to *param.
class Fields {
 public:
  Fields(const json& object, std::string* param) : object_(object), param_(param) {}

  const json& object() const { return object_; }

  const json* find(const char* name) const {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  Status fail(const std::string& name, const std::string& message) const {
    *param_ = name;
    return invalid_argument(message);
  }

  // UNIMPLEMENTED: a feature longbow lacks.
  Status unsupported(const std::string& name, const std::string& message) const {
    *param_ = name;
    return unimplemented(message);
  }

  // Attributes another failure to the field `name`.
  Status attribute(const std::string& name, Status status) const {
    *param_ = name;
    return status;
  }

  Status wrong_type(const char* name, const char* expected, const json& value) const {
    return fail(name, std::string(name) + " must be " + expected + ", got " + type_name(value));
  }

  Status get_bool(const char* name, bool* out) const {
    const json* value = find(name);
    if (!value) return Status::Ok();
    if (!value->is_boolean()) return wrong_type(name, "a boolean", *value);
    *out = value->get<bool>();
    return Status::Ok();
  }

  Status get_string(const char* name, std::string* out) const {
    const json* value = find(name);
    if (!value) return Status::Ok();
    if (!value->is_string()) return wrong_type(name, "a string", *value);
    *out = value->get<std::string>();
    return Status::Ok();
  }

  // Integers only (1.0 is not one), in [lo, hi].
  Status get_int64(const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out) const {
    const json* value = find(name);
    if (!value) return Status::Ok();
    int64_t parsed = 0;
    if (value->is_number_unsigned()) {
      uint64_t u = value->get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return out_of_bounds(name, lo, hi);
      parsed = static_cast<int64_t>(u);
    } else if (value->is_number_integer()) {
      parsed = value->get<int64_t>();
    } else {
      return wrong_type(name, "an integer", *value);
    }
    if (parsed < lo || parsed > hi) return out_of_bounds(name, lo, hi);
    *out = parsed;
    return Status::Ok();
  }

  Status get_int(const char* name, int64_t lo, int64_t hi, int* out) const {
    std::optional<int64_t> parsed;
    RETURN_IF_ERROR(get_int64(name, lo, hi, &parsed));
    if (parsed) *out = static_cast<int>(*parsed);
    return Status::Ok();
  }

  Status get_optional_int(const char* name, int64_t lo, int64_t hi, std::optional<int>* out) const {
    std::optional<int64_t> parsed;
    RETURN_IF_ERROR(get_int64(name, lo, hi, &parsed));
    if (parsed) *out = static_cast<int>(*parsed);
    return Status::Ok();
  }

  // Finite numbers in [lo, hi].
  Status get_float(const char* name, double lo, double hi, float* out) const {
    const json* value = find(name);
    if (!value) return Status::Ok();
    if (!value->is_number()) return wrong_type(name, "a number", *value);
    const double parsed = value->get<double>();
    if (!std::isfinite(parsed) || parsed < lo || parsed > hi) {
      return fail(name, std::string(name) + " must be in [" + format(lo) + ", " + format(hi) + "], got " +
                            value->dump());
    }
    *out = static_cast<float>(parsed);
    return Status::Ok();
  }

 private:
  static std::string format(double x) {
    json j = x;
    return j.dump();
  }
  Status out_of_bounds(const char* name, int64_t lo, int64_t hi) const {
    return fail(name, std::string(name) + " must be an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]");
  }

  const json& object_;
  std::string* param_;
};

bool is_token_id(const json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>() <= static_cast<uint64_t>(INT32_MAX);
  if (value.is_number_integer()) {
    int64_t v = value.get<int64_t>();
    return v >= 0 && v <= INT32_MAX;
  }
  return false;
}

StatusOr<std::vector<TokenId>> parse_token_list(const json& list, const Fields& fields) {
  std::vector<TokenId> ids;
  ids.reserve(list.size());
  for (const json& item : list) {
    if (!is_token_id(item)) {
      return fields.fail("prompt", "prompt token ids must be integers in [0, 2^31), got " + describe_json(item));
    }
    ids.push_back(static_cast<TokenId>(item.get<int64_t>()));
  }
  if (ids.empty()) return fields.fail("prompt", "a token-id prompt must not be empty");
  return ids;
}

// Completions "prompt": a string, a list of strings, a token-id list, or a list of token-id lists.
Status parse_prompt(const json& prompt, const ServingContext& context, const Fields& fields, OpenAiRequest* out) {
  auto add_text = [&](const std::string& text) {
    out->prompts.push_back(context.encode_text(text));
    out->echo_texts.push_back(text);
  };
  auto add_ids = [&](std::vector<TokenId> ids) {
    out->echo_texts.push_back(context.tokenizer().decode(ids));
    out->prompts.push_back(std::move(ids));
  };
  if (prompt.is_string()) {
    add_text(prompt.get<std::string>());
    return Status::Ok();
  }
  if (!prompt.is_array()) return fields.wrong_type("prompt", "a string, a list of strings or a list of token ids", prompt);
  if (prompt.empty()) return fields.fail("prompt", "prompt must not be an empty list");
  const json& first = prompt.front();
  if (first.is_number()) {  // one prompt of token ids, as long as the context allows
    ASSIGN_OR_RETURN(std::vector<TokenId> ids, parse_token_list(prompt, fields));
    add_ids(std::move(ids));
    return Status::Ok();
  }
  if (prompt.size() > static_cast<size_t>(kMaxPrompts)) {
    return fields.fail("prompt", "at most " + std::to_string(kMaxPrompts) + " prompts per request");
  }
  for (const json& item : prompt) {
    if (item.is_string()) {
      add_text(item.get<std::string>());
    } else if (item.is_array()) {
      ASSIGN_OR_RETURN(std::vector<TokenId> ids, parse_token_list(item, fields));
      add_ids(std::move(ids));
    } else {
      return fields.wrong_type("prompt", "a list of strings or of token-id lists", item);
    }
  }
  return Status::Ok();
}

StatusOr<std::string> message_content(const json& content, size_t index, const Fields& fields) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_null()) return std::string();
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return fields.fail(param, param + " must be a string or a list of content parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object()) return fields.fail(param, param + " parts must be objects");
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) return fields.fail(param, param + " parts need a string \"type\"");
    if (*type != "text") {
      return fields.unsupported(param, param + ": content parts of type " + describe_json(*type) +
                                           " are not supported (text only)");
    }
    auto part_text = part.find("text");
    if (part_text == part.end() || !part_text->is_string()) {
      return fields.fail(param, param + " text parts need a string \"text\"");
    }
    text += part_text->get<std::string>();
  }
  return text;
}

// One assistant message's tool_calls: [{id, type, function: {name, arguments (the JSON text of an
// object)}}].
StatusOr<ordered_json> parse_tool_calls(const json& calls, const std::string& where, const Fields& fields) {
  const std::string param = where + ".tool_calls";
  if (!calls.is_array()) return fields.fail(param, param + " must be a list");
  ordered_json out = ordered_json::array();
  for (size_t j = 0; j < calls.size(); ++j) {
    const json& call = calls[j];
    const std::string item = fmt::format("{}[{}]", param, j);
    const json* function = call.is_object() && call.contains("function") ? &call["function"] : nullptr;
    if (!function || !function->is_object() || !function->contains("name") || !(*function)["name"].is_string() ||
        !function->contains("arguments") || !(*function)["arguments"].is_string()) {
      return fields.fail(item, item + " must be {\"id\", \"type\": \"function\", \"function\": {\"name\", "
                                      "\"arguments\": a JSON text}}");
    }
    const std::string& arguments = (*function)["arguments"].get_ref<const std::string&>();
    ordered_json parsed = ordered_json::parse(arguments, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      return fields.fail(item, item + ".function.arguments must be the JSON text of an object");
    }
    ordered_json entry = ordered_json::object();
    if (call.contains("id") && call["id"].is_string()) entry["id"] = call["id"].get<std::string>();
    entry["type"] = "function";
    entry["function"] = ordered_json{{"name", (*function)["name"].get<std::string>()},
                                     {"arguments", arguments}};
    out.push_back(std::move(entry));
  }
  return out;
}

// messages as the chat template sees them: role (developer becomes system), content (text; null
// allowed for an assistant turn), an assistant's tool_calls, a tool result's tool_call_id, and name.
StatusOr<ordered_json> parse_messages(const json& messages, const Fields& fields) {
  if (!messages.is_array()) return fields.wrong_type("messages", "a list of messages", messages);
  if (messages.empty()) return fields.fail("messages", "messages must hold at least one message");
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) return fields.fail(where, where + " must be an object");
    auto role_field = m.find("role");
    if (role_field == m.end() || !role_field->is_string()) {
      return fields.fail(where + ".role", where + ".role must be a string");
    }
    std::string role = role_field->get<std::string>();
    if (role == "developer") role = "system";
    if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
      return fields.fail(where + ".role", where + ".role \"" + role +
                                              "\" is not supported (system, developer, user, assistant, tool)");
    }
    ordered_json message = {{"role", role}};
    auto content = m.find("content");
    auto tool_calls = m.find("tool_calls");
    const bool has_calls = tool_calls != m.end() && !tool_calls->is_null();
    if (has_calls && role != "assistant") {
      return fields.fail(where + ".tool_calls", where + ".tool_calls is only for assistant messages");
    }
    if (content == m.end() || content->is_null()) {
      if (role != "assistant") return fields.fail(where + ".content", where + ".content is required");
      message["content"] = nullptr;
    } else {
      ASSIGN_OR_RETURN(std::string text, message_content(*content, i, fields));
      message["content"] = std::move(text);
    }
    if (auto name = m.find("name"); name != m.end() && !name->is_null()) {
      if (!name->is_string()) return fields.wrong_type((where + ".name").c_str(), "a string", *name);
      message["name"] = name->get<std::string>();
    }
    if (has_calls) {
      ASSIGN_OR_RETURN(message["tool_calls"], parse_tool_calls(*tool_calls, where, fields));
    }
    if (role == "tool") {
      auto id = m.find("tool_call_id");
      if (id == m.end() || !id->is_string()) {
        return fields.fail(where + ".tool_call_id", where + ".tool_call_id (a string) is required for a tool message");
      }
      message["tool_call_id"] = id->get<std::string>();
    }
    out.push_back(std::move(message));
  }
  return out;
}

Status parse_stop(const Fields& fields, SamplingParams* sampling) {
  const json* stop = fields.find("stop");
  if (!stop) return Status::Ok();
  if (stop->is_string()) {
    sampling->stop.push_back(stop->get<std::string>());
  } else if (stop->is_array()) {
    if (Status counts = check_request_counts(stop->size(), 0, 0); !counts.ok()) return fields.attribute("stop", counts);
    for (const json& item : *stop) {
      if (!item.is_string()) return fields.wrong_type("stop", "a string or a list of strings", item);
      sampling->stop.push_back(item.get<std::string>());
    }
  } else {
    return fields.wrong_type("stop", "a string or a list of strings", *stop);
  }
  for (const std::string& s : sampling->stop) {
    if (s.empty()) return fields.fail("stop", "stop strings must not be empty");
  }
  return Status::Ok();
}

Status parse_stop_token_ids(const Fields& fields, SamplingParams* sampling) {
  const json* ids = fields.find("stop_token_ids");
  if (!ids) return Status::Ok();
  if (!ids->is_array()) return fields.wrong_type("stop_token_ids", "a list of token ids", *ids);
  if (Status counts = check_request_counts(0, ids->size(), 0); !counts.ok()) {
    return fields.attribute("stop_token_ids", counts);
  }
  for (const json& id : *ids) {
    if (!is_token_id(id)) return fields.fail("stop_token_ids", "stop_token_ids entries must be token ids");
    sampling->stop_token_ids.push_back(static_cast<TokenId>(id.get<int64_t>()));
  }
  return Status::Ok();
}

Status parse_logit_bias(const Fields& fields, SamplingParams* sampling) {
  const json* bias = fields.find("logit_bias");
  if (!bias) return Status::Ok();
  if (!bias->is_object()) return fields.wrong_type("logit_bias", "an object {token id: bias}", *bias);
  if (Status counts = check_request_counts(0, 0, bias->size()); !counts.ok()) return fields.attribute("logit_bias", counts);
  for (const auto& [key, value] : bias->items()) {
    TokenId token = 0;
    auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), token);
    if (ec != std::errc() || end != key.data() + key.size() || token < 0) {
      return fields.fail("logit_bias", "logit_bias keys must be token ids, got \"" + key + "\"");
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) || std::fabs(value.get<double>()) > 100.0) {
      return fields.fail("logit_bias", "logit_bias values must be numbers in [-100, 100]");
    }
    sampling->logit_bias.emplace_back(token, static_cast<float>(value.get<double>()));
  }
  return Status::Ok();
}

Status parse_sampling(Endpoint endpoint, const Fields& fields, OpenAiRequest* out) {
  SamplingParams& s = out->sampling;
  int64_t n = 1;
  {
    std::optional<int64_t> parsed;
    RETURN_IF_ERROR(fields.get_int64("n", 1, kMaxN, &parsed));
    if (parsed) n = *parsed;
  }
  s.n = static_cast<int>(n);
  out->n = s.n;
  std::optional<int64_t> best_of;
  RETURN_IF_ERROR(fields.get_int64("best_of", 1, kMaxN, &best_of));
  if (best_of && *best_of < n) return fields.fail("best_of", "best_of must be at least n");
  if (best_of && *best_of > n) {
    // best_of samples per prompt, of which the n with the highest total logprob are returned.
    if (endpoint != Endpoint::kCompletions) {
      return fields.unsupported("best_of", "best_of is a /v1/completions field (use n on chat completions)");
    }
    bool stream = false;
    RETURN_IF_ERROR(fields.get_bool("stream", &stream));
    if (stream) return fields.fail("best_of", "best_of greater than n cannot be streamed");
    out->best_of = static_cast<int>(*best_of);
    s.n = out->best_of;
  }

  // max_tokens: completions default to 16 (OpenAI); chat runs until EOS or the context is full.
  if (endpoint == Endpoint::kCompletions) s.max_tokens = 16;
  std::optional<int64_t> max_tokens;
  RETURN_IF_ERROR(fields.get_int64("max_tokens", std::numeric_limits<int64_t>::min(),
                                   std::numeric_limits<int64_t>::max(), &max_tokens));
  const char* max_name = "max_tokens";
  if (endpoint == Endpoint::kChatCompletions) {
    std::optional<int64_t> max_completion;
    RETURN_IF_ERROR(fields.get_int64("max_completion_tokens", std::numeric_limits<int64_t>::min(),
                                     std::numeric_limits<int64_t>::max(), &max_completion));
    if (max_completion) {
      max_tokens = max_completion;
      max_name = "max_completion_tokens";
    }
  }
  if (max_tokens) {
    if (*max_tokens < 1 || *max_tokens > INT32_MAX) {
      return fields.fail(max_name, std::string(max_name) + " must be an integer in [1, 2^31), got " +
                                       std::to_string(*max_tokens));
    }
    s.max_tokens = static_cast<int>(*max_tokens);
  }

  RETURN_IF_ERROR(fields.get_float("temperature", 0.0, kMaxTemperature, &s.temperature));
  RETURN_IF_ERROR(fields.get_float("top_p", 0.0, 1.0, &s.top_p));
  if (s.top_p <= 0.0f) return fields.fail("top_p", "top_p must be in (0, 1]");
  RETURN_IF_ERROR(fields.get_int("top_k", -1, INT32_MAX, &s.top_k));
  RETURN_IF_ERROR(fields.get_float("min_p", 0.0, 1.0, &s.min_p));
  RETURN_IF_ERROR(fields.get_float("repetition_penalty", 0.0, 100.0, &s.repetition_penalty));
  if (s.repetition_penalty <= 0.0f) return fields.fail("repetition_penalty", "repetition_penalty must be in (0, 100]");
  RETURN_IF_ERROR(fields.get_float("presence_penalty", -2.0, 2.0, &s.presence_penalty));
  RETURN_IF_ERROR(fields.get_float("frequency_penalty", -2.0, 2.0, &s.frequency_penalty));
  RETURN_IF_ERROR(fields.get_bool("ignore_eos", &s.ignore_eos));
  RETURN_IF_ERROR(fields.get_bool("include_stop_str_in_output", &s.include_stop_str_in_output));
  RETURN_IF_ERROR(fields.get_int("min_tokens", 0, INT32_MAX, &s.min_tokens));
  if (const json* seed = fields.find("seed")) {
    // Any 64-bit integer; negative seeds are taken modulo 2^64.
    if (seed->is_number_unsigned()) {
      s.seed = seed->get<uint64_t>();
    } else if (seed->is_number_integer()) {
      s.seed = static_cast<uint64_t>(seed->get<int64_t>());
    } else {
      return fields.wrong_type("seed", "an integer", *seed);
    }
  }
  RETURN_IF_ERROR(parse_stop(fields, &s));
  RETURN_IF_ERROR(parse_stop_token_ids(fields, &s));
  RETURN_IF_ERROR(parse_logit_bias(fields, &s));
  return Status::Ok();
}

Status parse_fields(Endpoint endpoint, const OrderedBody& body, const ServingContext& context, const Fields& fields,
                    OpenAiRequest* out) {
  RETURN_IF_ERROR(fields.get_string("model", &out->model));
  RETURN_IF_ERROR(fields.get_bool("stream", &out->stream));
  if (const json* options = fields.find("stream_options")) {
    if (!options->is_object()) return fields.wrong_type("stream_options", "an object", *options);
    auto include = options->find("include_usage");
    if (include != options->end() && !include->is_null()) {
      if (!include->is_boolean()) return fields.fail("stream_options", "stream_options.include_usage must be a boolean");
      out->include_usage = include->get<bool>();
    }
  }
  RETURN_IF_ERROR(fields.get_bool("return_token_ids", &out->return_token_ids));
  RETURN_IF_ERROR(fields.get_string("user", &out->user));
  RETURN_IF_ERROR(parse_sampling(endpoint, fields, out));
  RETURN_IF_ERROR(fields.get_optional_int("prompt_logprobs", 0, 20, &out->prompt_logprobs));
  out->sampling.prompt_logprobs = out->prompt_logprobs;

  if (endpoint == Endpoint::kCompletions) {
    const json* prompt = fields.find("prompt");
    if (!prompt) return fields.fail("prompt", "prompt is required");
    bool echo = false;
    RETURN_IF_ERROR(fields.get_bool("echo", &echo));
    std::optional<int> logprobs;
    RETURN_IF_ERROR(fields.get_optional_int("logprobs", 0, 20, &logprobs));
    if (logprobs) {
      out->logprobs = true;
      out->top_logprobs = *logprobs;
      out->sampling.logprobs = *logprobs;
    } else if (out->best_of > 0) {
      out->sampling.logprobs = 0;  // the sampled tokens' logprobs rank the candidates (not returned)
    }
    if (const json* suffix = fields.find("suffix"); suffix && !(suffix->is_string() && suffix->get<std::string>().empty())) {
      return fields.unsupported("suffix", "suffix is not supported");
    }
    RETURN_IF_ERROR(parse_prompt(*prompt, context, fields, out));
    if (!echo) out->echo_texts.clear();
    if (echo && logprobs) {
      // OpenAI scores the echoed prompt: each prompt token after the first with its logprob and top alternatives.
      out->echo_logprobs = true;
      out->sampling.prompt_logprobs = std::max(out->sampling.prompt_logprobs.value_or(0), *logprobs);
    }
  } else {
    const json* messages = fields.find("messages");
    if (!messages) return fields.fail("messages", "messages is required");
    const ServedModel& model = context.model();
    ChatRequest chat_request;
    ASSIGN_OR_RETURN(chat_request.messages, parse_messages(*messages, fields));
    adapt_messages_to_template(&chat_request.messages, model.tool_arguments_as_objects, model.null_content_as_null);
    RETURN_IF_ERROR(fields.get_bool("logprobs", &out->logprobs));
    RETURN_IF_ERROR(fields.get_int("top_logprobs", 0, 20, &out->top_logprobs));
    if (fields.find("top_logprobs") && !out->logprobs) {
      return fields.fail("top_logprobs", "top_logprobs requires logprobs to be true");
    }
    if (out->logprobs) out->sampling.logprobs = out->top_logprobs;
    std::string tool_param;
    StatusOr<tools::ToolRequest> tool_request = tools::parse_tool_request(fields.object(), &tool_param);
    if (!tool_request.ok()) return fields.attribute(tool_param, tool_request.status());
    if (tool_request->choice == tools::ToolRequest::Choice::kAuto && !model.tool_call_parser) {
      return fields.fail("tool_choice",
                         "tool_choice \"auto\" needs the model's tool-call format, and this model's chat template "
                         "writes none: start the server with --tool-call-parser (hermes, llama3_json, deepseek_v3, "
                         "mistral), or send tool_choice \"required\" or a named function");
    }
    // The tools in the client's key order: the template prints them, and a forced call's arguments
    // follow their schema's property order.
    if (!tool_request->tools.is_null()) tool_request->tools = body.field("tools");
    if (tool_request->render_tools()) chat_request.tools = tool_request->tools;
    if (tool_request->forced()) {
      out->sampling.structured_output =
          StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema, tool_request->forced_schema(), {}};
    }
    out->tool_output = std::make_shared<const tools::ToolOutput>(*tool_request, model.tool_call_parser);
    if (const json* kwargs = fields.find("chat_template_kwargs")) {
      if (!kwargs->is_object()) return fields.wrong_type("chat_template_kwargs", "an object", *kwargs);
      chat_request.chat_template_kwargs = body.field("chat_template_kwargs");
    }
    if (const json* gen = fields.find("add_generation_prompt"); gen && gen->is_boolean()) {
      chat_request.add_generation_prompt = gen->get<bool>();
    }
    StatusOr<std::vector<TokenId>> ids = context.encode_chat(chat_request);
    if (!ids.ok()) return fields.attribute("messages", ids.status());
    out->prompts.push_back(std::move(*ids));
  }
  return Status::Ok();
}

// response_format ({"type": "text" | "json_object" | "json_schema"}), guided_json (a schema, as an
// object or as JSON text), guided_regex, guided_choice: at most one of them constrains the output.
// Schemas are taken from `body` re-read with key order kept (properties are produced in schema
// order); the body already passed the depth-limited parse.
Status parse_structured_output(const OrderedBody& body, const Fields& fields, SamplingParams* sampling) {
  std::vector<std::pair<std::string, StructuredOutputSpec>> specs;
  // The text of body[first][second]... with key order kept (a string as is).
  auto ordered = [&](const char* first, const char* second, const char* third) -> std::string {
    const nlohmann::ordered_json* v = &body.field(first);
    for (const char* key : {second, third}) {
      if (key == nullptr) break;
      if (!v->is_object() || !v->contains(key)) return std::string();
      v = &(*v)[key];
    }
    if (v->is_null()) return std::string();
    return v->is_string() ? v->get<std::string>() : v->dump();
  };
  if (const json* format = fields.find("response_format")) {
    const auto type = format->is_object() ? format->find("type") : format->end();
    if (!format->is_object() || type == format->end() || !type->is_string()) {
      return fields.fail("response_format", "response_format must be an object with a string \"type\"");
    }
    if (*type == "json_object") {
      specs.emplace_back("response_format", StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonObject, "", {}});
    } else if (*type == "json_schema") {
      const auto schema_obj = format->find("json_schema");
      if (schema_obj == format->end() || !schema_obj->is_object() || !schema_obj->contains("schema") ||
          !((*schema_obj)["schema"].is_object() || (*schema_obj)["schema"].is_boolean())) {
        return fields.fail("response_format", "response_format json_schema needs json_schema.schema (an object)");
      }
      specs.emplace_back("response_format", StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema,
                                                                 ordered("response_format", "json_schema", "schema"), {}});
    } else if (*type != "text") {
      return fields.fail("response_format", "response_format type must be \"text\", \"json_object\" or \"json_schema\"");
    }
  }
  if (const json* schema = fields.find("guided_json")) {
    if (!schema->is_object() && !schema->is_string() && !schema->is_boolean()) {
      return fields.wrong_type("guided_json", "a JSON schema (an object or its text)", *schema);
    }
    specs.emplace_back("guided_json", StructuredOutputSpec{StructuredOutputSpec::Kind::kJsonSchema,
                                                           ordered("guided_json", nullptr, nullptr), {}});
  }
  if (const json* regex = fields.find("guided_regex")) {
    if (!regex->is_string()) return fields.wrong_type("guided_regex", "a string", *regex);
    specs.emplace_back("guided_regex", StructuredOutputSpec{StructuredOutputSpec::Kind::kRegex, regex->get<std::string>(), {}});
  }
  if (const json* choice = fields.find("guided_choice")) {
    if (!choice->is_array() || choice->empty()) return fields.wrong_type("guided_choice", "a non-empty array of strings", *choice);
    StructuredOutputSpec spec{StructuredOutputSpec::Kind::kChoice, "", {}};
    for (const json& c : *choice) {
      if (!c.is_string()) return fields.wrong_type("guided_choice", "a non-empty array of strings", *choice);
      spec.choices.push_back(c.get<std::string>());
    }
    specs.emplace_back("guided_choice", std::move(spec));
  }
  if (specs.size() > 1) {
    return fields.fail(specs[1].first, specs[0].first + " and " + specs[1].first + " cannot be combined");
  }
  if (!specs.empty() && sampling->structured_output) {  // set by tool_choice required / a function
    return fields.fail(specs[0].first, specs[0].first + " cannot be combined with a forced tool_choice");
  }
  if (!specs.empty()) sampling->structured_output = std::move(specs[0].second);
  return Status::Ok();
}

// Every field a body may carry. Anything else (set, not null) is refused naming it: a field that
// changes the answer must never be dropped silently. `user` is accepted as OpenAI defines it (an
// end-user id for abuse monitoring: it only goes to the request log).
Status check_known_fields(Endpoint endpoint, const json& body, std::string* param) {
  static const std::set<std::string, std::less<>> kShared = {
      "model", "stream", "stream_options", "n", "best_of", "max_tokens", "temperature", "top_p", "top_k", "min_p",
      "repetition_penalty", "presence_penalty", "frequency_penalty", "ignore_eos", "min_tokens", "seed", "stop",
      "stop_token_ids", "include_stop_str_in_output", "logit_bias", "logprobs", "return_token_ids", "response_format", "guided_json",
      "guided_regex", "guided_choice", "user", "prompt_logprobs"};
  static const std::set<std::string, std::less<>> kCompletions = {"prompt", "echo", "suffix"};
  static const std::set<std::string, std::less<>> kChat = {
      "messages", "top_logprobs", "max_completion_tokens", "tools", "tool_choice", "parallel_tool_calls",
      "functions", "function_call", "chat_template_kwargs", "add_generation_prompt"};
  const auto& own = endpoint == Endpoint::kCompletions ? kCompletions : kChat;
  for (const auto& [key, value] : body.items()) {
    if (value.is_null() || kShared.count(key) || own.count(key)) continue;
    *param = key;
    return unimplemented(fmt::format("'{}' is not supported by longbow's {} endpoint; remove it (docs/api.md lists "
                                     "the fields served)",
                                     key, endpoint == Endpoint::kCompletions ? "/v1/completions" : "/v1/chat/completions"));
  }
  return Status::Ok();
}

}  // namespace

StatusOr<OpenAiRequest> parse_openai_request(Endpoint endpoint, std::string_view body, const ServingContext& context,
                                             std::string* error_param) {
  error_param->clear();
  StatusOr<json> document = parse_json(body, "the request body");
  if (!document.ok()) {
    return invalid_argument(document.status().message() + " (the body must be a JSON object in UTF-8)");
  }
  const json& parsed = *document;
  if (!parsed.is_object()) return invalid_argument("the request body must be a JSON object");
  OpenAiRequest request;
  request.endpoint = endpoint;
  Fields fields(parsed, error_param);
  RETURN_IF_ERROR(check_known_fields(endpoint, parsed, error_param));
  const OrderedBody ordered(body);
  RETURN_IF_ERROR(parse_fields(endpoint, ordered, context, fields, &request));
  RETURN_IF_ERROR(parse_structured_output(ordered, fields, &request.sampling));
  return request;
}

}  // namespace longbow::http
