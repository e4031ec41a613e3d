// harness.mjs - shared by the browser tests: starts the real chatd binary (CHATD_BIN) on
// a free port with a temporary database and a fixture model (CHATD_FIXTURES), runs the
// `chatd user` / `chatd key` commands, and launches Debian's headless Chromium through
// playwright-core (resolved from tests/node/node_modules; it never downloads a browser).
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync, readFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
const require = createRequire(path.join(repoRoot, 'tests', 'node', 'package.json'));
const { chromium } = require('playwright-core');

export const chatdBin = process.env.CHATD_BIN || path.join(repoRoot, 'build', 'chatd');
export const fixtures = process.env.CHATD_FIXTURES || path.join(repoRoot, 'tests', 'fixtures');
export const artifactsDir = process.env.CHATD_ARTIFACTS || path.join(repoRoot, 'build', 'artifacts');
export const modelPath = path.join(fixtures, 'models', 'tiny-qwen2-q8_0.gguf');
const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

function freePort() {
    return new Promise((resolve, reject) => {
        const s = net.createServer();
        s.unref();
        s.on('error', reject);
        s.listen(0, '127.0.0.1', () => {
            const { port } = s.address();
            s.close(() => resolve(port));
        });
    });
}

// chatd reads CHATD_<OPTION> variables as options (and rejects unknown ones): the test
// servers get none of them, whatever the caller's environment holds.
const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CHATD_')));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `chatd serve` with extra args; resolves once /health answers 200. */
export async function startServer(extra = [], { dir } = {}) {
    const tmp = dir || mkdtempSync(path.join(os.tmpdir(), 'chatd-browser-'));
    const db = path.join(tmp, 'chatd.db');
    for (let attempt = 0; attempt < 3; attempt++) {
        const port = await freePort();
        const args = ['serve', '--model', modelPath, '--port', String(port), '--db', db, '--threads', '1',
            '--parallel', '2', ...extra];
        const proc = spawn(chatdBin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
        let log = '';
        proc.stdout.on('data', (d) => { log += d; });
        proc.stderr.on('data', (d) => { log += d; });
        let exited = false;
        proc.on('exit', () => { exited = true; });
        const url = `http://127.0.0.1:${port}`;
        for (let i = 0; i < 300 && !exited; i++) {
            try {
                const r = await fetch(url + '/health');
                if (r.ok) {
                    return {
                        url, db, dir: tmp, proc, log: () => log,
                        async stop() {
                            if (!exited) {
                                proc.kill('SIGTERM');
                                for (let k = 0; k < 100 && !exited; k++) await sleep(50);
                                if (!exited) proc.kill('SIGKILL');
                            }
                            if (!dir) rmSync(tmp, { recursive: true, force: true });
                            // a sanitizer build of chatd reports here
                            const bad = /ERROR: \w+Sanitizer|runtime error:/.exec(log);
                            if (bad) throw new Error('chatd sanitizer report:\n' + log.slice(bad.index, bad.index + 4000));
                        },
                    };
                }
            } catch { /* not up yet */ }
            await sleep(100);
        }
        if (!exited) proc.kill('SIGKILL');
        if (attempt === 2) throw new Error('chatd did not start:\n' + log);
    }
    throw new Error('unreachable');
}

/** Runs a chatd subcommand against db; returns its stdout. */
export function chatdCli(args, db) {
    return execFileSync(chatdBin, [...args, '--db', db], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: childEnv });
}

/** Launches headless Chromium on a fresh profile directory; returns {context, close}. */
export async function launchBrowser() {
    const profile = mkdtempSync(path.join(os.tmpdir(), 'chatd-chromium-'));
    const context = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath,
        headless: true,
        viewport: { width: 1200, height: 800 },
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    return {
        context,
        async close() {
            await context.close().catch(() => {});
            rmSync(profile, { recursive: true, force: true });
        },
    };
}

let shared = null;

/** One Chromium for every browser test of this process (launching is the slow part). */
export async function sharedBrowser() {
    if (!shared) shared = launchBrowser();
    return shared;
}

export async function closeSharedBrowser() {
    if (shared) await (await shared).close();
    shared = null;
}

/** A new page that records page errors and any request leaving the chatd origin. */
export async function openPage(context, base, { settings, apiKey } = {}) {
    const page = await context.newPage();
    page.errors = [];
    page.offsite = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    page.on('request', (r) => {
        const u = r.url();
        if (!(u === base || u.startsWith(base + '/'))) page.offsite.push(u);
    });
    if (settings || apiKey) {
        await page.addInitScript(([s, k]) => {
            if (!sessionStorage.getItem('chatd.test.init')) {
                sessionStorage.setItem('chatd.test.init', '1');
                if (s) localStorage.setItem('chatd.settings', s);
                if (k) localStorage.setItem('chatd.apiKey', k);
            }
        }, [settings ? JSON.stringify(settings) : null, apiKey || null]);
    }
    return page;
}

/** Replaces the page's settings (max_tokens, extra request fields...). */
export async function setSettings(page, settings) {
    await page.evaluate((s) => localStorage.setItem('chatd.settings', s), JSON.stringify(settings));
}

export function artifactPath(name) {
    mkdirSync(artifactsDir, { recursive: true });
    return path.join(artifactsDir, name);
}

export { readFileSync, sleep };

/** Installs an observer that notes whether the newest reply ever showed text (or a
 * thinking block) while it was still streaming; read it with streamSeen(page). */
export async function watchStreaming(page) {
    await page.evaluate(() => {
        window.__seen = { text: 0, thinking: 0 };
        const check = () => {
            const all = document.querySelectorAll('#messages .msg.assistant');
            const el = all[all.length - 1];
            if (!el || el.dataset.state !== 'streaming') return;
            if (el.querySelector('.bubble').textContent.replace('…', '').trim()) window.__seen.text++;
            const t = el.querySelector('.thinking');
            if (t && !t.hidden && t.open && t.querySelector('.thinking-body').textContent) window.__seen.thinking++;
        };
        new MutationObserver(check).observe(document.getElementById('messages'),
            { subtree: true, childList: true, characterData: true, attributes: true });
    });
}

export const streamSeen = (page) => page.evaluate(() => window.__seen);
