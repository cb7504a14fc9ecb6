// ServingContext: what both front ends (REST and gRPC) share about the one served model.
//
// It exists before the model does: the listeners start first so that /health and grpc.health.v1
// can answer "loading" (503 / NOT_SERVING) while weights load. set_ready() publishes the engine and
// tokenizer once; set_draining() flips readiness off for SIGTERM. Everything else here is the
// protocol-agnostic half of a request: model-name and API-key checks, prompt encoding (text, token
// ids, chat), request ids, and the count of requests still streaming (shutdown waits on it).
// All methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "model/tokenizer/tokenizer.h"
#include "server/engine/engine.h"
#include "model/tokenizer/chat/chat_template.h"
#include "server/frontend/chat_prompt.h"
#include "server/frontend/tools/tool_call_parser.h"

namespace longbow {

struct ServedModel {
  std::string id;            // the name clients pass as "model"
  int64_t created = 0;       // unix seconds when it was loaded
  int max_model_len = 0;     // prompt + outputs
  int vocab_size = 0;
  // tokenizer_config.json add_bos_token: whether prompts start with BOS when special tokens are
  // added; unset: as the tokenizer's own post-processor (sentencepiece: BOS when it has one).
  std::optional<bool> add_bos;
  // The chat template, or why chat requests are refused (none, or one the interpreter cannot parse).
  StatusOr<ChatTemplate> chat_template = not_found("the model has no chat_template");
  ChatTemplateTokens chat_tokens;  // bos_token, eos_token... as the template sees them
  // How tool calls are read from outputs (--tool-call-parser, or the template's format); null: none.
  std::shared_ptr<const tools::ToolCallParser> tool_call_parser;
  // Whether the template takes an assistant tool call's arguments as an object (transformers'
  // convention) rather than the JSON text (DeepSeek-V3's template concatenates it as a string).
  bool tool_arguments_as_objects = true;
  // Whether an assistant message's null content reaches the template as null (else "").
  bool null_content_as_null = false;
};

class ServingContext {
 public:
  enum class State { kLoading, kReady, kDraining };

  // `api_key` empty: no authentication.
  explicit ServingContext(std::string api_key);

  // Publishes the loaded model; the state becomes kReady. `engine` and `tokenizer` must outlive
  // every front-end call. Checks that the chat template's special tokens exist in the vocabulary
  // (if not, chat requests get that error).
  void set_ready(Engine* engine, const Tokenizer* tokenizer, ServedModel model);
  // Readiness off: /health 503, gRPC NOT_SERVING, new requests UNAVAILABLE.
  void set_draining();
  State state() const { return state_.load(std::memory_order_acquire); }

  // OK when ready; UNAVAILABLE naming "loading" or "draining" otherwise. Call before engine().
  Status check_serving() const;
  // OK for an empty name or the served model's id; NOT_FOUND otherwise.
  Status check_model(std::string_view name) const;

  bool requires_api_key() const { return !api_key_.empty(); }
  // Compares `presented` with the configured key in time independent of where they differ.
  bool api_key_matches(std::string_view presented) const;

  // Valid once check_serving() was OK.
  Engine& engine() const { return *engine_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ServedModel& model() const { return model_; }

  // The text's tokens; with `add_special_tokens` the tokenizer's special tokens around them (BOS as
  // tokenizer_config.json's add_bos_token says, when it says).
  std::vector<TokenId> encode_text(std::string_view text, bool add_special_tokens = true) const;
  // The chat template rendered (special-token text in it becomes those tokens) and encoded, with
  // BOS prepended when the model wants BOS and the template did not write it. INVALID_ARGUMENT
  // (a 400) when the model has no usable template or the template refuses the conversation.
  StatusOr<std::vector<TokenId>> encode_chat(const ChatRequest& request) const;
  // The rendered prompt text of `request` (what encode_chat tokenizes).
  StatusOr<std::string> render_chat(const ChatRequest& request) const;

  // "<prefix>-<16 hex digits>", unique within this process.
  std::string new_request_id(std::string_view prefix);

  // Requests that are still writing a response: SIGTERM lets them finish before the listeners stop.
  class InFlight {
   public:
    explicit InFlight(ServingContext& context);
    ~InFlight();
    InFlight(const InFlight&) = delete;
    InFlight& operator=(const InFlight&) = delete;

   private:
    ServingContext& context_;
  };
  // Waits until no InFlight is alive, up to `timeout`; true when none is.
  bool wait_idle(std::chrono::milliseconds timeout);

 private:
  // Text that may hold special-token text: tokenizers that do not find added tokens themselves
  // (sentencepiece) get it split at the control pieces first.
  std::vector<TokenId> encode_with_specials(std::string_view text) const;

  const std::string api_key_;
  std::atomic<State> state_{State::kLoading};
  Engine* engine_ = nullptr;
  const Tokenizer* tokenizer_ = nullptr;
  ServedModel model_;
  std::vector<std::pair<std::string, TokenId>> control_pieces_;  // sentencepiece: longest first

  const uint64_t id_salt_;
  std::atomic<uint64_t> next_id_{1};

  std::mutex in_flight_mutex_;
  std::condition_variable in_flight_cv_;
  int in_flight_ = 0;
};

}  // namespace longbow
