// The official Anthropic TypeScript SDK sending the web_search server tool to the gateway (run by
// tests/integration/test_web_search.py): messages.create and messages.stream (finalMessage) of a request whose only tool is
// {"type":"web_search_20250305","name":"web_search"}. Prints one JSON document with what the SDK returned.
// Env: K2A_BASE_URL (http://127.0.0.1:PORT), K2A_KEY (the gateway's client key), K2A_QUERY.
import Anthropic from '@anthropic-ai/sdk';

const client = new Anthropic({ baseURL: process.env.K2A_BASE_URL, apiKey: process.env.K2A_KEY, maxRetries: 0, timeout: 60000 });
const req = {
  model: 'claude-sonnet-4-5',
  max_tokens: 512,
  tools: [{ type: 'web_search_20250305', name: 'web_search', max_uses: 5 }],
  messages: [{ role: 'user', content: 'Perform a web search for the query: ' + process.env.K2A_QUERY }],
};
const out = {};
out.create = await client.messages.create(req);
const stream = client.messages.stream(req);
const types = [];
stream.on('streamEvent', (event) => types.push(event.type === 'content_block_start' ? 'start:' + event.content_block.type : event.type));
out.stream = { final: await stream.finalMessage(), types };
console.log(JSON.stringify(out));
