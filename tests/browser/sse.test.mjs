// sse.test.mjs - unit tests of web/static/sse.js in node: a fake chat stream (with
// reasoning_content deltas, pings, CRLF line ends and a UTF-8 character split between
// reads) is cut into every possible pair of reads and must always fold into the same reply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SSEParser, readSSE, readChatChunks, newReply, applyChunk } from '../../web/static/sse.js';

const chunk = (delta, extra = {}) => ({
    id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm',
    choices: [{ index: 0, delta, finish_reason: null }], ...extra,
});

function fakeStreamText(eol = '\n') {
    const frames = [
        chunk({ role: 'assistant', content: '' }),
        chunk({ reasoning_content: 'Let me think' }),
        chunk({ reasoning_content: ' about <b>ü</b>…' }),
        chunk({ content: 'The answer is ' }),
        chunk({ content: '**42** 🙂' }),
        { ...chunk({}), choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], context: { dropped_messages: 1, prompt_tokens: 12, n_ctx: 512 } },
        { id: 'chatcmpl-1', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 12, completion_tokens: 9, prompt_cache_hit_tokens: 4 } },
    ];
    let s = ': ping' + eol + eol;
    for (const f of frames) s += 'data: ' + JSON.stringify(f) + eol + eol;
    s += ': ping' + eol + eol + 'data: [DONE]' + eol + eol;
    return s;
}

function streamOf(parts) {
    return new ReadableStream({
        start(c) {
            for (const p of parts) c.enqueue(p);
            c.close();
        },
    });
}

async function foldBytes(parts) {
    const reply = newReply();
    let n = 0;
    for await (const c of readChatChunks(streamOf(parts))) {
        applyChunk(reply, c);
        n++;
    }
    return { reply, n };
}

function checkReply(reply) {
    assert.equal(reply.reasoning, 'Let me think about <b>ü</b>…');
    assert.equal(reply.content, 'The answer is **42** 🙂');
    assert.equal(reply.finish, 'stop');
    assert.deepEqual(reply.context, { dropped_messages: 1, prompt_tokens: 12, n_ctx: 512 });
    assert.equal(reply.usage.completion_tokens, 9);
    assert.equal(reply.error, null);
}

test('a whole stream folds into reasoning, content, context and usage', async () => {
    const bytes = new TextEncoder().encode(fakeStreamText());
    const { reply, n } = await foldBytes([bytes]);
    assert.equal(n, 7);
    checkReply(reply);
});

test('every split point between two reads gives the same reply (LF, CRLF, CR)', async () => {
    for (const eol of ['\n', '\r\n', '\r']) {
        const bytes = new TextEncoder().encode(fakeStreamText(eol));
        // every cut for CRLF (the CR/LF pair split between reads); every 3rd for the others
        for (let cut = 0; cut <= bytes.length; cut += eol === '\r\n' ? 1 : 3) {
            const { reply, n } = await foldBytes([bytes.slice(0, cut), bytes.slice(cut)]);
            assert.equal(n, 7, `eol ${JSON.stringify(eol)} cut ${cut}`);
            checkReply(reply);
        }
    }
});

test('byte-at-a-time reads', async () => {
    const bytes = new TextEncoder().encode(fakeStreamText('\r\n'));
    const parts = Array.from(bytes, (b) => new Uint8Array([b]));
    const { reply } = await foldBytes(parts);
    checkReply(reply);
});

test('nothing after [DONE] is read', async () => {
    const text = 'data: ' + JSON.stringify(chunk({ content: 'a' })) + '\n\ndata: [DONE]\n\ndata: {not json\n\n';
    const { reply, n } = await foldBytes([new TextEncoder().encode(text)]);
    assert.equal(n, 1);
    assert.equal(reply.content, 'a');
});

test('an error object in the stream is kept', async () => {
    const text = 'data: ' + JSON.stringify(chunk({ content: 'par' })) + '\n\n' +
        'data: {"error":{"message":"generation failed: boom","type":"server_error","param":null,"code":"generation_failed"}}\n\n' +
        'data: [DONE]\n\n';
    const { reply } = await foldBytes([new TextEncoder().encode(text)]);
    assert.equal(reply.content, 'par');
    assert.equal(reply.error.code, 'generation_failed');
});

test('parser rules: multi-line data, event names, comments, unterminated event dropped', () => {
    const got = [];
    const p = new SSEParser((e) => got.push(e));
    p.feed('event: note\ndata: a\ndata:b\n\n: c\nid: 7\ndata\n\ndata: tail');
    p.end();
    assert.deepEqual(got, [
        { event: 'note', data: 'a\nb', id: '' },
        { event: 'message', data: '', id: '7' },
    ]);
});

test('readSSE passes raw events', async () => {
    const out = [];
    for await (const e of readSSE(streamOf([new TextEncoder().encode('data: x\n\ndata: y\n\n')]))) out.push(e.data);
    assert.deepEqual(out, ['x', 'y']);
});
