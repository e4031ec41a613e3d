// The official OpenAI Node SDK against the real chatd binary: models.list, a
// non-streamed and a streamed completion with include_usage, and an error case.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import OpenAI from 'openai';
import { fixtures, startChatd, tempDir, cleanup } from './chatd.mjs';

let server, dir, client;

before(async () => {
  dir = tempDir('chatd-sdk-');
  server = await startChatd(dir, join(fixtures, 'models/tiny-qwen2-q8_0.gguf'));
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'not-needed-in-open-mode' });
});

after(async () => {
  await server.stop();
  cleanup(dir);
});

test('models.list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  assert.deepEqual(ids, ['tiny-qwen2-q8_0']);
  assert.equal(page.data[0].object, 'model');
});

test('non-streamed chat completion', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny-qwen2-q8_0',
    messages: [{ role: 'user', content: 'Hello, how are you?' }],
    temperature: 0,
    max_tokens: 8,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.choices[0].message.content.length > 0);
});

test('streamed chat completion with include_usage equals the non-streamed text', async () => {
  const body = {
    model: 'tiny-qwen2-q8_0',
    messages: [{ role: 'user', content: 'Tell me a story.' }],
    temperature: 0,
    max_tokens: 12,
  };
  const full = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({
    ...body, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let finishes = 0;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finishes++;
    }
  }
  assert.ok(chunks >= 3);
  assert.equal(finishes, 1);
  assert.equal(text, full.choices[0].message.content);
  assert.equal(usage.completion_tokens, full.usage.completion_tokens);
  assert.equal(usage.prompt_tokens, full.usage.prompt_tokens);
});

test('unknown model is a 404 NotFoundError with an OpenAI error body', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'no-such-model',
      messages: [{ role: 'user', content: 'hi' }],
    }),
    (err) => {
      assert.equal(err.status, 404);
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.code, 'model_not_found');
      assert.equal(err.param, 'model');
      return true;
    },
  );
});

test('bad parameter is a 400 BadRequestError naming the param', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny-qwen2-q8_0',
      messages: [{ role: 'user', content: 'hi' }],
      n: 2,
    }),
    (err) => err.status === 400 && err.param === 'n',
  );
});
