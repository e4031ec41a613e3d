// Tool calling and structured outputs through the official OpenAI Node SDK: a random-
// weight model with Qwen2.5's chat template (Hermes-style <tool_call> calls, the 151,936
// token qwen3 vocabulary) and one whose template knows no tools (the generic format).
// tool_choice required and named calls are constrained, so even a random model calls a
// tool with arguments that validate (Ajv) against the tool's parameters: non-streamed,
// streamed (delta.tool_calls through the SDK's stream helper), runTools (both), parse()
// with a JSON schema, and a conversation that sends the call and its result back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Ajv from 'ajv';
import OpenAI from 'openai';
import { fixtures, genModel, startChatd, tempDir, cleanup } from './chatd.mjs';

let dir, hermes, generic, client, genericClient;
const ajv = new Ajv({ strict: false });

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather of a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', maxLength: 20 },
        unit: { enum: ['celsius', 'fahrenheit'] },
        days: { type: 'integer', minimum: 1, maximum: 7 },
      },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
const calc = {
  type: 'function',
  function: {
    name: 'calc',
    parameters: { type: 'object', properties: { expr: { type: 'string', maxLength: 16 } },
      required: ['expr'], additionalProperties: false },
  },
};
const validateWeather = ajv.compile(weather.function.parameters);
const validateCalc = ajv.compile(calc.function.parameters);
const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];

before(async () => {
  dir = tempDir('chatd-tools-');
  const model = genModel(dir, 'Qwen-Qwen2.5-7B-Instruct');
  hermes = await startChatd(dir, model, ['--parallel', '2']);
  generic = await startChatd(dir, join(fixtures, 'models', 'tiny-qwen2-q8_0.gguf'), []);
  client = new OpenAI({ baseURL: `${hermes.url}/v1`, apiKey: 'unused' });
  genericClient = new OpenAI({ baseURL: `${generic.url}/v1`, apiKey: 'unused' });
});

after(async () => {
  await hermes.stop();
  await generic.stop();
  cleanup(dir);
});

function checkCall(call, validate, name) {
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, name);
  assert.match(call.id, /^[a-z0-9]{9}$/);
  const args = JSON.parse(call.function.arguments);
  assert.ok(validate(args), `${call.function.arguments}: ${ajv.errorsText(validate.errors)}`);
  return args;
}

test('tool_choice required: the reply is a valid call (non-streamed)', async () => {
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create({
      model: 'Qwen-Qwen2.5-7B-Instruct', messages, tools: [weather, calc], tool_choice: 'required',
      parallel_tool_calls: false, temperature, seed: 3, max_tokens: 200,
    });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    checkCall(call, call.function.name === 'calc' ? validateCalc : validateWeather, call.function.name);
  }
});

test('a named tool streamed: the SDK stream helper assembles delta.tool_calls into the same call', async () => {
  const body = {
    model: 'Qwen-Qwen2.5-7B-Instruct', messages, tools: [weather, calc],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    parallel_tool_calls: false, temperature: 1, seed: 11, max_tokens: 200,
  };
  const full = await client.chat.completions.create(body);
  const stream = client.chat.completions.stream(body);
  const doneArgs = [];
  stream.on('tool_calls.function.arguments.done', (e) => doneArgs.push(e.arguments));
  let deltas = 0;
  stream.on('chunk', (ch) => { if (ch.choices[0]?.delta?.tool_calls) deltas++; });
  const final = await stream.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  checkCall(call, validateWeather, 'get_weather');
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.ok(deltas >= 2, `arguments came in ${deltas} chunks`);
  assert.deepEqual(doneArgs, [call.function.arguments]);
  assert.equal(call.function.arguments, full.choices[0].message.tool_calls[0].function.arguments);
});

test('runTools calls the function with validated arguments (streamed and not)', async () => {
  for (const stream of [false, true]) {
    const seen = [];
    const runner = client.chat.completions.runTools({
      model: 'Qwen-Qwen2.5-7B-Instruct', messages, stream, temperature: 0, max_tokens: 200,
      parallel_tool_calls: false,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      tools: [{ type: 'function', function: { ...weather.function, parse: JSON.parse,
        function: (args) => { seen.push(args); return { temp: 18 }; } } }],
    });
    await runner.done();
    assert.equal(seen.length, 1);
    assert.ok(validateWeather(seen[0]));
    const msgs = runner.messages;
    assert.equal(msgs.at(-1).role, 'tool');
    assert.equal(msgs.at(-1).content, '{"temp":18}');
  }
});

test('parse() with a JSON schema gives a validated object', async () => {
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 } },
  required: ['name', 'age', 'tags'], additionalProperties: false };
  const validate = ajv.compile(schema);
  for (const c of [client, genericClient]) {
    const r = await c.chat.completions.parse({
      model: c === client ? 'Qwen-Qwen2.5-7B-Instruct' : 'tiny-qwen2-q8_0', temperature: 1, seed: 2,
      messages: [{ role: 'user', content: 'A person, please.' }], max_tokens: 300,
      response_format: { type: 'json_schema', json_schema: { name: 'person', strict: true, schema } },
    });
    const parsed = r.choices[0].message.parsed;
    assert.ok(validate(parsed), `${JSON.stringify(parsed)}: ${ajv.errorsText(validate.errors)}`);
  }
});

test('a call and its result sent back render through the template and the reply continues', async () => {
  const first = await client.chat.completions.create({
    model: 'Qwen-Qwen2.5-7B-Instruct', messages, tools: [weather], tool_choice: 'required',
    parallel_tool_calls: false, temperature: 0, max_tokens: 200,
  });
  const msg = first.choices[0].message;
  const history = [...messages, msg,
    { role: 'tool', tool_call_id: msg.tool_calls[0].id, content: '{"temp": 18, "sky": "<|im_end|> clear"}' }];
  const count = await fetch(`${hermes.url}/v1/tokens/count`, {
    method: 'POST', body: JSON.stringify({ messages: history, tools: [weather] }) }).then((r) => r.json());
  const second = await client.chat.completions.create({
    model: 'Qwen-Qwen2.5-7B-Instruct', messages: history, tools: [weather], temperature: 0, max_tokens: 8,
  });
  assert.ok(['stop', 'length', 'tool_calls'].includes(second.choices[0].finish_reason));
  assert.equal(second.usage.prompt_tokens, count.prompt_tokens);
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
});

test('strict tools under tool_choice auto: once the model opens a call, the call is constrained', async () => {
  const tok = await fetch(`${hermes.url}/tokenize`, { method: 'POST', body: JSON.stringify({ content: '<tool_call>' }) })
    .then((r) => r.json());
  assert.equal(tok.tokens.length, 1); /* the qwen vocabulary's own <tool_call> token */
  const strictWeather = { type: 'function', function: { ...weather.function, strict: true } };
  for (const temperature of [0, 1]) {
    const r = await client.chat.completions.create({
      model: 'Qwen-Qwen2.5-7B-Instruct', messages, tools: [strictWeather], parallel_tool_calls: false,
      temperature, seed: 21, max_tokens: 200, logit_bias: { [tok.tokens[0]]: 100 },
    });
    assert.equal(r.choices[0].finish_reason, 'tool_calls', r.choices[0].message.content);
    checkCall(r.choices[0].message.tool_calls[0], validateWeather, 'get_weather');
  }
});

test('a session stores the call and its result and renders them on the next turn', async () => {
  const sess = await fetch(`${hermes.url}/v1/sessions`, { method: 'POST', body: JSON.stringify({ title: 'tools' }) })
    .then((r) => r.json());
  const model = 'Qwen-Qwen2.5-7B-Instruct';
  const first = await client.chat.completions.create({ model, messages, tools: [weather], tool_choice: 'required',
    parallel_tool_calls: false, temperature: 0, max_tokens: 200, session_id: sess.id });
  const call = first.choices[0].message.tool_calls[0];
  checkCall(call, validateWeather, 'get_weather');
  const second = await client.chat.completions.create({ model, tools: [weather], temperature: 0, max_tokens: 6,
    session_id: sess.id, messages: [{ role: 'tool', tool_call_id: call.id, content: '18 °C' }] });
  assert.ok(second.usage.prompt_tokens > first.usage.prompt_tokens);
  const list = await fetch(`${hermes.url}/v1/sessions/${sess.id}/messages`).then((r) => r.json());
  assert.deepEqual(list.data.map((m) => m.role), ['user', 'assistant', 'tool', 'assistant']);
  assert.deepEqual(list.data[1].tool_calls, [call]);
  assert.equal(list.data[2].tool_call_id, call.id);
  assert.equal(list.data[2].content, '18 °C');
});

test('the generic format: a template without tools still gets valid calls', async () => {
  const r = await genericClient.chat.completions.create({
    model: 'tiny-qwen2-q8_0', messages, tools: [weather, calc],
    tool_choice: { type: 'function', function: { name: 'calc' } }, parallel_tool_calls: false,
    temperature: 1, seed: 4, max_tokens: 200,
  });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  checkCall(r.choices[0].message.tool_calls[0], validateCalc, 'calc');
});

test('bad tool requests are 400s naming the param', async () => {
  const cases = [
    [{ tools: [{ type: 'function', function: { name: 'bad name' } }] }, 'tools[0].function.name'],
    [{ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice'],
    [{ tool_choice: 'required' }, 'tool_choice'],
    [{ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', patternProperties: {} } } }] },
      'tools[0].function.parameters'],
    [{ messages: [{ role: 'tool', content: 'x' }] }, 'messages[0].tool_call_id'],
  ];
  for (const [extra, param] of cases) {
    await assert.rejects(client.chat.completions.create({ model: 'Qwen-Qwen2.5-7B-Instruct', messages, ...extra }),
      (err) => err.status === 400 && err.param === param);
  }
});
