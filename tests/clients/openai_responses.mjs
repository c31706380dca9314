// The official OpenAI TypeScript SDK's Responses API against the gateway (run by
// tests/integration/test_client_openai_responses.py): responses.create (non-stream, output_text), responses.stream with
// a function tool (event types, finalResponse), a two-turn function-call loop (the tool output sent back in full
// history), previous_response_id, responses.retrieve, the typed error of a bad request, and web search (web_search_call
// items). Prints one JSON document;
// the python test asserts. Env: K2A_BASE_URL (http://127.0.0.1:PORT/v1), K2A_KEY, K2A_MODEL.
import OpenAI, { BadRequestError } from 'openai';

const client = new OpenAI({ baseURL: process.env.K2A_BASE_URL, apiKey: process.env.K2A_KEY, maxRetries: 0, timeout: 60000 });
const model = process.env.K2A_MODEL || 'claude-sonnet-4-5';
const out = {};

// 1. non-stream
const created = await client.responses.create({ model, instructions: 'Be brief.', input: 'hello from the sdk' });
out.create = { id: created.id, status: created.status, output_text: created.output_text, usage: created.usage, output: created.output };

// 2. stream with a function tool whose arguments arrive in pieces
const tools = [{
  type: 'function',
  name: 'get_weather',
  description: 'Get the weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true,
}];
const args = { city: 'Zürich' };
const input = [{ role: 'user', content: `weather? [[sim:tool name=get_weather input=${JSON.stringify(args)} pieces=5 text="Let me look."]]` }];
const stream = client.responses.stream({ model, tools, input });
const types = [];
const argDeltas = [];
const textDeltas = [];
stream.on('event', (e) => types.push(e.type));
stream.on('response.function_call_arguments.delta', (e) => argDeltas.push(e.delta));
stream.on('response.output_text.delta', (e) => textDeltas.push(e.delta));
const final = await stream.finalResponse();
out.stream = { types, argDeltas, textDeltas, final: { id: final.id, status: final.status, output: final.output, output_text: final.output_text, usage: final.usage }, args };

// 3. the function-call loop: run the tool, send its output back with the whole history (store-less style)
const call = final.output.find((o) => o.type === 'function_call');
const history = [...input, ...final.output, { type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ temp: 18 }) }];
const second = await client.responses.create({ model, tools, input: history });
out.loop = { status: second.status, output_text: second.output_text };

// 4. previous_response_id: only the tool output, the gateway prepends the stored conversation
const chained = await client.responses.create({
  model, tools, previous_response_id: final.id,
  input: [{ type: 'function_call_output', call_id: call.call_id, output: 'sunny' }],
});
out.chained = { status: chained.status, output_text: chained.output_text, previous_response_id: chained.previous_response_id };
const chained2 = await client.responses.create({ model, previous_response_id: chained.id, input: 'and tomorrow?', stream: true });
let chained2Text = '';
for await (const e of chained2) if (e.type === 'response.output_text.delta') chained2Text += e.delta;
out.chained2 = { text: chained2Text };

// 5. retrieve a stored response
const got = await client.responses.retrieve(created.id);
out.retrieve = { id: got.id, output_text: got.output_text };

// 6. a bad request is the SDK's BadRequestError with the JSON path as param
try {
  await client.responses.create({ model, input: 'x', tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] });
  out.bad = { thrown: false };
} catch (e) {
  out.bad = { thrown: true, badRequest: e instanceof BadRequestError, status: e.status, param: e.param ?? null, message: e.message };
}

// 7. web search: the web_search_preview tool, non-stream and stream (the web_search_call item, its events)
const wsInput = 'look it up [[sim:websearch query="sdk web search"]]';
const wsCreated = await client.responses.create({ model, tools: [{ type: 'web_search_preview' }], input: wsInput });
out.webSearch = { output: wsCreated.output, output_text: wsCreated.output_text };
const wsStream = client.responses.stream({ model, tools: [{ type: 'web_search' }], input: wsInput });
const wsTypes = [];
wsStream.on('event', (e) => wsTypes.push(e.type));
const wsFinal = await wsStream.finalResponse();
out.webSearchStream = { types: wsTypes, output: wsFinal.output, output_text: wsFinal.output_text };

console.log(JSON.stringify(out));
