// chatd.mjs - starts the real chatd binary (CHATD_BIN) for the Node tests: a temporary
// directory and database, a free port, optional extra flags; and makes random-weight
// models with `chatd gen-model` (a fixture vocabulary and chat template).
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const bin = process.env.CHATD_BIN;
export const fixtures = process.env.CHATD_FIXTURES;

// chatd reads CHATD_<OPTION> variables as options: the servers get none of them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CHATD_')));

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

// A random-weight qwen2 model with the qwen3 vocabulary (151,936 tokens) and the chat
// template of a fixture (tests/fixtures/templates/<name>.json).
export function genModel(dir, templateFixture, seed = 7) {
  const tmpl = JSON.parse(readFileSync(join(fixtures, 'templates', `${templateFixture}.json`), 'utf8')).template;
  const tpath = join(dir, 'template.jinja');
  writeFileSync(tpath, tmpl);
  const out = join(dir, `${templateFixture}.gguf`);
  execFileSync(bin, ['gen-model', '--arch', 'qwen2', '--vocab',
    join(fixtures, 'tokenizer', 'ggml-vocab-qwen3.gguf'), '--out', out, '--type', 'q8_0',
    '--seed', String(seed), '--n-ctx', '1024', '--chat-template', tpath], { env, stdio: 'ignore' });
  return out;
}

// Starts `chatd serve` on a model; resolves to { url, stop } once /health answers.
export async function startChatd(dir, model, extra = []) {
  const port = await freePort();
  const proc = spawn(bin, ['serve', '--port', String(port), '--db', join(dir, 'chatd.db'),
    '--model', model, '--threads', '2', ...extra], { stdio: ['ignore', 'ignore', process.env.CHATD_LOG ? 'inherit' : 'ignore'], env });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    try {
      if ((await fetch(`${url}/health`)).ok) break;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: () => new Promise((resolve) => {
      proc.on('exit', resolve);
      proc.kill('SIGTERM');
    }),
  };
}

export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}
