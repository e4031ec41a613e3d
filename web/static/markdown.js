// markdown.js - a small Markdown renderer for chat replies that never builds HTML from
// text: the source is parsed into a tree of plain objects (parseMarkdown), and the tree
// becomes DOM nodes through createElement / createTextNode with a fixed set of tags
// and attributes (renderMarkdown). Model output therefore cannot inject markup, and
// links are kept only for http:, https: and mailto: targets.
//
// Supported: paragraphs (single newlines become line breaks), ATX headings, fenced
// code blocks (``` or ~~~, an unclosed fence runs to the end, as while streaming),
// block quotes, bullet and numbered lists, GFM tables, horizontal rules, and inline
// code, **strong**, *em*, ~~del~~, [links](https://...), bare URLs, backslash escapes.
// Every step is linear or bounded by MAX_DEPTH, so hostile input cannot stall the page.

const MAX_DEPTH = 8;
const MAX_SOURCE = 1 << 20; // longer text is cut (a reply is far below this)

/** Returns url when it is a safe link target (http, https, mailto), else null. */
export function safeHref(url) {
    if (typeof url !== 'string') return null;
    const u = url.trim();
    // No controls, spaces, quotes or angle brackets anywhere: nothing a browser could
    // strip or reinterpret before deciding the scheme.
    if (u.length === 0 || u.length > 2048 || /[\u0000-\u0020\u007f-\u009f"'<>\\`]/.test(u)) return null;
    if (/^https?:\/\/[^/?#]/i.test(u) || /^mailto:[^/]/i.test(u)) return u;
    return null;
}

/** Keeps a fenced code block's language tag only when it is a plain word. */
function safeLang(s) {
    const m = /^[A-Za-z0-9_+#.-]{1,32}$/.exec(s || '');
    return m ? s.toLowerCase() : '';
}

// ---- inline ----

function pushText(out, s) {
    if (!s) return;
    const last = out[out.length - 1];
    if (last && last.t === 'text') last.v += s;
    else out.push({ t: 'text', v: s });
}

const LINK_RE = /\[([^\[\]\n]{1,500})\]\(\s*<?([^\s()<>]{1,2048})>?(?:\s+"[^"\n]{0,200}")?\s*\)/y;
const URL_RE = /https?:\/\/[^\s<>()"'`]{1,2000}/y;
const ESCAPABLE = '\\`*_{}[]()#+-.!|~<>';

function isSpace(c) {
    return c === undefined || c === ' ' || c === '\t' || c === '\n';
}

function isWordChar(c) {
    return c !== undefined && /[\p{L}\p{N}]/u.test(c);
}

/** Parses inline markup of s into an array of inline nodes. */
export function parseInline(s, depth = 0) {
    const out = [];
    let i = 0;
    let plain = 0; // start of pending plain text
    const flush = (end) => { pushText(out, s.slice(plain, end)); };
    while (i < s.length) {
        const c = s[i];
        if (c === '\\' && i + 1 < s.length && ESCAPABLE.includes(s[i + 1])) {
            flush(i);
            pushText(out, s[i + 1]);
            i += 2;
            plain = i;
            continue;
        }
        if (c === '\n') {
            flush(i);
            out.push({ t: 'br' });
            i++;
            plain = i;
            continue;
        }
        if (c === '`') {
            let n = 1;
            while (s[i + n] === '`') n++;
            const fence = '`'.repeat(n);
            let j = s.indexOf(fence, i + n);
            // the closing run must have exactly n backticks
            while (j !== -1 && s[j + n] === '`') {
                let k = j + n;
                while (s[k] === '`') k++;
                j = s.indexOf(fence, k);
            }
            if (j === -1) {
                i += n; // literal backticks
                continue;
            }
            flush(i);
            let code = s.slice(i + n, j).replace(/\n/g, ' ');
            if (code.length > 2 && code[0] === ' ' && code[code.length - 1] === ' ') code = code.slice(1, -1);
            out.push({ t: 'code', v: code });
            i = j + n;
            plain = i;
            continue;
        }
        if (c === '[' || (c === '!' && s[i + 1] === '[')) {
            const at = c === '!' ? i + 1 : i;
            LINK_RE.lastIndex = at;
            const m = LINK_RE.exec(s);
            if (m) {
                const href = safeHref(m[2]);
                flush(i);
                const label = depth < MAX_DEPTH ? parseInline(m[1], depth + 1) : [{ t: 'text', v: m[1] }];
                if (href) out.push({ t: 'a', href, c: label });
                else for (const n of label) n.t === 'text' ? pushText(out, n.v) : out.push(n);
                i = at + m[0].length;
                plain = i;
                continue;
            }
        }
        if (c === 'h' && (i === 0 || !isWordChar(s[i - 1]))) {
            URL_RE.lastIndex = i;
            const m = URL_RE.exec(s);
            if (m) {
                let url = m[0];
                while (/[.,;:!?*_~]$/.test(url)) url = url.slice(0, -1);
                const href = safeHref(url);
                if (href) {
                    flush(i);
                    out.push({ t: 'a', href, c: [{ t: 'text', v: url }] });
                    i += url.length;
                    plain = i;
                    continue;
                }
            }
        }
        if (c === '*' || c === '_' || c === '~') {
            let n = 1;
            while (s[i + n] === c && n < 3) n++;
            if (c === '~' && n < 2) { i++; continue; }
            if (c === '_' && isWordChar(s[i - 1])) { i += n; continue; } // snake_case
            const len = c === '~' ? 2 : (n >= 2 ? 2 : 1);
            const delim = c.repeat(len);
            const start = i + len;
            const j = s.indexOf(delim, start + 1);
            const inner = j === -1 ? '' : s.slice(start, j);
            const ok = j !== -1 && depth < MAX_DEPTH && !isSpace(inner[0]) && !isSpace(inner[inner.length - 1]) &&
                !inner.includes('\n\n') && !(c === '_' && isWordChar(s[j + len]));
            if (!ok) { i += len; continue; }
            flush(i);
            out.push({ t: c === '~' ? 'del' : len === 2 ? 'strong' : 'em', c: parseInline(inner, depth + 1) });
            i = j + len;
            plain = i;
            continue;
        }
        i++;
    }
    flush(s.length);
    return out;
}

// ---- blocks ----

const FENCE_RE = /^ {0,3}(`{3,}|~{3,})\s*([^\s`]*)[^`]*$/;
const HEADING_RE = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR_RE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE_RE = /^ {0,3}>[ ]?(.*)$/;
const LIST_RE = /^( {0,3})([-*+]|\d{1,9}[.)])([ \t]+)(.*)$/;
const TABLE_SEP_RE = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;

function splitRow(line) {
    let s = line.trim();
    if (s.startsWith('|')) s = s.slice(1);
    if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
    const cells = [];
    let cur = '';
    for (let i = 0; i < s.length; i++) {
        if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; continue; }
        if (s[i] === '|') { cells.push(cur.trim()); cur = ''; continue; }
        cur += s[i];
    }
    cells.push(cur.trim());
    return cells;
}

function startsBlock(line, next) {
    return FENCE_RE.test(line) || HEADING_RE.test(line) || HR_RE.test(line) || QUOTE_RE.test(line) ||
        LIST_RE.test(line) || (line.includes('|') && next !== undefined && TABLE_SEP_RE.test(next) && next.includes('-'));
}

function parseBlocks(lines, depth) {
    const blocks = [];
    let i = 0;
    while (i < lines.length) {
        const line = lines[i];
        if (/^\s*$/.test(line)) { i++; continue; }
        let m;
        if ((m = FENCE_RE.exec(line))) {
            const fence = m[1];
            const body = [];
            i++;
            while (i < lines.length) {
                const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[i]);
                if (close && close[1][0] === fence[0] && close[1].length >= fence.length) { i++; break; }
                body.push(lines[i]);
                i++;
            }
            blocks.push({ t: 'pre', lang: safeLang(m[2]), v: body.join('\n') });
            continue;
        }
        if ((m = HEADING_RE.exec(line))) {
            blocks.push({ t: 'h', level: m[1].length, c: parseInline(m[2] || '', 0) });
            i++;
            continue;
        }
        if (HR_RE.test(line)) {
            blocks.push({ t: 'hr' });
            i++;
            continue;
        }
        if (QUOTE_RE.test(line) && depth < MAX_DEPTH) {
            const inner = [];
            while (i < lines.length && (m = QUOTE_RE.exec(lines[i]))) { inner.push(m[1]); i++; }
            blocks.push({ t: 'quote', c: parseBlocks(inner, depth + 1) });
            continue;
        }
        if ((m = LIST_RE.exec(line)) && depth < MAX_DEPTH) {
            const ordered = /\d/.test(m[2]);
            const list = { t: ordered ? 'ol' : 'ul', items: [] };
            if (ordered) list.start = parseInt(m[2], 10);
            while (i < lines.length) {
                const lm = LIST_RE.exec(lines[i]);
                if (!lm || /\d/.test(lm[2]) !== ordered) break;
                const indent = lm[1].length + lm[2].length + lm[3].length;
                const item = [lm[4]];
                i++;
                // continuation: indented lines, and blank lines followed by indented ones
                while (i < lines.length) {
                    const l = lines[i];
                    if (/^\s*$/.test(l)) {
                        if (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1])) { item.push(''); i++; continue; }
                        break;
                    }
                    const lead = /^\s*/.exec(l)[0].length;
                    if (lead >= 2) { item.push(l.slice(Math.min(lead, indent))); i++; continue; }
                    if (LIST_RE.test(l) || startsBlock(l, lines[i + 1])) break;
                    item.push(l.trim()); // lazy continuation
                    i++;
                }
                list.items.push(parseBlocks(item, depth + 1));
                // a blank line between items keeps the list going
                if (i + 1 < lines.length && /^\s*$/.test(lines[i]) && LIST_RE.test(lines[i + 1])) {
                    const nm = LIST_RE.exec(lines[i + 1]);
                    if (/\d/.test(nm[2]) === ordered) i++;
                }
            }
            blocks.push(list);
            continue;
        }
        if (line.includes('|') && i + 1 < lines.length && TABLE_SEP_RE.test(lines[i + 1]) && lines[i + 1].includes('-')) {
            const head = splitRow(line);
            const align = splitRow(lines[i + 1]).map((c) =>
                c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : c.startsWith(':') ? 'left' : '');
            i += 2;
            const rows = [];
            while (i < lines.length && lines[i].includes('|') && !/^\s*$/.test(lines[i])) {
                rows.push(splitRow(lines[i]));
                i++;
            }
            blocks.push({
                t: 'table', align,
                head: head.map((c) => parseInline(c, 0)),
                rows: rows.map((r) => head.map((_, k) => parseInline(r[k] || '', 0))),
            });
            continue;
        }
        const para = [line];
        i++;
        while (i < lines.length && !/^\s*$/.test(lines[i]) && !startsBlock(lines[i], lines[i + 1])) {
            para.push(lines[i]);
            i++;
        }
        blocks.push({ t: 'p', c: parseInline(para.map((l) => l.trim()).join('\n'), 0) });
    }
    return blocks;
}

/** Parses Markdown source into a tree of plain objects (see the node kinds above). */
export function parseMarkdown(src) {
    const text = String(src ?? '').slice(0, MAX_SOURCE);
    return parseBlocks(text.split(/\r\n|\r|\n/), 0);
}

// ---- DOM ----

/** Every element renderMarkdown may create. */
export const ALLOWED_TAGS = new Set(['p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'code', 'blockquote',
    'ul', 'ol', 'li', 'hr', 'br', 'strong', 'em', 'del', 'a', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'div']);

function make(doc, parent, tag) {
    if (!ALLOWED_TAGS.has(tag)) throw new Error('markdown: tag not allowed: ' + tag);
    const e = doc.createElement(tag);
    parent.appendChild(e);
    return e;
}

function renderInline(doc, parent, nodes) {
    for (const n of nodes) {
        switch (n.t) {
        case 'text': parent.appendChild(doc.createTextNode(n.v)); break;
        case 'br': make(doc, parent, 'br'); break;
        case 'code': make(doc, parent, 'code').appendChild(doc.createTextNode(n.v)); break;
        case 'strong': case 'em': case 'del': renderInline(doc, make(doc, parent, n.t), n.c); break;
        case 'a': {
            const href = safeHref(n.href);
            if (!href) { renderInline(doc, parent, n.c); break; }
            const a = make(doc, parent, 'a');
            a.setAttribute('href', href);
            a.setAttribute('rel', 'noopener noreferrer nofollow');
            a.setAttribute('target', '_blank');
            renderInline(doc, a, n.c);
            break;
        }
        default: break;
        }
    }
}

function renderBlocks(doc, parent, blocks, tight) {
    for (const b of blocks) {
        switch (b.t) {
        case 'p':
            renderInline(doc, tight ? parent : make(doc, parent, 'p'), b.c);
            break;
        case 'h': renderInline(doc, make(doc, parent, 'h' + Math.min(6, Math.max(1, b.level | 0))), b.c); break;
        case 'hr': make(doc, parent, 'hr'); break;
        case 'pre': {
            const pre = make(doc, parent, 'pre');
            const code = make(doc, pre, 'code');
            if (b.lang) {
                code.setAttribute('class', 'language-' + b.lang);
                pre.setAttribute('data-lang', b.lang);
            }
            code.appendChild(doc.createTextNode(b.v));
            break;
        }
        case 'quote': renderBlocks(doc, make(doc, parent, 'blockquote'), b.c, false); break;
        case 'ul': case 'ol': {
            const list = make(doc, parent, b.t);
            if (b.t === 'ol' && b.start > 1) list.setAttribute('start', String(b.start | 0));
            for (const item of b.items) {
                const li = make(doc, list, 'li');
                renderBlocks(doc, li, item, item.length === 1 && item[0].t === 'p');
            }
            break;
        }
        case 'table': {
            const wrap = make(doc, parent, 'div');
            wrap.setAttribute('class', 'md-table');
            const table = make(doc, wrap, 'table');
            const row = (sec, cells, tag) => {
                const tr = make(doc, sec, 'tr');
                cells.forEach((c, k) => {
                    const td = make(doc, tr, tag);
                    if (b.align[k]) td.setAttribute('class', 'align-' + b.align[k]);
                    renderInline(doc, td, c);
                });
            };
            row(make(doc, table, 'thead'), b.head, 'th');
            const body = make(doc, table, 'tbody');
            for (const r of b.rows) row(body, r, 'td');
            break;
        }
        default: break;
        }
    }
}

/** Renders Markdown source into a new DocumentFragment of doc (default: the page's). */
export function renderMarkdown(src, doc = globalThis.document) {
    const frag = doc.createDocumentFragment();
    renderBlocks(doc, frag, parseMarkdown(src), false);
    return frag;
}
