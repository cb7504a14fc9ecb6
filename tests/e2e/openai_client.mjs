// The official `openai` npm client against longbow serve: completions and chat completions,
// streaming and not, with usage; the SDK's strict stream helper; errors as typed SDK exceptions.
// Usage: node openai_client.mjs BASE_URL MODEL   (exits 1 listing the failed checks)
import OpenAI from 'openai';

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'sk-no-key-required', maxRetries: 0 });
const failures = [];
let passed = 0;
function check(condition, what) {
  if (condition) passed += 1;
  else failures.push(what);
}
function checkUsage(usage, what) {
  check(usage && usage.prompt_tokens > 0 && usage.completion_tokens > 0 &&
        usage.total_tokens === usage.prompt_tokens + usage.completion_tokens, `${what}: usage ${JSON.stringify(usage)}`);
}

const messages = [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Tell me about the sea' }];

// Completions, non-streaming and streaming (greedy: the same text).
const completion = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
check(completion.object === 'text_completion', 'completion object');
check(typeof completion.choices[0].text === 'string' && completion.choices[0].text.length > 0, 'completion text');
check(['stop', 'length'].includes(completion.choices[0].finish_reason), 'completion finish_reason');
checkUsage(completion.usage, 'completion');

const completionStream = await client.completions.create({
  model, prompt: 'Once upon a time', max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let streamedText = '';
let streamedUsage = null;
let streamedFinish = null;
for await (const chunk of completionStream) {
  if (chunk.usage) streamedUsage = chunk.usage;
  for (const choice of chunk.choices) {
    streamedText += choice.text;
    if (choice.finish_reason) streamedFinish = choice.finish_reason;
  }
}
check(streamedText === completion.choices[0].text, `streamed completion text ${JSON.stringify(streamedText)}`);
check(streamedFinish === completion.choices[0].finish_reason, 'streamed completion finish_reason');
checkUsage(streamedUsage, 'streamed completion');
check(JSON.stringify(streamedUsage) === JSON.stringify(completion.usage), 'streamed usage == non-streamed usage');

// Chat completions, non-streaming and streaming.
const chat = await client.chat.completions.create({ model, messages, max_tokens: 10, temperature: 0 });
check(chat.object === 'chat.completion', 'chat object');
check(chat.choices[0].message.role === 'assistant', 'chat role');
check(typeof chat.choices[0].message.content === 'string' && chat.choices[0].message.content.length > 0, 'chat content');
checkUsage(chat.usage, 'chat');

const chatStream = await client.chat.completions.create({
  model, messages, max_tokens: 10, temperature: 0, stream: true, stream_options: { include_usage: true },
});
let chatText = '';
let chatUsage = null;
let role = null;
for await (const chunk of chatStream) {
  if (chunk.usage) chatUsage = chunk.usage;
  for (const choice of chunk.choices) {
    if (choice.delta.role) role = choice.delta.role;
    chatText += choice.delta.content ?? '';
  }
}
check(role === 'assistant', 'streamed chat role');
check(chatText === chat.choices[0].message.content, `streamed chat text ${JSON.stringify(chatText)}`);
checkUsage(chatUsage, 'streamed chat');

// The SDK's strict helper: throws on a missing role or finish_reason.
const runner = client.chat.completions.stream({ model, messages, max_tokens: 6, temperature: 0, n: 2 });
const final = await runner.finalChatCompletion();
check(final.choices.length === 2 && final.choices.every((c) => c.finish_reason && c.message.role === 'assistant'),
      'stream helper final completion (n=2)');

// A consumer that breaks out of a stream aborts the request (the server cancels it).
const endless = await client.chat.completions.create({ model, messages, max_tokens: 5000, stream: true, ignore_eos: true });
let seen = 0;
for await (const chunk of endless) {
  seen += chunk.choices.length;
  if (seen >= 3) break;
}
check(seen >= 3, 'broke out of a stream');

// Errors surface as the SDK's typed exceptions.
try {
  await client.chat.completions.create({ model: 'no-such-model', messages, max_tokens: 2 });
  check(false, 'unknown model must throw');
} catch (e) {
  check(e instanceof OpenAI.NotFoundError && e.status === 404, `unknown model: ${e}`);
}
try {
  await client.completions.create({ model, prompt: 'x', max_tokens: -1 });
  check(false, 'negative max_tokens must throw');
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.param === 'max_tokens', `bad max_tokens: ${e} param=${e.param}`);
}
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === model, 'models.list');

console.log(`${passed} checks passed, ${failures.length} failed`);
for (const f of failures) console.log(`  failed: ${f}`);
process.exit(failures.length ? 1 : 0);
