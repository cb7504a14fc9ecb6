#include "server/engine/output_processor.h"

#include <algorithm>

namespace longbow {

ChoiceState::ChoiceState(const Tokenizer& tokenizer, const SamplingParams& params, std::span<const TokenId> prompt,
                         int index_in, SeqId seq_in, uint64_t stream_in)
    : index(index_in),
      seq(seq_in),
      stream(stream_in),
      penalties(params, prompt, tokenizer.vocab_size()),
      detokenizer(tokenizer, params.stop) {}

GenerateEvent process_token(ChoiceState& choice, const SamplingParams& params, int max_tokens,
                            std::span<const TokenId> eos_token_ids, TokenId token,
                            std::optional<TokenLogprob> logprob) {
  GenerateEvent event;
  event.index = choice.index;
  event.token_ids.push_back(token);
  if (logprob) event.logprobs.push_back(std::move(*logprob));
  if (choice.finished) return event;

  ++choice.num_outputs;
  choice.penalties.record_output(token);
  auto contains = [token](std::span<const TokenId> ids) { return std::find(ids.begin(), ids.end(), token) != ids.end(); };
  bool allowed_to_stop = choice.num_outputs > params.min_tokens;
  bool eos = allowed_to_stop && !params.ignore_eos && contains(eos_token_ids);
  bool stop_token = allowed_to_stop && !eos && contains(params.stop_token_ids);

  if (stop_token && params.include_stop_str_in_output) {
    // The stop token's text is part of the output when asked (unless a stop string ends first).
    StreamingDetokenizer::Delta delta = choice.detokenizer.add_token(token);
    event.text = std::move(delta.text);
    if (delta.stop) {
      event.text += *delta.stop;
      event.stop_string = std::move(delta.stop);
    } else {
      event.text += choice.detokenizer.flush();
      event.stop_token = token;
    }
    event.finish_reason = FinishReason::kStop;
  } else if (eos || stop_token) {
    // The stop token's own text is not part of the output.
    event.text = choice.detokenizer.flush();
    event.finish_reason = FinishReason::kStop;
    if (stop_token) event.stop_token = token;
  } else {
    StreamingDetokenizer::Delta delta = choice.detokenizer.add_token(token);
    event.text = std::move(delta.text);
    if (delta.stop) {
      event.finish_reason = FinishReason::kStop;
      if (params.include_stop_str_in_output) event.text += *delta.stop;
      event.stop_string = std::move(delta.stop);
    } else if (choice.num_outputs >= max_tokens) {
      event.text += choice.detokenizer.flush();
      event.finish_reason = FinishReason::kLength;
    }
  }
  choice.finished = event.finish_reason.has_value();
  return event;
}

}  // namespace longbow
