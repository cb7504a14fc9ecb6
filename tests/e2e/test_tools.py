"""Tool calling end to end on a tiny random-weight model with Qwen3's real tokenizer.json and chat
template (Hermes-style <tool_call> markup, so the server picks the hermes parser itself):

- tool_choice "required" and a named function: the grammar forces a call that validates against the
  function's schema; finish_reason "tool_calls", streaming and not;
- tool_choice "auto": the model's own <tool_call> text is parsed into tool_calls (the random model is
  steered into writing one with guided_regex), with the text before it kept as content;
- the conversation with the assistant's tool_calls and the tool result is rendered by the model's
  template exactly as Python's jinja2 renders it in transformers' environment (the second oracle);
- errors name their field; a model whose template writes no tool calls refuses tool_choice "auto";
- the openai, Vercel AI SDK and LangChain npm clients make round trips (tool_clients.mjs).

    test_tools.py --longbow EXE --node NODE --node-dir DIR --make-demo-model EXE --hf-packages DIR
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile

import jinja2
import requests

from longbow_server import Checks, LongbowServer, make_qwen3_tiny_model

TOOL_CALL = 151657  # <tool_call>
TOOL_RESPONSE = 151665  # <tool_response>

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The forecast for a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city", "days"],
                   "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
                                  "days": {"type": "integer", "minimum": 1, "maximum": 7}}}}}
NOW = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {},
                                                                       "additionalProperties": False}}}
USER = [{"role": "user", "content": "What is the weather in Paris this week?"}]


def valid_weather(arguments):
    args = json.loads(arguments)
    return args.get("city") in ("Paris", "Rome", "Oslo") and isinstance(args.get("days"), int) and 1 <= args["days"] <= 7


def render_with_jinja2(template, messages, tools):
    """transformers' apply_chat_template environment: trim/lstrip blocks, tojson without ASCII escapes."""
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, tools=tools, add_generation_prompt=True)


def stream_chat(url, body):
    calls, content, finish = {}, "", None
    with requests.post(url + "/v1/chat/completions", json=dict(body, stream=True), stream=True) as r:
        for line in r.iter_lines():
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            for choice in json.loads(line[6:])["choices"]:
                delta = choice.get("delta", {})
                content += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    entry = calls.setdefault(call["index"], {"name": "", "arguments": "", "id": call.get("id")})
                    entry["name"] += call["function"].get("name") or ""
                    entry["arguments"] += call["function"].get("arguments") or ""
                finish = choice.get("finish_reason") or finish
    return [calls[i] for i in sorted(calls)], content, finish


def check_qwen_model(c, url, model, template):
    chat = url + "/v1/chat/completions"
    # required: a call validated by the schema, whatever the weights.
    # (A random-weight model rarely closes a list of calls by itself: parallel_tool_calls false bounds it.)
    r = requests.post(chat, json={"model": model, "messages": USER, "tools": [WEATHER, NOW], "tool_choice": "required",
                                  "parallel_tool_calls": False, "max_tokens": 64, "seed": 3})
    c.equal(r.status_code, 200, "required: status")
    choice = r.json()["choices"][0]
    calls = choice["message"].get("tool_calls") or []
    c.equal(choice["finish_reason"], "tool_calls", "required: finish_reason")
    c.check(len(calls) == 1 and all(x["function"]["name"] in ("get_weather", "now") for x in calls),
            "required: calls name listed functions: %s" % calls)
    c.check(all(re.fullmatch(r"call_[A-Za-z0-9]{24}", x["id"]) and x["type"] == "function" for x in calls),
            "required: ids and types %s" % calls)
    c.check(all(valid_weather(x["function"]["arguments"]) for x in calls if x["function"]["name"] == "get_weather")
            and all(json.loads(x["function"]["arguments"]) == {} for x in calls if x["function"]["name"] == "now"),
            "required: arguments follow the schemas %s" % calls)
    c.equal(choice["message"]["content"], None, "required: content is null")
    # Parallel calls: a list of them, or (cut short by max_tokens) the JSON so far as content.
    multi = requests.post(chat, json={"model": model, "messages": USER, "tools": [WEATHER, NOW], "seed": 4,
                                      "tool_choice": "required", "max_tokens": 64}).json()["choices"][0]
    c.check((multi["finish_reason"] == "tool_calls" and len(multi["message"]["tool_calls"]) >= 1) or
            (multi["finish_reason"] == "length" and multi["message"]["content"].startswith('[{"name":"')),
            "required with parallel calls: %s" % multi)
    # A named function, streaming: the same call as non-streaming with the same seed.
    body = {"model": model, "messages": USER, "tools": [WEATHER, NOW], "max_tokens": 64, "seed": 5,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    whole = requests.post(chat, json=body).json()["choices"][0]
    streamed, content, finish = stream_chat(url, body)
    c.check(len(whole["message"].get("tool_calls") or []) == 1 and valid_weather(
        whole["message"]["tool_calls"][0]["function"]["arguments"]), "named: one valid call %s" % whole)
    c.equal(finish, "tool_calls", "named stream: finish_reason")
    c.equal([(x["name"], x["arguments"]) for x in streamed],
            [(x["function"]["name"], x["function"]["arguments"]) for x in whole["message"].get("tool_calls") or []],
            "named stream: the same call")
    c.equal(content, "", "named stream: no content")

    # auto: the model's own Hermes markup, parsed (steered into writing it by a regex).
    steer = r'Checking\. <tool_call>\n\{"name": "get_weather", "arguments": \{"city": "(Paris|Rome)", "days": [1-7]\}\}\n</tool_call>'
    body = {"model": model, "messages": USER, "tools": [WEATHER], "max_tokens": 80, "seed": 6, "guided_regex": steer,
            "return_token_ids": True}
    r = requests.post(chat, json=body)
    c.equal(r.status_code, 200, "auto: status %s" % r.text[:300])
    choice = r.json()["choices"][0]
    calls = choice["message"].get("tool_calls") or []
    c.check(len(calls) == 1 and calls[0]["function"]["name"] == "get_weather" and
            valid_weather(calls[0]["function"]["arguments"]), "auto: the <tool_call> text became a call: %s" % choice)
    c.equal(choice["message"]["content"], "Checking. ", "auto: the text before the call is content")
    c.equal(choice["finish_reason"], "tool_calls", "auto: finish_reason")
    streamed, content, finish = stream_chat(url, body)
    c.equal([(x["name"], x["arguments"]) for x in streamed],
            [(x["function"]["name"], x["function"]["arguments"]) for x in calls], "auto stream: the same call")
    c.equal(content, "Checking. ", "auto stream: content")
    c.equal(finish, "tool_calls", "auto stream: finish_reason")
    # tool_choice none: the same steered text stays content.
    r = requests.post(chat, json=dict(body, tool_choice="none")).json()["choices"][0]
    c.check(r["message"].get("tool_calls") is None and "<tool_call>" in r["message"]["content"],
            "tool_choice none: no parsing %s" % r["message"])

    # The round trip's prompt: the model's template, as jinja2 renders it.
    conversation = USER + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                              "arguments": "{\"city\": \"Paris\", \"days\": 3}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"forecast\": \"sunny\", \"high\": 24}"}]
    ours = requests.post(url + "/tokenize", json={"messages": conversation, "tools": [WEATHER]}).json().get("tokens")
    template_messages = json.loads(json.dumps(conversation))
    template_messages[1]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris", "days": 3}
    template_messages[1]["content"] = ""  # null content reaches a template that never tests for none as ""

    text = render_with_jinja2(template, template_messages, [WEATHER])
    theirs = requests.post(url + "/tokenize", json={"prompt": text, "add_special_tokens": False}).json().get("tokens")
    c.check(ours is not None and ours == theirs, "tool conversation renders as jinja2 renders it")
    c.check(ours is not None and TOOL_CALL in ours and TOOL_RESPONSE in ours, "the rendered prompt holds the call and result")
    r = requests.post(chat, json={"model": model, "messages": conversation, "tools": [WEATHER], "max_tokens": 4})
    c.equal(r.status_code, 200, "an answer after the tool message")

    # Errors name their field.
    for bad, param in [({"tools": [{"type": "retrieval"}]}, "tools[0]"),
                       ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
                        "tool_choice"),
                       ({"tool_choice": "required"}, "tool_choice"),
                       ({"tools": [WEATHER], "tool_choice": "required", "guided_regex": "a"}, "guided_regex"),
                       ({"functions": [WEATHER["function"]]}, "functions")]:
        r = requests.post(chat, json=dict({"model": model, "messages": USER, "max_tokens": 4}, **bad))
        c.check(r.status_code == 400 and r.json()["error"].get("param") == param,
                "%s: 400 naming %s, got %s %s" % (json.dumps(bad)[:80], param, r.status_code, r.text[:200]))
    r = requests.post(chat, json={"model": model, "max_tokens": 4, "messages": USER + [{"role": "tool", "content": "x"}]})
    c.check(r.status_code == 400 and r.json()["error"].get("param") == "messages[1].tool_call_id",
            "a tool message needs tool_call_id: %s" % r.text[:200])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--longbow", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--node-dir", required=True)
    ap.add_argument("--source-dir", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--make-demo-model", required=True)
    ap.add_argument("--hf-packages", required=True)
    args = ap.parse_args()
    c = Checks()
    with tempfile.TemporaryDirectory() as model_dir:
        package = make_qwen3_tiny_model(args.make_demo_model, args.hf_packages, model_dir)
        with open(os.path.join(package, "tokenizer_config.json")) as f:
            template = json.load(f)["chat_template"]
        script = os.path.join(args.node_dir, "tool_clients.mjs")
        shutil.copyfile(os.path.join(args.source_dir, "tool_clients.mjs"), script)
        with LongbowServer(args.longbow, "--model", model_dir, "--max-model-len", "8192") as server:
            c.check(any("tool calls: hermes" in line for line in server.lines), "the hermes parser is picked from the template")
            model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
            check_qwen_model(c, server.url, model, template)
            p = subprocess.run([args.node, script, server.url, model], timeout=240)
            c.equal(p.returncode, 0, "openai, ai-sdk and langchain clients: tool round trips")
            if c.failed:
                server.dump_log()
    # The demo model's template writes no tool calls: auto is refused, required still works.
    with LongbowServer(args.longbow) as server:
        model = requests.get(server.url + "/v1/models").json()["data"][0]["id"]
        r = requests.post(server.url + "/v1/chat/completions",
                          json={"model": model, "messages": USER, "tools": [WEATHER], "max_tokens": 4})
        c.check(r.status_code == 400 and r.json()["error"].get("param") == "tool_choice" and
                "--tool-call-parser" in r.json()["error"]["message"], "auto without a tool format: %s" % r.text[:300])
        r = requests.post(server.url + "/v1/chat/completions",
                          json={"model": model, "messages": USER, "tools": [WEATHER], "tool_choice": "required",
                                "parallel_tool_calls": False, "max_tokens": 64})
        calls = r.json()["choices"][0]["message"].get("tool_calls") or [] if r.status_code == 200 else []
        c.check(len(calls) >= 1 and all(valid_weather(x["function"]["arguments"]) for x in calls),
                "required on the demo model: %s" % r.text[:300])
    c.finish()


if __name__ == "__main__":
    main()
