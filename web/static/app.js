// app.js - the chat page. It talks only to the chatd that served it, through the public
// API: /v1/models, /v1/sessions (list, create, rename, delete, messages), streaming
// /v1/chat/completions with include_usage, and /v1/usage. Model text reaches the DOM only
// as text nodes (markdown.js builds elements itself); nothing here assigns innerHTML.
//
// State lives in the server (sessions and their messages) and in localStorage (API key,
// settings, last open chat). The open chat is also in the URL hash, so a reload returns
// to it.

import { renderMarkdown } from './markdown.js';
import { readChatChunks, newReply, applyChunk } from './sse.js';

const $ = (id) => document.getElementById(id);
const LS_KEY = 'chatd.apiKey';
const LS_SETTINGS = 'chatd.settings';
const LS_LAST = 'chatd.lastSession';

const state = {
    model: null,        // /v1/models entry
    sessions: [],       // newest first
    current: null,      // the open session, or null for a chat not yet sent
    controller: null,   // AbortController of the running stream
    totals: new Map(),  // session id -> usage row
    currency: 'USD',
    loadSeq: 0,         // guards against a slow load finishing after a newer one
};

// ---- helpers ----

function h(tag, props = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
}

const fmtInt = (n) => (Number(n) || 0).toLocaleString('en-US');

function fmtCost(micros, currency = state.currency) {
    const v = (Number(micros) || 0) / 1e6;
    const digits = v === 0 ? 2 : v < 0.01 ? 6 : v < 1 ? 4 : 2;
    return `${v.toFixed(digits)} ${currency}`;
}

function fmtParams(n) {
    if (!n) return '?';
    if (n >= 1e9) return (n / 1e9).toFixed(1) + 'B';
    if (n >= 1e6) return (n / 1e6).toFixed(1) + 'M';
    if (n >= 1e3) return (n / 1e3).toFixed(1) + 'K';
    return String(n);
}

function loadSettings() {
    try {
        const s = JSON.parse(localStorage.getItem(LS_SETTINGS) || '{}');
        return s && typeof s === 'object' ? s : {};
    } catch {
        return {};
    }
}

function showNotice(text, kind = 'error') {
    const n = $('notice');
    n.replaceChildren(h('span', { text }), h('button', {
        type: 'button', class: 'close', 'aria-label': 'Dismiss', text: '×', onclick: hideNotice,
    }));
    n.className = kind;
    n.hidden = false;
}

function hideNotice() {
    $('notice').hidden = true;
}

// ---- API ----

class ApiError extends Error {
    constructor(status, message, code, retryAfter) {
        super(message);
        this.status = status;
        this.code = code;
        this.retryAfter = retryAfter;
    }
}

async function api(method, path, body, { raw = false, signal } = {}) {
    const headers = {};
    const key = localStorage.getItem(LS_KEY);
    if (key) headers.Authorization = 'Bearer ' + key;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) {
        let err = null;
        try { err = (await res.json()).error; } catch { /* not JSON */ }
        throw new ApiError(res.status, (err && err.message) || res.statusText || 'request failed',
            err && err.code, res.headers.get('Retry-After'));
    }
    return raw ? res : res.json();
}

/** Shows an API failure to the user: 401 opens the key dialog, 429 explains the limit. */
function reportError(e, what) {
    if (e && e.name === 'AbortError') return;
    if (e instanceof ApiError && e.status === 401) {
        askKey(e.message);
        return;
    }
    if (e instanceof ApiError && e.status === 429) {
        const wait = e.retryAfter ? ` Try again in ${e.retryAfter} s.` : '';
        const kind = e.code === 'insufficient_quota' ? 'Token quota exhausted' : 'Too many requests';
        showNotice(`${kind} (429): ${e.message}.${wait}`);
        return;
    }
    const status = e instanceof ApiError ? ` (${e.status})` : '';
    showNotice(`${what} failed${status}: ${e && e.message ? e.message : e}`);
}

// ---- API key ----

function askKey(serverMessage) {
    const had = !!localStorage.getItem(LS_KEY);
    $('key-message').textContent = had
        ? `The server refused the saved API key (401: ${serverMessage}). Enter a valid key.`
        : `This server needs an API key (401: ${serverMessage}).`;
    showNotice(`Not authorized (401): ${serverMessage}. Enter an API key to continue.`);
    const d = $('key-dialog');
    $('key-input').value = '';
    if (!d.open) d.showModal();
    $('key-input').focus();
}

$('key-dialog').addEventListener('close', () => {
    const d = $('key-dialog');
    const key = $('key-input').value.trim();
    if (d.returnValue === 'save' && key) {
        localStorage.setItem(LS_KEY, key);
        init();
    }
});

// ---- model and context gauge ----

function renderModel() {
    const m = state.model;
    const box = $('model-info');
    if (!m) {
        box.replaceChildren();
        return;
    }
    const c = m.chatd || {};
    const row = (k, v) => h('div', { class: 'kv' }, h('span', { text: k }), h('b', { text: v }));
    box.replaceChildren(
        h('div', { class: 'model-name', text: m.id, title: m.id }),
        row('Parameters', fmtParams(c.parameters)),
        row('Weights', c.weight_type || '?'),
        row('Context', c.context_length ? fmtInt(c.context_length) + ' tokens' : '?'),
        row('Architecture', (c.architecture || '?') + (c.reasoning ? ', thinks' : '')),
    );
}

function setGauge(used, nCtx, dropped) {
    const pct = nCtx ? Math.min(100, Math.round((used / nCtx) * 100)) : 0;
    $('ctx-fill').style.width = pct + '%';
    $('ctx-bar').setAttribute('aria-valuenow', String(pct));
    $('ctx-bar').className = pct >= 90 ? 'full' : pct >= 70 ? 'high' : '';
    $('ctx-text').textContent = nCtx ? `${fmtInt(used)} / ${fmtInt(nCtx)} tokens (${pct}%)` : '';
    $('ctx').dataset.dropped = dropped ? String(dropped) : '';
}

function resetGauge() {
    const n = state.model && state.model.chatd ? state.model.chatd.context_length : 0;
    setGauge(0, n, 0);
}

// ---- sessions ----

async function loadSessions() {
    const list = await api('GET', '/v1/sessions?limit=100');
    state.sessions = list.data || [];
    renderSessions();
}

function renderSessions() {
    const ul = $('sessions');
    ul.replaceChildren();
    for (const s of state.sessions) {
        const active = state.current && state.current.id === s.id;
        const li = h('li', { class: 'session' + (active ? ' active' : ''), 'data-id': s.id });
        const title = h('button', {
            type: 'button', class: 'title', text: s.title || 'Untitled chat', title: s.title || '',
            onclick: () => { location.hash = s.id; },
        });
        const rename = h('button', {
            type: 'button', class: 'icon rename', 'aria-label': 'Rename', title: 'Rename', text: '✎',
            onclick: () => startRename(li, s),
        });
        const del = h('button', {
            type: 'button', class: 'icon delete', 'aria-label': 'Delete', title: 'Delete', text: '✕',
            onclick: () => confirmDelete(del, s),
        });
        li.append(title, rename, del);
        ul.append(li);
    }
}

function startRename(li, s) {
    const input = h('input', { class: 'rename-input', 'aria-label': 'New title', maxlength: 200 });
    input.value = s.title || '';
    let done = false;
    const finish = async (save) => {
        if (done) return;
        done = true;
        const title = input.value.trim();
        if (save && title && title !== s.title) {
            try {
                const upd = await api('PATCH', `/v1/sessions/${encodeURIComponent(s.id)}`, { title });
                Object.assign(s, upd);
                if (state.current && state.current.id === s.id) $('chat-title').textContent = s.title;
            } catch (e) {
                reportError(e, 'Renaming the chat');
            }
        }
        renderSessions();
    };
    input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); finish(true); }
        if (e.key === 'Escape') { e.preventDefault(); finish(false); }
    });
    input.addEventListener('blur', () => finish(true));
    li.replaceChildren(input);
    input.focus();
    input.select();
}

function confirmDelete(btn, s) {
    if (!btn.classList.contains('confirm')) {
        btn.classList.add('confirm');
        btn.textContent = 'Delete?';
        setTimeout(() => { btn.classList.remove('confirm'); btn.textContent = '✕'; }, 4000);
        return;
    }
    deleteSession(s);
}

async function deleteSession(s) {
    try {
        await api('DELETE', `/v1/sessions/${encodeURIComponent(s.id)}`);
    } catch (e) {
        if (!(e instanceof ApiError && e.status === 404)) {
            reportError(e, 'Deleting the chat');
            return;
        }
    }
    state.sessions = state.sessions.filter((x) => x.id !== s.id);
    if (localStorage.getItem(LS_LAST) === s.id) localStorage.removeItem(LS_LAST);
    if (state.current && state.current.id === s.id) {
        if (location.hash) location.hash = '';
        else newChat();
    }
    renderSessions();
}

function newChat() {
    stopStream();
    state.current = null;
    $('chat-title').textContent = 'New chat';
    $('messages').replaceChildren(h('div', { class: 'empty', text: 'Start a conversation: type a message below.' }));
    $('session-total').textContent = '';
    resetGauge();
    hideUsage();
    renderSessions();
    $('input').focus();
}

async function openSession(id) {
    const seq = ++state.loadSeq;
    stopStream();
    hideUsage();
    let sess;
    let msgs;
    try {
        sess = await api('GET', `/v1/sessions/${encodeURIComponent(id)}`);
        msgs = await api('GET', `/v1/sessions/${encodeURIComponent(id)}/messages`);
    } catch (e) {
        if (seq !== state.loadSeq) return;
        if (e instanceof ApiError && e.status === 404) {
            showNotice('That chat no longer exists.', 'info');
            location.hash = '';
            newChat();
            return;
        }
        reportError(e, 'Loading the chat');
        return;
    }
    if (seq !== state.loadSeq) return;
    state.current = sess;
    localStorage.setItem(LS_LAST, sess.id);
    if (!state.sessions.some((s) => s.id === sess.id)) state.sessions.unshift(sess);
    $('chat-title').textContent = sess.title || 'Untitled chat';
    const box = $('messages');
    box.replaceChildren();
    const callNames = new Map();
    for (const m of msgs.data || []) {
        if (m.role === 'user') {
            addUser(m.content);
        } else if (m.role === 'tool') {
            addToolResult(m, callNames.get(m.tool_call_id));
        } else if (m.role === 'assistant') {
            const v = addAssistant();
            v.reply.content = m.content || '';
            v.reply.reasoning = m.reasoning_content || '';
            renderReply(v, true);
            const status = m.status === 'complete' ? 'done' : m.status === 'partial' ? 'stopped' : m.status;
            v.el.dataset.state = status;
            const meta = [h('span', { text: `${fmtInt(m.n_tokens)} tokens` })];
            if (status === 'stopped') meta.push(h('span', { class: 'tag', text: 'stopped' }));
            if (status === 'error') meta.push(h('span', { class: 'tag error', text: 'error' }));
            v.meta.replaceChildren(...meta);
            for (const c of m.tool_calls || []) callNames.set(c.id, c.function?.name);
            addToolCalls(v, m.tool_calls);
        }
    }
    if (!box.children.length) box.append(h('div', { class: 'empty', text: 'No messages yet.' }));
    applyMeter(sess.meter);
    renderSessions();
    refreshTotals();
    box.scrollTop = box.scrollHeight;
}

function applyMeter(meter) {
    if (meter) setGauge(meter.stored_tokens || 0, meter.n_ctx || 0, 0);
    else resetGauge();
}

async function refreshTotals() {
    try {
        const u = await api('GET', '/v1/usage?group_by=session');
        state.currency = u.currency || state.currency;
        state.totals = new Map((u.data || []).map((r) => [r.key, r]));
    } catch (e) {
        if (e instanceof ApiError && e.status === 401) reportError(e, 'Loading usage');
        return;
    }
    renderTotal();
}

function renderTotal() {
    const t = state.current ? state.totals.get(state.current.id) : null;
    const el = $('session-total');
    if (!t) {
        el.textContent = '';
        return;
    }
    const tokens = (t.prompt_tokens || 0) + (t.completion_tokens || 0);
    el.textContent = `Chat total: ${fmtInt(tokens)} tokens (${fmtInt(t.prompt_cache_hit_tokens)} cached) · ${fmtCost(t.cost_micros)}`;
}

// ---- messages ----

function clearEmpty() {
    for (const e of $('messages').querySelectorAll('.empty')) e.remove();
}

function addUser(text) {
    clearEmpty();
    const el = h('div', { class: 'msg user' }, h('div', { class: 'bubble', text }));
    $('messages').append(el);
    return el;
}

function addAssistant() {
    clearEmpty();
    const thinkingBody = h('div', { class: 'thinking-body' });
    const summary = h('summary', { text: 'Thinking' });
    const thinking = h('details', { class: 'thinking', hidden: true }, summary, thinkingBody);
    const bubble = h('div', { class: 'bubble markdown' });
    const meta = h('div', { class: 'meta' });
    const el = h('div', { class: 'msg assistant', 'data-state': 'streaming' }, thinking, bubble, meta);
    $('messages').append(el);
    return { el, thinking, summary, thinkingBody, bubble, meta, reply: newReply(), pending: false };
}

// ---- tool calls: one folded line per call and per result ----

function shorten(text, n) {
    const one = String(text).replace(/\s+/g, ' ').trim();
    return one.length > n ? one.slice(0, n - 1) + '…' : one;
}

function prettyJson(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; }
}

function addToolCalls(v, calls) {
    if (!calls || !calls.length) return;
    if (!v.reply.content) v.bubble.hidden = true;
    const list = h('div', { class: 'tool-calls' });
    for (const c of calls) {
        const name = c.function?.name || '?';
        const args = c.function?.arguments || '';
        list.append(h('details', { class: 'tool-call', 'data-call-id': c.id || '' },
            h('summary', {}, h('span', { class: 'tool-icon', text: 'ƒ' }),
                h('code', { text: `${name}(${shorten(args, 60)})` })),
            h('pre', { text: prettyJson(args) })));
    }
    v.el.insertBefore(list, v.meta);
}

function addToolResult(m, name) {
    clearEmpty();
    const el = h('div', { class: 'msg tool' },
        h('details', { class: 'tool-result', 'data-call-id': m.tool_call_id || '' },
            h('summary', {}, h('span', { class: 'tool-icon', text: '↳' }),
                h('span', { text: `${name || 'tool'}: ` }), h('code', { text: shorten(m.content, 80) })),
            h('pre', { text: prettyJson(m.content) })));
    $('messages').append(el);
    return el;
}

function renderReply(v, final) {
    const r = v.reply;
    if (v.final) return; // a frame scheduled during the stream must not undo the last render
    v.final = final;
    if (r.reasoning) {
        v.thinking.hidden = false;
        v.thinkingBody.textContent = r.reasoning;
        // open while the model thinks; folded once the answer starts (unless there is none)
        if (!r.content && !v.autoOpened && !final) {
            v.thinking.open = true;
            v.autoOpened = true;
        } else if (r.content && v.autoOpened) {
            v.thinking.open = false;
            v.autoOpened = false;
        }
        if (final && !r.content) v.thinking.open = true;
        v.summary.textContent = final || r.content ? 'Thinking' : 'Thinking…';
    }
    v.bubble.replaceChildren(renderMarkdown(r.content, document));
    if (!final && !r.content && !r.reasoning) v.bubble.append(h('span', { class: 'cursor', text: '…' }));
}

function scheduleRender(v) {
    if (v.pending) return;
    v.pending = true;
    requestAnimationFrame(() => {
        v.pending = false;
        const box = $('messages');
        const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
        renderReply(v, false);
        if (atBottom) box.scrollTop = box.scrollHeight;
    });
}

function setBusy(busy) {
    $('send').hidden = busy;
    $('stop').hidden = !busy;
    document.body.classList.toggle('busy', busy);
}

function stopStream() {
    if (state.controller) state.controller.abort();
}

function requestBody(text, sessionId) {
    const s = loadSettings();
    let extra = {};
    if (s.extra && typeof s.extra === 'object') extra = s.extra;
    else if (typeof s.extra === 'string' && s.extra.trim()) {
        try { extra = JSON.parse(s.extra); } catch { extra = {}; }
    }
    const body = { ...extra };
    if (state.model) body.model = state.model.id;
    body.messages = [{ role: 'user', content: text }];
    body.session_id = sessionId;
    body.stream = true;
    body.stream_options = { include_usage: true };
    if (Number(s.max_tokens) > 0) body.max_tokens = Math.floor(Number(s.max_tokens));
    if (s.temperature !== undefined && s.temperature !== '' && s.temperature !== null) body.temperature = Number(s.temperature);
    return body;
}

async function send() {
    const input = $('input');
    const text = input.value;
    if (!text.trim() || state.controller) return;
    hideUsage();
    hideNotice();
    const ctl = new AbortController();
    state.controller = ctl;
    setBusy(true);
    try {
        if (!state.current) {
            const s = loadSettings();
            const title = text.trim().split('\n')[0].slice(0, 60);
            const sess = await api('POST', '/v1/sessions', { title, system_prompt: s.system_prompt || undefined });
            state.current = sess;
            state.sessions.unshift(sess);
            localStorage.setItem(LS_LAST, sess.id);
            state.loadSeq++;
            history.replaceState(null, '', '#' + sess.id);
            $('chat-title').textContent = sess.title || 'Untitled chat';
            renderSessions();
        }
    } catch (e) {
        state.controller = null;
        setBusy(false);
        reportError(e, 'Creating the chat');
        return;
    }
    const sess = state.current;
    input.value = '';
    addUser(text);
    const v = addAssistant();
    $('messages').scrollTop = $('messages').scrollHeight;
    let requestId = null;
    let outcome = 'done';
    try {
        const res = await api('POST', '/v1/chat/completions', requestBody(text, sess.id), { raw: true, signal: ctl.signal });
        requestId = res.headers.get('x-request-id');
        const dropped = Number(res.headers.get('X-Context-Dropped-Messages')) || 0;
        if (dropped > 0) showDropped(dropped, state.model && state.model.chatd ? state.model.chatd.context_length : 0);
        for await (const chunk of readChatChunks(res.body)) {
            applyChunk(v.reply, chunk);
            scheduleRender(v);
        }
        if (v.reply.error) outcome = 'error';
    } catch (e) {
        if (e && e.name === 'AbortError') {
            outcome = 'stopped';
        } else {
            outcome = 'error';
            v.reply.error = { message: e && e.message ? e.message : String(e) };
            reportError(e, 'Sending the message');
        }
    } finally {
        if (state.controller === ctl) state.controller = null;
        setBusy(false);
    }
    if (state.current !== sess) return; // the user moved to another chat meanwhile
    renderReply(v, true);
    v.el.dataset.state = outcome;
    finishMeta(v, outcome, requestId);
    // the session moved to the top; its meter and totals changed
    state.sessions = [sess, ...state.sessions.filter((x) => x.id !== sess.id)];
    renderSessions();
    const r = v.reply;
    if (r.context) {
        const used = (r.context.prompt_tokens || 0) + (r.usage ? r.usage.completion_tokens || 0 : 0);
        setGauge(used, r.context.n_ctx, r.context.dropped_messages);
        if (r.context.dropped_messages > 0) showDropped(r.context.dropped_messages, r.context.n_ctx);
    } else {
        api('GET', `/v1/sessions/${encodeURIComponent(sess.id)}`).then((s) => applyMeter(s.meter)).catch(() => {});
    }
    refreshTotals();
    $('input').focus();
}

function showDropped(n, nCtx) {
    showNotice(`${n} older message(s) were dropped to fit the model's context window` +
        (nCtx ? ` of ${fmtInt(nCtx)} tokens` : '') + '; the model no longer sees them.', 'info');
}

async function finishMeta(v, outcome, requestId) {
    const r = v.reply;
    const parts = [];
    if (r.error) {
        v.bubble.append(h('div', { class: 'error', text: `Error: ${r.error.message || 'generation failed'}` }));
    } else if (outcome === 'stopped' && !r.content.trim() && !r.reasoning) {
        v.bubble.append(h('span', { class: 'hint', text: '(stopped before any text)' }));
    }
    if (r.usage) {
        const u = r.usage;
        parts.push(h('span', { class: 'usage', text: `prompt ${fmtInt(u.prompt_tokens)} · cached ${fmtInt(u.prompt_cache_hit_tokens ?? (u.prompt_tokens_details || {}).cached_tokens)} · completion ${fmtInt(u.completion_tokens)}` }));
    }
    if (outcome === 'stopped') parts.push(h('span', { class: 'tag', text: 'stopped' }));
    if (r.finish === 'length') parts.push(h('span', { class: 'tag', text: 'max tokens reached' }));
    const cost = h('span', { class: 'cost' });
    parts.push(cost);
    v.meta.replaceChildren(...parts);
    if (!requestId) return;
    // The usage row (with the cost) is written when the response ends; after a stop the
    // server may need a moment to record the partial reply.
    for (let attempt = 0; attempt < 4; attempt++) {
        if (attempt) await new Promise((res) => setTimeout(res, 250 * attempt));
        try {
            const row = await api('GET', `/v1/usage?request_id=${encodeURIComponent(requestId)}`);
            if (!r.usage) {
                cost.before(h('span', { class: 'usage', text: `prompt ${fmtInt(row.prompt_tokens)} · cached ${fmtInt(row.prompt_cache_hit_tokens)} · completion ${fmtInt(row.completion_tokens)}` }));
            }
            cost.textContent = `cost ${fmtCost(row.cost_micros)}`;
            return;
        } catch (e) {
            if (!(e instanceof ApiError && e.status === 404)) return;
        }
    }
}

// ---- usage view ----

function hideUsage() {
    $('usage-view').hidden = true;
    $('messages').hidden = false;
}

async function showUsage() {
    let u;
    try {
        u = await api('GET', '/v1/usage?group_by=day');
    } catch (e) {
        reportError(e, 'Loading usage');
        return;
    }
    state.currency = u.currency || state.currency;
    $('messages').hidden = true;
    $('usage-view').hidden = false;
    const rows = (u.data || []).slice().sort((a, b) => (a.key < b.key ? -1 : 1)).slice(-30);
    $('usage-chart').replaceChildren(usageChart(rows));
    const tr = (cells, tag = 'td') => h('tr', {}, ...cells.map((c) => h(tag, { text: c })));
    const line = (r) => [fmtInt(r.requests), fmtInt(r.prompt_cache_hit_tokens), fmtInt(r.prompt_cache_miss_tokens),
        fmtInt(r.completion_tokens), fmtCost(r.cost_micros, u.currency)];
    const table = h('table', { class: 'usage-table' },
        h('thead', {}, tr(['Day', 'Requests', 'Cached input', 'Uncached input', 'Output', 'Cost'], 'th')),
        h('tbody', {}, ...rows.slice().reverse().map((r) => tr([r.key, ...line(r)]))),
        u.total ? h('tfoot', {}, tr(['Total', ...line(u.total)])) : null);
    $('usage-table').replaceChildren(rows.length ? table : h('p', { class: 'empty', text: 'No usage recorded yet.' }));
}

function usageChart(rows) {
    const NS = 'http://www.w3.org/2000/svg';
    const W = 600;
    const H = 160;
    const pad = 24;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H + pad}`);
    svg.setAttribute('class', 'chart');
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'Tokens per day');
    const max = Math.max(1, ...rows.map((r) => (r.prompt_tokens || 0) + (r.completion_tokens || 0)));
    const slot = W / Math.max(rows.length, 1);
    const bw = Math.max(4, Math.min(40, slot * 0.7));
    const el = (tag, attrs, text) => {
        const e = document.createElementNS(NS, tag);
        for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
        if (text !== undefined) e.textContent = text;
        svg.append(e);
        return e;
    };
    rows.forEach((r, i) => {
        const x = i * slot + (slot - bw) / 2;
        let y = H;
        const parts = [['hit', r.prompt_cache_hit_tokens], ['miss', r.prompt_cache_miss_tokens], ['out', r.completion_tokens]];
        for (const [cls, v] of parts) {
            const hgt = ((Number(v) || 0) / max) * (H - 10);
            y -= hgt;
            const rect = el('rect', { x: x.toFixed(1), y: y.toFixed(1), width: bw.toFixed(1), height: hgt.toFixed(1), class: 'bar-' + cls });
            const t = document.createElementNS(NS, 'title');
            t.textContent = `${r.key}: ${fmtInt(v)} ${cls === 'out' ? 'output' : cls === 'hit' ? 'cached input' : 'uncached input'} tokens`;
            rect.append(t);
        }
        if (rows.length <= 12 || i % Math.ceil(rows.length / 12) === 0) {
            el('text', { x: (x + bw / 2).toFixed(1), y: H + 16, 'text-anchor': 'middle', class: 'label' }, String(r.key).slice(5));
        }
    });
    el('line', { x1: 0, y1: H, x2: W, y2: H, class: 'axis' });
    const legend = h('div', { class: 'legend' },
        h('span', { class: 'sw hit', text: 'cached input' }), h('span', { class: 'sw miss', text: 'uncached input' }),
        h('span', { class: 'sw out', text: 'output' }), h('span', { text: `max ${fmtInt(max)} tokens/day` }));
    return h('div', {}, svg, legend);
}

// ---- settings ----

function openSettings() {
    const s = loadSettings();
    $('set-max-tokens').value = s.max_tokens || '';
    $('set-temperature').value = s.temperature ?? '';
    $('set-system').value = s.system_prompt || '';
    $('set-extra').value = s.extra ? (typeof s.extra === 'string' ? s.extra : JSON.stringify(s.extra)) : '';
    $('settings-error').hidden = true;
    $('settings-dialog').showModal();
}

$('settings-form').addEventListener('submit', (e) => {
    if (e.submitter && e.submitter.value !== 'save') return;
    const extraText = $('set-extra').value.trim();
    let extra;
    if (extraText) {
        try {
            extra = JSON.parse(extraText);
            if (!extra || typeof extra !== 'object' || Array.isArray(extra)) throw new Error('not an object');
        } catch (err) {
            e.preventDefault();
            $('settings-error').textContent = `Extra request fields must be a JSON object (${err.message}).`;
            $('settings-error').hidden = false;
            return;
        }
    }
    const s = {
        max_tokens: $('set-max-tokens').value ? Number($('set-max-tokens').value) : undefined,
        temperature: $('set-temperature').value !== '' ? Number($('set-temperature').value) : undefined,
        system_prompt: $('set-system').value || undefined,
        extra,
    };
    localStorage.setItem(LS_SETTINGS, JSON.stringify(s));
});

$('forget-key').addEventListener('click', () => {
    localStorage.removeItem(LS_KEY);
    $('settings-dialog').close();
    init();
});

// ---- wiring ----

$('input').addEventListener('keydown', (e) => {
    // Enter sends; Shift+Enter is a newline; Enter that ends an IME composition must not send.
    if (e.key !== 'Enter' || e.shiftKey || e.isComposing || e.keyCode === 229) return;
    e.preventDefault();
    send();
});
$('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
});
$('stop').addEventListener('click', stopStream);
document.addEventListener('keydown', (e) => {
    // Escape stops a running reply (dialogs take their own Escape first)
    if (e.key === 'Escape' && state.controller && !document.querySelector('dialog[open]')) stopStream();
});
$('new-chat').addEventListener('click', () => {
    if (location.hash) location.hash = '';
    else newChat();
});
$('show-usage').addEventListener('click', showUsage);
$('close-usage').addEventListener('click', hideUsage);
$('show-settings').addEventListener('click', openSettings);

window.addEventListener('hashchange', () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id) {
        if (!state.current || state.current.id !== id) openSession(id);
    } else {
        newChat();
    }
});

async function init() {
    hideNotice();
    try {
        const models = await api('GET', '/v1/models');
        state.model = (models.data || [])[0] || null;
        renderModel();
        await loadSessions();
    } catch (e) {
        reportError(e, 'Connecting to chatd');
        return;
    }
    let id = decodeURIComponent(location.hash.slice(1));
    const last = localStorage.getItem(LS_LAST);
    if (!id && last && state.sessions.some((s) => s.id === last)) {
        id = last;
        history.replaceState(null, '', '#' + id);
    }
    if (id) await openSession(id);
    else newChat();
    document.body.dataset.ready = '1';
}

init();
