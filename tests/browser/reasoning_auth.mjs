// reasoning_auth.mjs - two more servers, in the shared browser:
// - a thinking model: tiny-qwen2 served with the deepseek-r1 chat template, whose
//   generation prompt opens a <think> block, so chatd streams reasoning_content; the page
//   must show it in a "thinking" block above the answer, live and after a reload. A
//   second case feeds the page a canned stream (reasoning, then Markdown content) to
//   check the order and the Markdown answer.
// - --auth keys: a wrong key opens the key dialog with the server's 401 message; the
//   right key then works; a user over quota sees the 429 message.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sharedBrowser, openPage, chatdCli, watchStreaming, streamSeen, artifactPath } from './harness.mjs';

let br;


const waitDone = (page, states = ['done']) => page.waitForFunction((s) => {
    const all = document.querySelectorAll('#messages .msg.assistant');
    const el = all[all.length - 1];
    return el && s.includes(el.dataset.state);
}, states, { timeout: 30000 });

async function send(page, text) {
    await page.fill('#input', text);
    await page.press('#input', 'Enter');
}

describe('a thinking model', () => {
    let srv;
    let page;
    before(async () => {
        br = await sharedBrowser();
        srv = await startServer(['--chat-template', 'deepseek-r1']);
        page = await openPage(br.context, srv.url, { settings: { max_tokens: 32 } });
        await page.goto(srv.url + '/');
        await page.waitForSelector('body[data-ready="1"]');
    });
    after(async () => {
        if (page) await page.close();
        if (srv) await srv.stop();
    });

    test('the reasoning shows in a thinking block above the answer', async () => {
        assert.match(await page.textContent('#model-info'), /thinks/);
        await watchStreaming(page);
        await send(page, 'Why is the sky blue?');
        // the thinking block is open and filling while the reply streams
        await page.waitForFunction(() => window.__seen.thinking > 0, null, { timeout: 30000 });
        await waitDone(page);
        assert.ok((await streamSeen(page)).thinking >= 2, 'the thinking block did not grow while streaming');
        const order = await page.$eval('#messages .msg.assistant', (el) =>
            [...el.children].filter((c) => !c.hidden).map((c) => c.className));
        assert.deepEqual(order.slice(0, 2), ['thinking', 'bubble markdown']);
        const shown = await page.textContent('#messages .msg.assistant .thinking-body');
        const id = await page.evaluate(() => location.hash.slice(1));
        const msgs = await (await fetch(`${srv.url}/v1/sessions/${id}/messages`)).json();
        const stored = msgs.data[1].reasoning_content;
        assert.ok(stored.length > 0);
        assert.equal(shown, stored);
        // the block can be collapsed, and comes back after a reload
        await page.click('#messages .msg.assistant .thinking summary');
        await page.reload();
        await page.waitForSelector('body[data-ready="1"]');
        assert.equal(await page.textContent('#messages .msg.assistant .thinking-body'), stored);
        assert.equal(await page.isVisible('#messages .msg.assistant .thinking summary'), true);
    });

    test('a canned stream: thinking first, then the Markdown answer', async () => {
        const frame = (delta, extra = {}) => 'data: ' + JSON.stringify({
            id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm',
            choices: [{ index: 0, delta, finish_reason: extra.finish || null }], ...extra.top,
        }) + '\n\n';
        const body = frame({ role: 'assistant', content: '' }) + ': ping\n\n' +
            frame({ reasoning_content: 'First, <b>consider</b> ' }) + frame({ reasoning_content: 'the question.' }) +
            frame({ content: 'The **answer**:\n\n```c\nint x = 1 < 2;\n```\n' }) +
            frame({}, { finish: 'stop', top: { context: { dropped_messages: 0, prompt_tokens: 20, n_ctx: 512 } } }) +
            'data: ' + JSON.stringify({ id: 'c', object: 'chat.completion.chunk', choices: [],
                usage: { prompt_tokens: 20, completion_tokens: 11, prompt_cache_hit_tokens: 5, prompt_cache_miss_tokens: 15 } }) + '\n\n' +
            'data: [DONE]\n\n';
        await page.route('**/v1/chat/completions', (route) => route.fulfill({
            status: 200, headers: { 'content-type': 'text/event-stream' }, body,
        }));
        await send(page, 'canned');
        await waitDone(page);
        await page.unroute('**/v1/chat/completions');
        const last = page.locator('#messages .msg.assistant').last();
        assert.equal(await last.locator('.thinking-body').textContent(), 'First, <b>consider</b> the question.');
        assert.equal(await last.locator('.thinking b').count(), 0);
        assert.equal(await last.locator('.bubble strong').textContent(), 'answer');
        assert.equal(await last.locator('.bubble pre code').textContent(), 'int x = 1 < 2;');
        assert.match(await last.locator('.meta').textContent(), /prompt 20 · cached 5 · completion 11/);
        assert.match(await page.textContent('#ctx-text'), /^31 \/ 512 tokens/);
        await page.screenshot({ path: artifactPath('thinking.png') });
        assert.deepEqual(page.errors, []);
    });
});

describe('--auth keys', () => {
    let srv;
    let key;
    let poorKey;
    before(async () => {
        br = await sharedBrowser();
        srv = await startServer(['--auth', 'keys']);
        chatdCli(['user', 'add', 'alice'], srv.db);
        key = chatdCli(['key', 'create', 'alice'], srv.db).trim();
        chatdCli(['user', 'add', 'bob', '--quota', '3'], srv.db);
        poorKey = chatdCli(['key', 'create', 'bob'], srv.db).trim();
        assert.match(key, /^sk-/);
    });
    after(async () => {
        if (srv) await srv.stop();
    });

    test('a wrong key shows the 401 message; the right key then works', async () => {
        const page = await openPage(br.context, srv.url, { apiKey: 'sk-chatd-wrong', settings: { max_tokens: 4 } });
        await page.goto(srv.url + '/');
        await page.waitForSelector('#key-dialog[open]');
        const msg = await page.textContent('#key-message');
        assert.match(msg, /401/);
        assert.match(msg, /incorrect API key/);
        assert.match(await page.textContent('#notice'), /Not authorized \(401\)/);
        await page.fill('#key-input', key);
        await page.click('#key-save');
        await page.waitForSelector('body[data-ready="1"]');
        assert.equal(await page.isVisible('#key-dialog'), false);
        assert.equal(await page.isVisible('#notice'), false);
        assert.match(await page.textContent('#model-info'), /tiny-qwen2-q8_0/);
        assert.equal(await page.evaluate(() => localStorage.getItem('chatd.apiKey')), key);
        await send(page, 'hi');
        await waitDone(page);
        assert.ok((await page.textContent('#messages .msg.assistant .bubble')).length > 0);
        assert.deepEqual(page.errors, []);
        await page.close();
    });

    test('no key at all asks for one', async () => {
        const page = await openPage(br.context, srv.url);
        await page.addInitScript(() => localStorage.removeItem('chatd.apiKey'));
        await page.goto(srv.url + '/');
        await page.waitForSelector('#key-dialog[open]');
        assert.match(await page.textContent('#key-message'), /needs an API key \(401: missing API key/);
        await page.close();
    });

    test('over quota shows the 429 message', async () => {
        const page = await openPage(br.context, srv.url, { apiKey: poorKey, settings: { max_tokens: 4 } });
        await page.goto(srv.url + '/');
        await page.waitForSelector('body[data-ready="1"]');
        await page.evaluate((k) => localStorage.setItem('chatd.apiKey', k), poorKey);
        await send(page, 'hello, this prompt is longer than three tokens');
        await waitDone(page, ['error']);
        const notice = await page.textContent('#notice');
        assert.match(notice, /429/);
        assert.match(notice, /quota/);
        await page.close();
    });
});
