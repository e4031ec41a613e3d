// chat.mjs - the chat page in headless Chromium against a real chatd (open mode,
// tiny-qwen2 fixture): streaming, the composer keys, HTML shown as text (from the user and
// from the model), stop, reload, a second chat, rename and delete, dropped turns, the
// usage view and a screenshot of the main view. The steps share one server and one page
// and run in order.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sharedBrowser, openPage, setSettings, artifactPath, sleep, watchStreaming, streamSeen } from './harness.mjs';

let srv;
let br;
let page;

const api = async (path, init) => {
    const r = await fetch(srv.url + path, init);
    return { status: r.status, body: await r.json() };
};
const lastAssistant = () => page.locator('#messages .msg.assistant').last();
const waitState = (states, timeout = 30000) => page.waitForFunction((s) => {
    const all = document.querySelectorAll('#messages .msg.assistant');
    const el = all[all.length - 1];
    return el && s.includes(el.dataset.state);
}, states, { timeout });
const currentId = () => page.evaluate(() => decodeURIComponent(location.hash.slice(1)));

async function sendMessage(text) {
    const n = await page.locator('#messages .msg.user').count();
    await page.fill('#input', text);
    await page.press('#input', 'Enter');
    await page.locator('#messages .msg.user').nth(n).waitFor();
}

describe('open mode', () => {
    before(async () => {
        // prices per million tokens: 2 (uncached input), 1 (cached input), 8 (output)
        // a 2048-token window leaves room for replies long enough to stop mid-stream
        srv = await startServer(['--ctx-size', '2048', '--input-miss-micros', '2000000', '--input-hit-micros', '1000000', '--output-micros', '8000000']);
        br = await sharedBrowser();
        page = await openPage(br.context, srv.url, { settings: { max_tokens: 12 } });
        await page.goto(srv.url + '/');
        await page.waitForSelector('body[data-ready="1"]');
    });

    after(async () => {
        if (page) await page.close();
        if (srv) await srv.stop();
    });

    test('the page shows the model facts and an empty chat', async () => {
        const info = await page.textContent('#model-info');
        assert.match(info, /tiny-qwen2-q8_0/);
        assert.match(info, /6\.5M/);
        assert.match(info, /Q8_0/);
        assert.match(info, /2,048 tokens/);
        assert.match(await page.textContent('#ctx-text'), /0 \/ 2,048 tokens/);
        assert.equal(await page.locator('#sessions li').count(), 0);
    });

    test('send a message and see the reply stream in', async () => {
        await setSettings(page, { max_tokens: 48 });
        await watchStreaming(page);
        await sendMessage('Hello there');
        await page.waitForFunction(() => window.__seen.text > 0, null, { timeout: 30000 });
        assert.equal(await page.isVisible('#stop'), true);
        await waitState(['done']);
        await setSettings(page, { max_tokens: 12 });
        const text = await lastAssistant().locator('.bubble').textContent();
        assert.ok(text.trim().length > 0);
        assert.ok((await streamSeen(page)).text >= 2, 'the text did not grow while streaming');
        const meta = lastAssistant().locator('.meta');
        await page.waitForFunction(() => /cost \d/.test(document.querySelector('#messages .msg.assistant:last-child .meta').textContent));
        assert.match(await meta.textContent(), /prompt \d+ · cached \d+ · completion 48/);
        // 48 output tokens alone cost 48 * 8 = 384 micro-USD
        const cost = Number(/cost ([\d.]+) USD/.exec(await meta.textContent())[1]);
        assert.ok(cost >= 0.000384 && cost < 0.01, `cost ${cost}`);
        assert.equal(await page.isVisible('#send'), true);
        // the new chat is in the sidebar, open, and in the URL
        const id = await currentId();
        assert.match(id, /\S/);
        assert.equal(await page.locator(`#sessions li[data-id="${id}"].active`).count(), 1);
        await page.waitForFunction(() => /Chat total: \d+ tokens/.test(document.querySelector('#session-total').textContent));
        assert.match(await page.textContent('#ctx-text'), /^[1-9]\d* \/ 2,048 tokens/);
        // what the page showed is what the server stored
        const msgs = (await api(`/v1/sessions/${id}/messages`)).body.data;
        assert.deepEqual(msgs.map((m) => m.role), ['user', 'assistant']);
        assert.equal(msgs[0].content, 'Hello there');
    });

    test('Shift+Enter is a newline; Enter while composing (IME) does not send', async () => {
        const before = await page.locator('#messages .msg.user').count();
        await page.fill('#input', '');
        await page.type('#input', 'line one');
        await page.press('#input', 'Shift+Enter');
        await page.type('#input', 'line two');
        assert.equal(await page.inputValue('#input'), 'line one\nline two');
        const prevented = await page.evaluate(() => {
            const input = document.getElementById('input');
            const a = new KeyboardEvent('keydown', { key: 'Enter', isComposing: true, bubbles: true, cancelable: true });
            const b = new KeyboardEvent('keydown', { key: 'Enter', keyCode: 229, bubbles: true, cancelable: true });
            input.dispatchEvent(a);
            input.dispatchEvent(b);
            return a.defaultPrevented || b.defaultPrevented;
        });
        assert.equal(prevented, false);
        await sleep(150);
        assert.equal(await page.locator('#messages .msg.user').count(), before);
        assert.equal(await page.inputValue('#input'), 'line one\nline two');
        await page.fill('#input', '');
    });

    test('HTML typed by the user is shown as text', async () => {
        const evil = '<img src=x onerror="window.__xss=1"><b>bold?</b> <script>window.__xss=2</script>';
        await sendMessage(evil);
        const user = page.locator('#messages .msg.user').last().locator('.bubble');
        assert.equal(await user.textContent(), evil);
        assert.equal(await page.locator('#messages img, #messages b, #messages script').count(), 0);
        await waitState(['done']);
        assert.equal(await page.evaluate(() => window.__xss), undefined);
    });

    test('HTML written by the model is shown as text', async () => {
        // Force the model to write only the tokens '<', 'b', '>', '</', 'img', ' src', '=', 'x',
        // with '<', 'b', '>' and 'img' the likeliest whatever its own (random) logits are, so
        // that the reply holds tags for any seed and any rounding of the backend.
        const bias = { 27: 100, 65: 100, 29: 100, 9600: 100, 3556: 95, 12351: 95, 28: 95, 87: 95 };
        await setSettings(page, { max_tokens: 16, extra: { logit_bias: bias, seed: 7 } });
        await sendMessage('write some html');
        await waitState(['done']);
        const id = await currentId();
        const msgs = (await api(`/v1/sessions/${id}/messages`)).body.data;
        const stored = msgs[msgs.length - 1].content;
        assert.match(stored, /</);
        assert.match(stored, /img|b/);
        const bubble = lastAssistant().locator('.bubble');
        assert.equal(await bubble.locator('img, b, script').count(), 0);
        const norm = (s) => s.replace(/[\s>]/g, '');
        assert.equal(norm(await bubble.textContent()), norm(stored));
        assert.equal(await page.evaluate(() => window.__xss), undefined);
        await setSettings(page, { max_tokens: 12 });
    });

    test('Stop ends a long reply mid-stream', async () => {
        await page.click('#new-chat');
        await page.waitForFunction(() => location.hash === '' && document.querySelector('#chat-title').textContent === 'New chat');
        await setSettings(page, { max_tokens: 1500 });
        await sendMessage('Tell me a very long story');
        await page.waitForFunction(() => {
            const all = document.querySelectorAll('#messages .msg.assistant');
            const el = all[all.length - 1];
            return el && el.dataset.state === 'streaming' && el.querySelector('.bubble').textContent.trim().length > 0;
        }, null, { timeout: 30000 });
        await page.click('#stop');
        await waitState(['stopped'], 5000);
        assert.equal(await page.isVisible('#send'), true);
        assert.equal(await page.isVisible('#stop'), false);
        const shown = await lastAssistant().locator('.bubble').textContent();
        await sleep(400);
        assert.equal(await lastAssistant().locator('.bubble').textContent(), shown, 'text kept growing after Stop');
        assert.match(await lastAssistant().locator('.meta').textContent(), /stopped/);
        // the server stored a partial reply, well short of 1500 tokens
        const id = await currentId();
        let last;
        for (let i = 0; i < 40; i++) {
            const msgs = (await api(`/v1/sessions/${id}/messages`)).body.data;
            last = msgs[msgs.length - 1];
            if (last && last.role === 'assistant') break;
            await sleep(100);
        }
        assert.equal(last.role, 'assistant');
        assert.equal(last.status, 'partial');
        assert.ok(last.n_tokens < 1500, `n_tokens ${last.n_tokens}`);
        await setSettings(page, { max_tokens: 12 });
    });

    test('reload shows the history; two chats in the sidebar switch correctly', async () => {
        const stoppedId = await currentId();
        await page.reload();
        await page.waitForSelector('body[data-ready="1"]');
        assert.equal(await currentId(), stoppedId);
        assert.equal(await page.locator('#messages .msg.user').count(), 1);
        assert.equal(await page.textContent('#messages .msg.user .bubble'), 'Tell me a very long story');
        assert.equal(await page.getAttribute('#messages .msg.assistant', 'data-state'), 'stopped');
        assert.match(await page.textContent('#messages .msg.assistant .meta'), /^\d+ tokensstopped$/);

        const items = page.locator('#sessions li');
        assert.equal(await items.count(), 2);
        assert.equal(await items.nth(0).getAttribute('data-id'), stoppedId); // newest first
        await items.nth(1).locator('.title').click();
        await page.waitForFunction((id) => location.hash.slice(1) !== id && document.querySelectorAll('#messages .msg.user').length === 3, stoppedId);
        const users = await page.locator('#messages .msg.user .bubble').allTextContents();
        assert.equal(users[0], 'Hello there');
        assert.equal(users[1], '<img src=x onerror="window.__xss=1"><b>bold?</b> <script>window.__xss=2</script>');
        assert.equal(await page.locator('#messages .msg.assistant[data-state="done"]').count(), 3);
        assert.equal(await page.locator('#messages img, #messages b, #messages script').count(), 0);
        assert.equal(await page.locator('#sessions li.active').getAttribute('data-id'), await currentId());
    });

    test('the context gauge and the notice when old turns are dropped', async () => {
        // 1988 reserved for the reply leaves 60 prompt tokens: the earlier turns must go.
        await setSettings(page, { max_tokens: 1988 });
        await sendMessage('again');
        await page.waitForFunction(() => /dropped to fit/.test(document.querySelector('#notice').textContent), null, { timeout: 30000 });
        assert.equal(await page.isVisible('#notice'), true);
        await page.keyboard.press('Escape'); // Esc stops too
        await waitState(['stopped', 'done'], 5000);
        await setSettings(page, { max_tokens: 12 });
        assert.match(await page.getAttribute('#ctx-bar', 'aria-valuenow'), /^\d+$/);
    });

    test('rename and delete a chat from the sidebar', async () => {
        const id = await currentId();
        const li = page.locator(`#sessions li[data-id="${id}"]`);
        await li.locator('.rename').click();
        await page.fill('#sessions .rename-input', 'Renamed <i>chat</i>');
        await page.press('#sessions .rename-input', 'Enter');
        await page.waitForFunction((i) => {
            const t = document.querySelector(`#sessions li[data-id="${i}"] .title`);
            return t && t.textContent === 'Renamed <i>chat</i>';
        }, id);
        assert.equal(await page.textContent('#chat-title'), 'Renamed <i>chat</i>');
        assert.equal((await api(`/v1/sessions/${id}`)).body.title, 'Renamed <i>chat</i>');
        assert.equal(await page.locator('#sessions i').count(), 0);

        const other = await page.locator('#sessions li').evaluateAll((els, cur) => els.map((e) => e.dataset.id).find((x) => x !== cur), id);
        const del = page.locator(`#sessions li[data-id="${other}"] .delete`);
        await page.hover(`#sessions li[data-id="${other}"]`); // the buttons show on hover
        await del.click();
        assert.equal(await del.textContent(), 'Delete?');
        await del.click();
        await page.waitForFunction((o) => !document.querySelector(`#sessions li[data-id="${o}"]`), other);
        assert.equal((await api(`/v1/sessions/${other}`)).status, 404);
        assert.equal(await currentId(), id); // the open chat stayed open
    });

    test('the usage view shows today with a chart', async () => {
        await page.click('#show-usage');
        await page.waitForSelector('#usage-view:not([hidden]) svg.chart');
        assert.ok(await page.locator('#usage-chart svg rect').count() >= 3);
        const today = new Date().toISOString().slice(0, 10);
        const table = await page.textContent('#usage-table');
        assert.ok(table.includes(today), table);
        assert.match(table, /Total/);
        assert.match(table, /USD/);
        await page.screenshot({ path: artifactPath('usage.png') });
        await page.click('#close-usage');
        assert.equal(await page.isVisible('#messages'), true);
    });

    test('settings: saved to localStorage, bad JSON refused', async () => {
        await page.click('#show-settings');
        await page.waitForSelector('#settings-dialog[open]');
        assert.equal(await page.inputValue('#set-max-tokens'), '12');
        await page.fill('#set-extra', '[1, 2');
        await page.click('#settings-form button.primary');
        assert.equal(await page.isVisible('#settings-dialog'), true);
        assert.match(await page.textContent('#settings-error'), /JSON object/);
        await page.fill('#set-extra', '{"top_k": 5}');
        await page.fill('#set-max-tokens', '20');
        await page.click('#settings-form button.primary');
        await page.waitForSelector('#settings-dialog', { state: 'hidden' });
        const saved = await page.evaluate(() => JSON.parse(localStorage.getItem('chatd.settings')));
        assert.equal(saved.max_tokens, 20);
        assert.deepEqual(saved.extra, { top_k: 5 });
        await setSettings(page, { max_tokens: 12 });
    });

    test('screenshot of the main view; nothing left the origin', async () => {
        await page.click('#notice .close').catch(() => {});
        const id = await currentId();
        await page.goto(`${srv.url}/#${id}`);
        await page.waitForSelector('body[data-ready="1"]');
        await sendMessage('One more **markdown** question with `code`?');
        await waitState(['done']);
        await page.screenshot({ path: artifactPath('chat.png') });
        assert.deepEqual(page.offsite, []);
        assert.deepEqual(page.errors, []);
    });
});
