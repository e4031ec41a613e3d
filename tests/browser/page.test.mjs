// page.test.mjs - the browser end-to-end suite: one headless Chromium for all of it
// (chat.mjs: open mode; reasoning_auth.mjs: a thinking model, --auth keys; tools.mjs: a
// session with a tool call), each part
// with its own real chatd. The parts run in this order.
import { after } from 'node:test';
import { closeSharedBrowser } from './harness.mjs';
import './chat.mjs';
import './reasoning_auth.mjs';
import './tools.mjs';

after(async () => {
    await closeSharedBrowser();
});
