// libFuzzer target: a REST request body -> parse_openai_request for both endpoints (JSON depth
// limit, every field's type and range, prompts as text, token ids or lists of them, chat messages,
// stop/stop_token_ids/logit_bias caps), then the engine's validate_request on each prompt, the
// path both front ends share. A byte-level tokenizer stands in for the model's.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "server/engine/request_validation.h"
#include "server/frontend/http/openai_request.h"
#include "server/frontend/serving_context.h"
#include "tests/unit/engine/fake_tokenizer.h"

namespace {

struct Setup {
  longbow::fakes::FakeTokenizer tokenizer;
  longbow::ServingContext context{""};
  longbow::RequestLimits limits;
  Setup() {
    longbow::ServedModel model;
    model.id = "fuzz";
    model.max_model_len = 4096;
    model.vocab_size = tokenizer.vocab_size();
    context.set_ready(nullptr, &tokenizer, model);  // the parser never reaches the engine
    limits.vocab_size = tokenizer.vocab_size();
    limits.max_model_len = 4096;
    limits.max_kv_tokens = 1 << 20;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Setup* setup = new Setup();
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (longbow::http::Endpoint endpoint : {longbow::http::Endpoint::kCompletions, longbow::http::Endpoint::kChatCompletions}) {
    std::string param;
    auto request = longbow::http::parse_openai_request(endpoint, body, setup->context, &param);
    if (!request.ok()) continue;
    for (const std::vector<longbow::TokenId>& prompt : request->prompts) {
      longbow::GenerateRequest engine_request;
      engine_request.prompt_tokens = prompt;
      engine_request.sampling = request->sampling;
      (void)longbow::validate_request(engine_request, setup->limits);
    }
  }
  return 0;
}
