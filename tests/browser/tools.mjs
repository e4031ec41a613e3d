// tools.mjs - the chat page with a session that holds a tool call and its result: each
// shows as one folded line (the call as name(arguments), the result with the function's
// name), unfolding to the pretty-printed JSON; markup inside is shown as text.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, sharedBrowser, openPage, artifactPath } from './harness.mjs';

let srv;
let page;

describe('tool calls in a session', () => {
    before(async () => {
        srv = await startServer();
        const br = await sharedBrowser();
        page = await openPage(br.context, srv.url, { settings: { max_tokens: 4 } });
    });

    after(async () => {
        if (page) await page.close();
        if (srv) await srv.stop();
    });

    test('a call and its result are shown compactly', async () => {
        const post = (path, body) => fetch(srv.url + path, { method: 'POST', body: JSON.stringify(body) })
            .then((r) => r.json());
        const sess = await post('/v1/sessions', { title: 'weather' });
        const args = '{"city": "Paris", "note": "<b>bold</b>"}';
        const reply = await post('/v1/chat/completions', {
            session_id: sess.id, max_tokens: 4, temperature: 0,
            messages: [
                { role: 'user', content: 'Weather in Paris?' },
                { role: 'assistant', content: null, tool_calls: [{ id: 'call00001', type: 'function',
                    function: { name: 'get_weather', arguments: args } }] },
                { role: 'tool', tool_call_id: 'call00001', content: '{"temp": 18, "sky": "clear"}' },
            ],
        });
        assert.ok(reply.choices, JSON.stringify(reply));
        await page.goto(`${srv.url}/#${encodeURIComponent(sess.id)}`);
        await page.waitForSelector('body[data-ready="1"]');
        const call = page.locator('#messages .tool-call');
        await call.waitFor();
        assert.equal(await call.count(), 1);
        const summary = await call.locator('summary').textContent();
        assert.match(summary, /get_weather\(\{"city": "Paris", "note": "<b>bold<\/b>"\}\)/);
        assert.equal(await call.locator('b').count(), 0, 'markup in the arguments became HTML');
        assert.equal(await call.getAttribute('open'), null);
        const result = page.locator('#messages .tool-result');
        assert.match(await result.locator('summary').textContent(), /get_weather: \{"temp": 18, "sky": "clear"\}/);
        await call.locator('summary').click();
        assert.match(await call.locator('pre').textContent(), /"city": "Paris",\n {2}"note"/);
        // the order: user, the call, its result, the reply
        const kinds = await page.$$eval('#messages > .msg', (els) => els.map((e) => e.className));
        assert.deepEqual(kinds.map((k) => k.replace('msg ', '')), ['user', 'assistant', 'tool', 'assistant']);
        await page.screenshot({ path: artifactPath('tools.png') });
    });
});
