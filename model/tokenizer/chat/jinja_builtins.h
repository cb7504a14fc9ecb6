// The filters, tests, methods and global functions of the chat-template environment (jinja2's
// built-ins that chat templates use, Python's str/dict methods, and transformers' additions:
// tojson with ensure_ascii=False, raise_exception, strftime_now). An unsupported one is a
// TemplateError naming it.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "model/tokenizer/chat/jinja_value.h"

namespace longbow::jinja {

Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& input, CallArgs& args);
// `object`.name: a dict entry, or a bound method of a str, dict or list; undefined when neither.
Value get_attribute(const Value& object, const std::string& name);
// object[key]; undefined when the key or index is absent.
Value get_item(const Value& object, const Value& key);
// The code points of a string as one-character strings (iteration over a str).
ValueList string_chars(const std::string& s);

// range, namespace, dict, raise_exception, strftime_now (formatting `now`, local time).
ValueDict global_functions(std::function<std::chrono::system_clock::time_point()> now);

}  // namespace longbow::jinja
