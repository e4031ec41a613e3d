// The property test of constrained decoding: random JSON schemas (a seeded generator
// below) sent as response_format to chatd serving a random-weight model, at temperature 0
// and 1, streamed and not. A random model writes valid JSON only if the constraint is
// right, so every reply must parse and validate against its schema with Ajv (an
// independent JSON Schema validator, with ajv-formats), end with finish_reason "stop",
// and read the same streamed as not. Also: json_object, the `grammar` field, and
// unsupported keywords refused by name.
//
// CHATD_BACKEND=vulkan runs it on the Vulkan backend; GRAMMAR_SCHEMAS sets how many
// schemas (default 60).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { fixtures, startChatd, tempDir, cleanup } from './chatd.mjs';

const backend = process.env.CHATD_BACKEND || 'cpu';
const nSchemas = Number(process.env.GRAMMAR_SCHEMAS || 60);
let dir, server;

before(async () => {
  dir = tempDir('chatd-grammar-');
  server = await startChatd(dir, join(fixtures, 'models', 'tiny-qwen2-q8_0.gguf'),
    ['--backend', backend, '--parallel', '4']);
});

after(async () => {
  await server.stop();
  cleanup(dir);
});

// ---- the schema generator ----

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ['id', 'name', 'city', 'naïve', 'with "quote"', 'back\\slash', 'n2', 'tags', '大', 'x y'];
const PATTERNS = ['^[a-z]{2,5}$', '^[A-Z]{2}-\\d{3}$', '^(red|green|blue)$', '^\\w{1,8}@x\\.org$',
  '^[0-9a-f]{4,8}$', '^a(b|cd)?e+$'];
const FORMATS = ['date', 'date-time', 'time', 'uuid', 'email'];

function genSchema(r, depth) {
  const pick = (a) => a[Math.floor(r() * a.length)];
  const int = (lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
  const scalars = ['string', 'string', 'integer', 'number', 'boolean', 'null', 'enum', 'nullable'];
  const kind = pick(depth >= 2 ? scalars : [...scalars, 'object', 'object', 'array', 'anyOf']);
  switch (kind) {
    case 'string': {
      const v = int(0, 3);
      if (v === 0) return { type: 'string', pattern: pick(PATTERNS) };
      if (v === 1) return { type: 'string', format: pick(FORMATS) };
      const max = int(0, 12);
      return { type: 'string', minLength: int(0, max), maxLength: max };
    }
    case 'integer': {
      if (r() < 0.3) return { type: 'integer' };
      const lo = int(-300, 300);
      const s = { type: 'integer', minimum: lo, maximum: lo + int(0, 1000) };
      if (r() < 0.3) return { type: 'integer', exclusiveMinimum: lo, exclusiveMaximum: lo + int(2, 50) };
      return s;
    }
    case 'number': {
      if (r() < 0.3) return { type: 'number' };
      const lo = int(-50, 50);
      return r() < 0.5 ? { type: 'number', minimum: lo, maximum: lo + int(0, 100) }
        : { type: 'number', exclusiveMinimum: lo };
    }
    case 'boolean': return { type: 'boolean' };
    case 'null': return { type: 'null' };
    case 'enum': return { enum: [pick(['a', 'b"c', 'ü']), int(-5, 5), null, true].slice(0, int(1, 4)) };
    case 'nullable': return { type: ['string', 'null'], maxLength: int(0, 6) };
    case 'anyOf': return { anyOf: [genSchema(r, depth + 1), genSchema(r, depth + 1)] };
    case 'array': {
      const min = int(0, 2);
      return { type: 'array', items: genSchema(r, depth + 1), minItems: min, maxItems: min + int(0, 2) };
    }
    default: {
      const n = int(1, 4);
      const props = {};
      const names = [...NAMES].sort(() => r() - 0.5).slice(0, n);
      for (const k of names) props[k] = genSchema(r, depth + 1);
      return { type: 'object', properties: props, required: names.filter(() => r() < 0.6),
        additionalProperties: false };
    }
  }
}

// A recursive schema: a linked list through $defs.
const LIST_SCHEMA = {
  $defs: {
    node: {
      type: 'object',
      properties: { v: { type: 'integer', minimum: 0, maximum: 9 },
        next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } },
      required: ['v', 'next'],
      additionalProperties: false,
    },
  },
  $ref: '#/$defs/node',
};

// ---- requests ----

async function chat(body) {
  const r = await fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!body.stream) return { status: r.status, json: await r.json() };
  const text = await r.text();
  let content = '';
  let finish = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
    const c = JSON.parse(line.slice(6));
    for (const ch of c.choices ?? []) {
      content += ch.delta?.content ?? '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { status: r.status, content, finish };
}

function request(schema, temperature, seed, stream) {
  return chat({
    messages: [{ role: 'user', content: 'Reply with JSON.' }],
    response_format: { type: 'json_schema', json_schema: { name: 'out', schema, strict: true } },
    temperature, seed, stream, max_tokens: 440,
  });
}

async function pool(tasks, width) {
  const out = new Array(tasks.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await tasks[i]();
    }
  }));
  return out;
}

test(`random schemas: every reply validates (${backend}, ${nSchemas} schemas, temperature 0 and 1, streamed and not)`, async () => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const r = mulberry32(20261206);
  const schemas = [LIST_SCHEMA];
  while (schemas.length < nSchemas) schemas.push(genSchema(r, 0));
  const tasks = [];
  schemas.forEach((schema, i) => {
    for (const temperature of [0, 1])
      for (const stream of [false, true])
        tasks.push(async () => ({ i, temperature, stream, res: await request(schema, temperature, 1000 + i, stream) }));
  });
  const results = await pool(tasks, 4);
  const byKey = new Map();
  for (const { i, temperature, stream, res } of results) {
    const schema = schemas[i];
    const where = `schema ${i} ${JSON.stringify(schema)} at temperature ${temperature}${stream ? ', streamed' : ''}`;
    assert.equal(res.status, 200, `${where}: status ${res.status} ${JSON.stringify(res.json)}`);
    const content = stream ? res.content : res.json.choices[0].message.content;
    const finish = stream ? res.finish : res.json.choices[0].finish_reason;
    assert.equal(finish, 'stop', `${where}: finish_reason ${finish}, reply ${content}`);
    let value;
    assert.doesNotThrow(() => { value = JSON.parse(content); }, `${where}: not JSON: ${content}`);
    const validate = ajv.compile(schema);
    assert.ok(validate(value), `${where}: ${content} fails: ${ajv.errorsText(validate.errors)}`);
    const key = `${i}/${temperature}`;
    if (byKey.has(key)) assert.equal(content, byKey.get(key), `${where}: streamed and not differ`);
    else byKey.set(key, content);
  }
  assert.equal(results.length, nSchemas * 4);
});

test('json_object replies parse as objects', async () => {
  for (const temperature of [0, 1]) {
    const { json } = await chat({ messages: [{ role: 'user', content: 'JSON please' }],
      response_format: { type: 'json_object' }, temperature, seed: 5, max_tokens: 400 });
    const c = json.choices[0];
    if (c.finish_reason !== 'stop') continue; /* an unbounded document may outgrow max_tokens */
    const v = JSON.parse(c.message.content);
    assert.equal(typeof v, 'object');
    assert.ok(v !== null && !Array.isArray(v));
  }
});

test('the grammar field constrains the reply', async () => {
  const grammar = 'root ::= "answer: " ("yes" | "no") " (" [0-9]{1,3} "%)"';
  for (const temperature of [0, 1]) {
    const { status, json } = await chat({ messages: [{ role: 'user', content: 'yes or no?' }],
      grammar, temperature, seed: 9, max_tokens: 40 });
    assert.equal(status, 200);
    assert.match(json.choices[0].message.content, /^answer: (yes|no) \([0-9]{1,3}%\)$/);
    assert.equal(json.choices[0].finish_reason, 'stop');
  }
  const bad = await chat({ messages: [{ role: 'user', content: 'x' }], grammar: 'root ::= missing' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.param, 'grammar');
  assert.match(bad.json.error.message, /rule 'missing' is used but not defined/);
});

test('an unsupported schema keyword is a 400 naming it', async () => {
  const { status, json } = await chat({ messages: [{ role: 'user', content: 'x' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x',
      schema: { type: 'object', properties: { a: { type: 'string', not: { const: 'b' } } } } } } });
  assert.equal(status, 400);
  assert.equal(json.error.param, 'response_format.json_schema.schema');
  assert.match(json.error.message, /unsupported keyword 'not' at \/properties\/a/);
});
