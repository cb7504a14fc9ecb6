#include "server/frontend/http/openai_response.h"

namespace longbow::http {
namespace {

bool is_chat(const ResponseMeta& meta) { return meta.endpoint == Endpoint::kChatCompletions; }

ordered_json header(const ResponseMeta& meta, const char* object) {
  return ordered_json{{"id", meta.id}, {"object", object}, {"created", meta.created}, {"model", meta.model}};
}

ordered_json byte_list(const std::string& bytes) {
  ordered_json list = ordered_json::array();
  for (char c : bytes) list.push_back(static_cast<unsigned char>(c));
  return list;
}

// Chat logprobs: {"content": [{token, logprob, bytes, top_logprobs: [...]}], "refusal": null}.
ordered_json chat_logprobs(const std::vector<TokenLogprob>& logprobs, const Tokenizer& tokenizer) {
  ordered_json content = ordered_json::array();
  for (const TokenLogprob& lp : logprobs) {
    const std::string bytes = tokenizer.token_bytes(lp.token);
    ordered_json top = ordered_json::array();
    for (const auto& [token, logprob] : lp.top) {
      const std::string top_bytes = tokenizer.token_bytes(token);
      top.push_back(ordered_json{{"token", top_bytes}, {"logprob", logprob}, {"bytes", byte_list(top_bytes)}});
    }
    content.push_back(ordered_json{
        {"token", bytes}, {"logprob", lp.logprob}, {"bytes", byte_list(bytes)}, {"top_logprobs", std::move(top)}});
  }
  return ordered_json{{"content", std::move(content)}, {"refusal", nullptr}};
}

// Legacy completions logprobs: {tokens, token_logprobs, top_logprobs: [{token: logprob}], text_offset}.
ordered_json completion_logprobs(const std::vector<TokenLogprob>& logprobs, const Tokenizer& tokenizer,
                                 size_t text_offset) {
  ordered_json tokens = ordered_json::array(), token_logprobs = ordered_json::array();
  ordered_json top_logprobs = ordered_json::array(), offsets = ordered_json::array();
  for (const TokenLogprob& lp : logprobs) {
    const std::string bytes = tokenizer.token_bytes(lp.token);
    tokens.push_back(bytes);
    token_logprobs.push_back(lp.logprob);
    ordered_json top = ordered_json::object();
    for (const auto& [token, logprob] : lp.top) top[tokenizer.token_bytes(token)] = logprob;
    top_logprobs.push_back(std::move(top));
    offsets.push_back(text_offset);
    text_offset += bytes.size();
  }
  return ordered_json{{"tokens", std::move(tokens)},
                      {"token_logprobs", std::move(token_logprobs)},
                      {"top_logprobs", std::move(top_logprobs)},
                      {"text_offset", std::move(offsets)}};
}

// Completions with echo and logprobs: the prompt's tokens first (the first without a logprob, as
// OpenAI answers), then the completion's; text offsets run on across both.
ordered_json echoed_completion_logprobs(const ChoiceOutput& c, const Tokenizer& tokenizer) {
  std::vector<TokenLogprob> all = c.prompt_logprobs;
  all.insert(all.end(), c.logprobs.begin(), c.logprobs.end());
  const std::string first = c.first_prompt_token ? tokenizer.token_bytes(*c.first_prompt_token) : std::string();
  ordered_json out = completion_logprobs(all, tokenizer, first.size());
  if (c.first_prompt_token) {
    out["tokens"].insert(out["tokens"].begin(), first);
    out["token_logprobs"].insert(out["token_logprobs"].begin(), nullptr);
    out["top_logprobs"].insert(out["top_logprobs"].begin(), nullptr);
    out["text_offset"].insert(out["text_offset"].begin(), 0);
  }
  return out;
}

// vLLM's prompt_logprobs: null for the first prompt token, then per token {"<id>": {logprob, rank,
// decoded_token}} holding the prompt token and its top alternatives (rank i + 1 for the i-th).
ordered_json prompt_logprobs_json(const std::vector<TokenLogprob>& prompt_logprobs, const Tokenizer& tokenizer) {
  ordered_json list = ordered_json::array({nullptr});
  for (const TokenLogprob& lp : prompt_logprobs) {
    ordered_json entry = ordered_json::object();
    auto add = [&](TokenId token, float logprob, int rank) {
      const std::string key = std::to_string(token);
      if (entry.contains(key)) return;
      entry[key] = ordered_json{{"logprob", logprob}, {"rank", rank}, {"decoded_token", tokenizer.token_bytes(token)}};
    };
    add(lp.token, lp.logprob, lp.rank);
    for (size_t i = 0; i < lp.top.size(); ++i) add(lp.top[i].first, lp.top[i].second, static_cast<int>(i) + 1);
    list.push_back(std::move(entry));
  }
  return list;
}

ordered_json logprobs_json(const ResponseMeta& meta, const std::vector<TokenLogprob>& logprobs,
                           const Tokenizer& tokenizer) {
  if (!meta.logprobs) return nullptr;
  return is_chat(meta) ? chat_logprobs(logprobs, tokenizer) : completion_logprobs(logprobs, tokenizer, 0);
}

// vLLM's "stop_reason" extension: the stop string or stop token id that ended the choice, or null.
ordered_json stop_reason(const ChoiceOutput& choice) {
  if (choice.stop_string) return *choice.stop_string;
  if (choice.stop_token) return *choice.stop_token;
  return nullptr;
}

ordered_json finish_reason(const std::optional<FinishReason>& reason, bool made_tool_calls = false) {
  if (!reason) return nullptr;
  if (made_tool_calls && *reason != FinishReason::kLength) return "tool_calls";
  return std::string(finish_reason_name(*reason));
}

ordered_json tool_calls_json(const std::vector<tools::ToolCall>& calls, size_t first, bool with_index) {
  ordered_json list = ordered_json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    ordered_json call = ordered_json::object();
    if (with_index) call["index"] = first + i;
    call["id"] = tools::new_tool_call_id();
    call["type"] = "function";
    call["function"] = ordered_json{{"name", calls[i].name}, {"arguments", calls[i].arguments}};
    list.push_back(std::move(call));
  }
  return list;
}

}  // namespace

void ChoiceOutput::append(const GenerateEvent& event) {
  text += event.text;
  token_ids.insert(token_ids.end(), event.token_ids.begin(), event.token_ids.end());
  logprobs.insert(logprobs.end(), event.logprobs.begin(), event.logprobs.end());
  if (!event.prompt_logprobs.empty()) prompt_logprobs = event.prompt_logprobs;
  if (event.finish_reason) finish_reason = event.finish_reason;
  if (event.stop_string) stop_string = event.stop_string;
  if (event.stop_token) stop_token = event.stop_token;
}

std::string to_json_text(const ordered_json& value) {
  return value.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}

ordered_json usage_json(const Usage& usage) {
  return ordered_json{{"prompt_tokens", usage.prompt_tokens},
                      {"completion_tokens", usage.completion_tokens},
                      {"total_tokens", usage.prompt_tokens + usage.completion_tokens},
                      {"prompt_tokens_details", {{"cached_tokens", usage.cached_prompt_tokens}}}};
}

ordered_json full_response(const ResponseMeta& meta, const std::vector<ChoiceOutput>& choices, const Usage& usage,
                           const Tokenizer& tokenizer, const tools::ToolOutput* tools) {
  ordered_json out = header(meta, is_chat(meta) ? "chat.completion" : "text_completion");
  ordered_json list = ordered_json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceOutput& c = choices[i];
    ordered_json choice = {{"index", i}};
    bool made_tool_calls = false;
    if (is_chat(meta)) {
      tools::SplitOutput split;
      if (tools && tools->active()) split = tools->split(c.text);
      else split.content = c.text;
      made_tool_calls = !split.calls.empty();
      ordered_json message = {{"role", "assistant"}};
      const bool blank = split.content.find_first_not_of(" \t\r\n") == std::string::npos;
      message["content"] = made_tool_calls && blank ? ordered_json(nullptr) : ordered_json(split.content);
      message["refusal"] = nullptr;
      if (made_tool_calls) message["tool_calls"] = tool_calls_json(split.calls, 0, false);
      choice["message"] = std::move(message);
      choice["logprobs"] = logprobs_json(meta, c.logprobs, tokenizer);
    } else {
      choice["text"] = c.text;
      choice["logprobs"] = meta.echo_logprobs ? echoed_completion_logprobs(c, tokenizer)
                                              : logprobs_json(meta, c.logprobs, tokenizer);
      if (meta.prompt_logprobs) choice["prompt_logprobs"] = prompt_logprobs_json(c.prompt_logprobs, tokenizer);
    }
    choice["finish_reason"] = finish_reason(c.finish_reason, made_tool_calls);
    choice["stop_reason"] = stop_reason(c);
    if (meta.return_token_ids) choice["token_ids"] = c.token_ids;
    list.push_back(std::move(choice));
  }
  out["choices"] = std::move(list);
  if (is_chat(meta) && meta.prompt_logprobs) {
    out["prompt_logprobs"] = choices.empty() ? ordered_json(nullptr) : prompt_logprobs_json(choices[0].prompt_logprobs, tokenizer);
  }
  out["usage"] = usage_json(usage);
  return out;
}

ordered_json stream_chunk(const ResponseMeta& meta, int index, const std::string* role, const std::string& text,
                          const GenerateEvent* event, const Tokenizer& tokenizer) {
  static const std::vector<TokenLogprob> kNoLogprobs;
  const std::vector<TokenLogprob>& logprobs = event ? event->logprobs : kNoLogprobs;
  ordered_json out = header(meta, is_chat(meta) ? "chat.completion.chunk" : "text_completion");
  ordered_json choice = {{"index", index}};
  if (is_chat(meta)) {
    ordered_json delta = ordered_json::object();
    if (role) delta["role"] = *role;
    delta["content"] = text;
    choice["delta"] = std::move(delta);
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = event && !logprobs.empty() ? logprobs_json(meta, logprobs, tokenizer) : ordered_json(nullptr);
  if (meta.prompt_logprobs && event && !event->prompt_logprobs.empty()) {
    choice["prompt_logprobs"] = prompt_logprobs_json(event->prompt_logprobs, tokenizer);
  }
  choice["finish_reason"] = nullptr;
  if (meta.return_token_ids) choice["token_ids"] = event ? event->token_ids : std::vector<TokenId>{};
  out["choices"] = ordered_json::array({std::move(choice)});
  return out;
}

ordered_json echo_chunk(const ResponseMeta& meta, int index, const std::string& text, const ChoiceOutput& prompt,
                        const Tokenizer& tokenizer) {
  ordered_json out = stream_chunk(meta, index, nullptr, text, nullptr, tokenizer);
  out["choices"][0]["logprobs"] = echoed_completion_logprobs(prompt, tokenizer);
  return out;
}

ordered_json tool_calls_chunk(const ResponseMeta& meta, int index, const std::vector<tools::ToolCall>& calls,
                              size_t first) {
  ordered_json out = header(meta, "chat.completion.chunk");
  ordered_json choice = {{"index", index}};
  choice["delta"] = ordered_json{{"tool_calls", tool_calls_json(calls, first, true)}};
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = nullptr;
  out["choices"] = ordered_json::array({std::move(choice)});
  return out;
}

ordered_json finish_chunk(const ResponseMeta& meta, int index, const ChoiceOutput& finish, bool made_tool_calls) {
  ordered_json out = header(meta, is_chat(meta) ? "chat.completion.chunk" : "text_completion");
  ordered_json choice = {{"index", index}};
  if (is_chat(meta)) {
    choice["delta"] = ordered_json::object();
  } else {
    choice["text"] = "";
  }
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason(finish.finish_reason, made_tool_calls);
  choice["stop_reason"] = stop_reason(finish);
  if (meta.return_token_ids) choice["token_ids"] = std::vector<TokenId>{};
  out["choices"] = ordered_json::array({std::move(choice)});
  return out;
}

ordered_json usage_chunk(const ResponseMeta& meta, const Usage& usage) {
  ordered_json out = header(meta, is_chat(meta) ? "chat.completion.chunk" : "text_completion");
  out["choices"] = ordered_json::array();
  out["usage"] = usage_json(usage);
  return out;
}

}  // namespace longbow::http
