// Tool calling through three real client libraries against longbow serve: the official `openai`
// client, the Vercel AI SDK (`ai` + `@ai-sdk/openai-compatible`) and LangChain (`@langchain/openai`).
// Each makes a round trip (tools -> tool_calls -> a tool message -> an answer), streaming and not.
// The model has random weights, so the call is forced with tool_choice "required" and
// parallel_tool_calls false, or a named tool (the grammar makes it valid against the schema); the answer after the tool message is free text. Seeds fix every
// sample, so a run is the same on any machine.
// Usage: node tool_clients.mjs BASE_URL MODEL   (exits 1 listing the failed checks)
import OpenAI from 'openai';
import { generateText, streamText, jsonSchema, tool, stepCountIs } from 'ai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage, ToolMessage } from '@langchain/core/messages';

const [baseURL, model] = process.argv.slice(2);
const failures = [];
let passed = 0;
function check(condition, what) {
  if (condition) passed += 1;
  else failures.push(what);
}

const weatherParameters = {
  type: 'object',
  properties: {
    city: { type: 'string', enum: ['Paris', 'Rome', 'Oslo'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
  },
  required: ['city', 'days'],
  additionalProperties: false,
};
const weatherTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'The forecast for a city', parameters: weatherParameters },
};
function validWeather(args, what) {
  check(args && ['Paris', 'Rome', 'Oslo'].includes(args.city), `${what}: city ${JSON.stringify(args)}`);
  check(args && Number.isInteger(args.days) && args.days >= 1 && args.days <= 7, `${what}: days ${JSON.stringify(args)}`);
}

// ---- openai ----------------------------------------------------------------------------------------
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'sk-no-key-required', maxRetries: 0 });
const messages = [{ role: 'user', content: 'What is the weather in Paris this week?' }];
const first = await client.chat.completions.create({
  model, messages, tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 64, seed: 1,
});
const call = first.choices[0].message.tool_calls?.[0];
check(first.choices[0].finish_reason === 'tool_calls', `openai: finish_reason ${first.choices[0].finish_reason}`);
check(call && call.type === 'function' && call.function.name === 'get_weather' && /^call_/.test(call.id),
      `openai: tool call ${JSON.stringify(call)}`);
validWeather(call ? JSON.parse(call.function.arguments) : null, 'openai');
messages.push(first.choices[0].message);
messages.push({ role: 'tool', tool_call_id: call?.id ?? 'x', content: JSON.stringify({ forecast: 'sunny', high: 24 }) });
const answer = await client.chat.completions.create({ model, messages, tools: [weatherTool], max_tokens: 8, seed: 1 });
check(typeof answer.choices[0].message.content === 'string' && answer.choices[0].message.content.length > 0,
      `openai: answer after the tool message ${JSON.stringify(answer.choices[0].message)}`);
check(answer.usage.prompt_tokens > first.usage.prompt_tokens, 'openai: the tool result is part of the prompt');

// Streaming: tool_calls deltas by index, then finish_reason tool_calls.
const stream = await client.chat.completions.create({
  model, messages: messages.slice(0, 1), tools: [weatherTool], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 64,
  seed: 1, stream: true,
});
const streamed = [];
let streamFinish = null;
for await (const chunk of stream) {
  for (const choice of chunk.choices) {
    for (const delta of choice.delta?.tool_calls ?? []) {
      if (!streamed[delta.index]) streamed[delta.index] = { id: delta.id, name: '', arguments: '' };
      streamed[delta.index].name += delta.function?.name ?? '';
      streamed[delta.index].arguments += delta.function?.arguments ?? '';
    }
    if (choice.finish_reason) streamFinish = choice.finish_reason;
  }
}
check(streamFinish === 'tool_calls', `openai stream: finish_reason ${streamFinish}`);
check(streamed.length >= 1 && streamed[0].name === 'get_weather', `openai stream: ${JSON.stringify(streamed)}`);
check(streamed.length >= 1 && streamed[0].arguments === call?.function.arguments,
      'openai stream: the same call as the non-streamed answer (same seed)');

// A named function.
const named = await client.chat.completions.create({
  model, messages: messages.slice(0, 1), tools: [weatherTool],
  tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 64,
});
check(named.choices[0].message.tool_calls?.length === 1, `openai named: ${JSON.stringify(named.choices[0].message)}`);
validWeather(JSON.parse(named.choices[0].message.tool_calls?.[0]?.function.arguments ?? 'null'), 'openai named');

// ---- Vercel AI SDK ---------------------------------------------------------------------------------
const provider = createOpenAICompatible({ name: 'longbow', baseURL: `${baseURL}/v1`, apiKey: 'none' });
let executed = 0;
const aiTools = {
  get_weather: tool({
    description: 'The forecast for a city',
    inputSchema: jsonSchema(weatherParameters),
    execute: async (input) => {
      executed += 1;
      validWeather(input, 'ai execute');
      return { forecast: 'sunny', high: 24 };
    },
  }),
};
// A random-weight model rarely closes a list of calls by itself, so the first step names the tool
// (one call, bounded by its schema); the second answers in text.
const steps = ({ stepNumber }) =>
  (stepNumber === 0 ? { toolChoice: { type: 'tool', toolName: 'get_weather' } } : { toolChoice: 'none' });
const generated = await generateText({
  model: provider.chatModel(model), tools: aiTools, prepareStep: steps, stopWhen: stepCountIs(2),
  prompt: 'What is the weather in Rome?', maxOutputTokens: 256, seed: 7,
});
check(generated.steps.length === 2, `ai: ${generated.steps.length} steps`);
check(generated.steps[0]?.toolCalls?.[0]?.toolName === 'get_weather', `ai: step 1 ${JSON.stringify(generated.steps[0]?.toolCalls)}`);
check(generated.steps[0]?.finishReason === 'tool-calls', `ai: step 1 finish ${generated.steps[0]?.finishReason}`);
check(typeof generated.text === 'string', 'ai: final text');
const aiStream = streamText({
  model: provider.chatModel(model), tools: aiTools, prepareStep: steps, stopWhen: stepCountIs(2),
  prompt: 'What is the weather in Oslo?', maxOutputTokens: 256, seed: 8,
});
const parts = [];
for await (const part of aiStream.fullStream) parts.push(part.type);
const aiSteps = await aiStream.steps;
check(parts.includes('tool-call') && parts.includes('tool-result'), `ai stream: parts ${[...new Set(parts)]}`);
check(aiSteps.length === 2 && aiSteps[0].toolCalls[0]?.toolName === 'get_weather', `ai stream: ${aiSteps.length} steps`);
check(executed === 2, `ai: the tool ran ${executed} times`);

// ---- LangChain -------------------------------------------------------------------------------------
const llm = new ChatOpenAI({ model, apiKey: 'none', configuration: { baseURL: `${baseURL}/v1` }, maxTokens: 256,
                             maxRetries: 0, modelKwargs: { seed: 9 } });
const withTools = llm.bindTools([weatherTool], { tool_choice: 'required', parallel_tool_calls: false });
const human = new HumanMessage('What is the weather in Paris?');
const aiMessage = await withTools.invoke([human]);
check(aiMessage.tool_calls?.[0]?.name === 'get_weather', `langchain: ${JSON.stringify(aiMessage.tool_calls)}`);
validWeather(aiMessage.tool_calls?.[0]?.args, 'langchain');
const reply = await llm.invoke([human, aiMessage,
  new ToolMessage({ tool_call_id: aiMessage.tool_calls?.[0]?.id ?? 'x', content: 'sunny, 24C' })]);
check(typeof reply.content === 'string' && reply.content.length > 0, `langchain: answer ${JSON.stringify(reply.content)}`);
let gathered;
for await (const chunk of await withTools.stream([human])) gathered = gathered ? gathered.concat(chunk) : chunk;
check(gathered?.tool_calls?.[0]?.name === 'get_weather', `langchain stream: ${JSON.stringify(gathered?.tool_calls)}`);
validWeather(gathered?.tool_calls?.[0]?.args, 'langchain stream');

if (failures.length) {
  console.error(`tool_clients: ${failures.length} failed, ${passed} passed:\n  ${failures.join('\n  ')}`);
  process.exit(1);
}
console.log(`tool_clients: ${passed} checks passed`);
