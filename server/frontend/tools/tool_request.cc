#include "server/frontend/tools/tool_request.h"

#include <fmt/format.h>

#include <cctype>
#include <random>

#include "server/frontend/tools/parsers.h"

namespace longbow::tools {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// OpenAI's rule for function names: a-z, A-Z, 0-9, underscores and dashes, at most 64.
bool valid_function_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  }
  return true;
}

Status check_tool(const json& tool, size_t i, std::string* param) {
  *param = fmt::format("tools[{}]", i);
  if (!tool.is_object()) return invalid_argument(fmt::format("tools[{}] must be an object", i));
  auto type = tool.find("type");
  if (type == tool.end() || *type != "function") {
    return invalid_argument(fmt::format("tools[{}].type must be \"function\" (the only tool type served)", i));
  }
  auto function = tool.find("function");
  if (function == tool.end() || !function->is_object()) {
    return invalid_argument(fmt::format("tools[{}].function must be an object", i));
  }
  auto name = function->find("name");
  if (name == function->end() || !name->is_string() || !valid_function_name(name->get<std::string>())) {
    return invalid_argument(fmt::format(
        "tools[{}].function.name must be 1-64 characters of a-z, A-Z, 0-9, '_' and '-'", i));
  }
  if (auto description = function->find("description");
      description != function->end() && !description->is_null() && !description->is_string()) {
    return invalid_argument(fmt::format("tools[{}].function.description must be a string", i));
  }
  if (auto parameters = function->find("parameters");
      parameters != function->end() && !parameters->is_null() && !parameters->is_object()) {
    return invalid_argument(fmt::format("tools[{}].function.parameters must be a JSON schema object", i));
  }
  if (auto strict = function->find("strict"); strict != function->end() && !strict->is_null() && !strict->is_boolean()) {
    return invalid_argument(fmt::format("tools[{}].function.strict must be a boolean", i));
  }
  return Status::Ok();
}

const ordered_json* find_function(const ordered_json& tools, const std::string& name) {
  for (const ordered_json& tool : tools) {
    if (tool["function"]["name"] == name) return &tool["function"];
  }
  return nullptr;
}

ordered_json parameters_schema(const ordered_json& function) {
  auto parameters = function.find("parameters");
  if (parameters == function.end() || parameters->is_null()) {
    return ordered_json{{"type", "object"}, {"properties", ordered_json::object()}, {"additionalProperties", false}};
  }
  return *parameters;
}

}  // namespace

StatusOr<ToolRequest> parse_tool_request(const json& body, std::string* param) {
  ToolRequest request;
  for (const char* deprecated : {"functions", "function_call"}) {
    if (auto field = body.find(deprecated); field != body.end() && !field->is_null()) {
      *param = deprecated;
      return unimplemented(fmt::format("{} is deprecated and not served; use tools and tool_choice", deprecated));
    }
  }
  auto tools = body.find("tools");
  const bool has_tools = tools != body.end() && !tools->is_null() && !(tools->is_array() && tools->empty());
  if (has_tools) {
    *param = "tools";
    if (!tools->is_array()) return invalid_argument("tools must be a list of {\"type\": \"function\", \"function\": {...}}");
    if (tools->size() > 1024) return invalid_argument("at most 1024 tools per request");
    for (size_t i = 0; i < tools->size(); ++i) RETURN_IF_ERROR(check_tool((*tools)[i], i, param));
    request.tools = ordered_json::parse(tools->dump());
    request.choice = ToolRequest::Choice::kAuto;
  }
  if (auto choice = body.find("tool_choice"); choice != body.end() && !choice->is_null()) {
    *param = "tool_choice";
    if (choice->is_string()) {
      const std::string value = choice->get<std::string>();
      if (value == "none") {
        request.choice = ToolRequest::Choice::kNone;
      } else if (value == "auto" || value == "required") {
        if (!has_tools) return invalid_argument(fmt::format("tool_choice \"{}\" needs tools", value));
        request.choice = value == "auto" ? ToolRequest::Choice::kAuto : ToolRequest::Choice::kRequired;
      } else {
        return invalid_argument("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", "
                                "\"function\": {\"name\": ...}}");
      }
    } else if (choice->is_object()) {
      auto function = choice->find("function");
      if (choice->value("type", json()) != "function" || function == choice->end() || !function->is_object() ||
          !function->contains("name") || !(*function)["name"].is_string()) {
        return invalid_argument("tool_choice must be {\"type\": \"function\", \"function\": {\"name\": ...}}");
      }
      request.function = (*function)["name"].get<std::string>();
      if (!has_tools || find_function(request.tools, request.function) == nullptr) {
        return invalid_argument(fmt::format("tool_choice names function \"{}\", which is not in tools", request.function));
      }
      request.choice = ToolRequest::Choice::kFunction;
    } else {
      return invalid_argument("tool_choice must be a string or an object");
    }
  }
  if (auto parallel = body.find("parallel_tool_calls"); parallel != body.end() && !parallel->is_null()) {
    *param = "parallel_tool_calls";
    if (!parallel->is_boolean()) return invalid_argument("parallel_tool_calls must be a boolean");
    request.parallel = parallel->get<bool>();
  }
  param->clear();
  return request;
}

std::string ToolRequest::forced_schema() const {
  if (choice == Choice::kFunction) return parameters_schema(*find_function(tools, function)).dump();
  ordered_json variants = ordered_json::array();
  for (const ordered_json& tool : tools) {
    variants.push_back(ordered_json{
        {"type", "object"},
        {"properties", {{"name", {{"const", tool["function"]["name"]}}}, {"parameters", parameters_schema(tool["function"])}}},
        {"required", {"name", "parameters"}},
        {"additionalProperties", false}});
  }
  ordered_json schema = {{"type", "array"}, {"items", {{"anyOf", std::move(variants)}}}, {"minItems", 1}};
  if (!parallel) schema["maxItems"] = 1;
  return schema.dump();
}

ToolOutput::ToolOutput(const ToolRequest& request, std::shared_ptr<const ToolCallParser> parser)
    : parser_(std::move(parser)), function_(request.function), parallel_(request.parallel) {
  switch (request.choice) {
    case ToolRequest::Choice::kNone: mode_ = Mode::kNone; break;
    case ToolRequest::Choice::kAuto: mode_ = parser_ ? Mode::kParse : Mode::kNone; break;
    case ToolRequest::Choice::kRequired: mode_ = Mode::kRequired; break;
    case ToolRequest::Choice::kFunction: mode_ = Mode::kNamed; break;
  }
}

void ToolOutput::limit(std::vector<ToolCall>* calls) const {
  if (!parallel_ && calls->size() > 1) calls->resize(1);
}

SplitOutput ToolOutput::split(std::string_view text) const {
  SplitOutput out;
  switch (mode_) {
    case Mode::kNone:
      out.content = std::string(text);
      return out;
    case Mode::kParse:
      out = split_tool_calls(*parser_, text);
      break;
    case Mode::kNamed: {
      ToolCall call;
      if (call_from_parts(function_, text, &call)) out.calls.push_back(std::move(call));
      else out.content = std::string(text);  // cut short (max_tokens): what there is, as content
      break;
    }
    case Mode::kRequired: {
      const ordered_json list = ordered_json::parse(text, nullptr, false);
      std::vector<ToolCall> calls;
      bool ok = list.is_array() && !list.empty();
      for (size_t i = 0; ok && i < list.size(); ++i) {
        ToolCall call;
        ok = call_from_json(list[i].dump(), &call);
        calls.push_back(std::move(call));
      }
      if (ok) out.calls = std::move(calls);
      else out.content = std::string(text);
      break;
    }
  }
  limit(&out.calls);
  return out;
}

ToolOutput::Stream::Stream(const ToolOutput& output) : output_(output) {
  if (output.mode_ == Mode::kParse) parse_ = std::make_unique<ToolCallStream>(*output.parser_);
}

ToolCallStream::Delta ToolOutput::Stream::feed(std::string_view text) {
  ToolCallStream::Delta delta;
  if (output_.mode_ == Mode::kNone) {
    delta.content = std::string(text);
  } else if (parse_) {
    delta = parse_->feed(text);
  } else {
    forced_text_.append(text);
  }
  return limited(std::move(delta));
}

ToolCallStream::Delta ToolOutput::Stream::finish() {
  ToolCallStream::Delta delta;
  if (parse_) {
    delta = parse_->finish();
  } else if (output_.mode_ != Mode::kNone) {
    SplitOutput split = output_.split(forced_text_);
    delta.content = std::move(split.content);
    delta.calls = std::move(split.calls);
  }
  return limited(std::move(delta));
}

// parallel_tool_calls false: only the first call is released.
ToolCallStream::Delta ToolOutput::Stream::limited(ToolCallStream::Delta delta) {
  if (!output_.parallel_) {
    const size_t room = calls_ >= 1 ? 0 : 1;
    if (delta.calls.size() > room) delta.calls.resize(room);
  }
  calls_ += delta.calls.size();
  return delta;
}

bool template_takes_argument_objects(std::string_view source) {
  auto has = [&](std::string_view s) { return source.find(s) != std::string_view::npos; };
  if (has("arguments|tojson") || has("arguments | tojson") || has("arguments is string") ||
      has("arguments is mapping")) {
    return true;
  }
  return !has("['arguments']") && !has(".arguments");
}

bool template_takes_null_content(std::string_view source) {
  for (std::string_view test : {"message['content'] is none", "message['content'] is not none",
                                "message.content is none", "message.content is not none"}) {
    if (source.find(test) != std::string_view::npos) return true;
  }
  return false;
}

std::string new_tool_call_id() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  std::string id = "call_";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

}  // namespace longbow::tools
