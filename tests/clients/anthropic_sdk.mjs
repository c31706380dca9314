// The official Anthropic TypeScript SDK against the gateway (run by tests/integration/test_client_anthropic_sdk.py):
// messages.create (non-stream), messages.stream with a tool (inputJson events, finalMessage), messages.countTokens, and
// the typed error of an unknown model. Prints one JSON document with what the SDK returned; the python test asserts.
// Env: K2A_BASE_URL (http://127.0.0.1:PORT), K2A_KEY (the gateway's client key), K2A_MODEL.
import Anthropic, { BadRequestError } from '@anthropic-ai/sdk';

const client = new Anthropic({ baseURL: process.env.K2A_BASE_URL, apiKey: process.env.K2A_KEY, maxRetries: 0, timeout: 60000 });
const model = process.env.K2A_MODEL || 'claude-sonnet-4-5';
const out = {};

// 1. non-stream
out.create = await client.messages.create({
  model,
  max_tokens: 256,
  messages: [{ role: 'user', content: 'hello from the sdk' }],
});

// 2. stream with a tool whose input arrives in pieces
const tool = {
  name: 'get_weather',
  description: 'Get the weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] },
};
const args = { city: 'Zürich', unit: '°C', days: [1, 2, 3] };
const messages = [{
  role: 'user',
  content: `weather? [[sim:tool name=get_weather input=${JSON.stringify(args)} pieces=6 text="Let me look."]]`,
}];
const stream = client.messages.stream({ model, max_tokens: 512, tools: [tool], messages });
const partials = [];
const snapshots = [];
const texts = [];
const types = [];
let startUsage = null;
stream.on('inputJson', (partial, snapshot) => {
  partials.push(partial);
  snapshots.push(snapshot);
});
stream.on('text', (delta) => texts.push(delta));
stream.on('streamEvent', (event) => {
  types.push(event.type);
  if (event.type === 'message_start') startUsage = event.message.usage;
});
const final = await stream.finalMessage();
out.stream = { partials, lastSnapshot: snapshots[snapshots.length - 1] ?? null, texts, types, startUsage, final, args };

// 3. countTokens of the same request
out.countTokens = await client.messages.countTokens({ model, tools: [tool], messages });

// 4. a model no account has is the SDK's BadRequestError (400) naming the model and what is available
try {
  await client.messages.create({ model: 'claude-no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
  out.unknownModel = { thrown: false };
} catch (e) {
  out.unknownModel = { thrown: true, badRequest: e instanceof BadRequestError, status: e.status, type: e.error?.error?.type ?? null,
                      message: e.error?.error?.message ?? '' };
}

console.log(JSON.stringify(out));
