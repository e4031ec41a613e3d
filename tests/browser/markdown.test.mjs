// markdown.test.mjs - unit tests of web/static/markdown.js in node: the renderer runs
// against a minimal fake document that records every element, attribute and text node,
// and throws if anything tries to parse HTML (innerHTML, outerHTML, insertAdjacentHTML).
// Hostile inputs must come out as text, links only with http(s)/mailto targets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMarkdown, renderMarkdown, safeHref, ALLOWED_TAGS } from '../../web/static/markdown.js';

class FakeNode {
    constructor(kind, name) {
        this.kind = kind; // 'el' | 'text' | 'frag'
        this.name = name;
        this.attrs = new Map();
        this.children = [];
        this.data = '';
    }
    appendChild(c) { this.children.push(c); return c; }
    setAttribute(k, v) { this.attrs.set(String(k), String(v)); }
    set innerHTML(_) { throw new Error('innerHTML used'); }
    set outerHTML(_) { throw new Error('outerHTML used'); }
    insertAdjacentHTML() { throw new Error('insertAdjacentHTML used'); }
    get textContent() { return this.kind === 'text' ? this.data : this.children.map((c) => c.textContent).join(''); }
    set textContent(_) { throw new Error('textContent set on an element: renderer should use text nodes'); }
}

const fakeDoc = {
    createElement(tag) { return new FakeNode('el', String(tag).toLowerCase()); },
    createTextNode(s) { const n = new FakeNode('text'); n.data = String(s); return n; },
    createDocumentFragment() { return new FakeNode('frag'); },
    createRange() { throw new Error('createRange used'); },
};

function walk(n, fn) {
    fn(n);
    for (const c of n.children) walk(c, fn);
}

function elements(frag) {
    const out = [];
    walk(frag, (n) => { if (n.kind === 'el') out.push(n); });
    return out;
}

/** Checks the structural safety of a rendered fragment; returns its elements. */
function assertSafe(frag) {
    const els = elements(frag);
    for (const e of els) {
        assert.ok(ALLOWED_TAGS.has(e.name), `unexpected tag ${e.name}`);
        for (const [k, v] of e.attrs) {
            assert.ok(['href', 'rel', 'target', 'class', 'start', 'data-lang'].includes(k), `unexpected attribute ${k}`);
            if (k === 'href') assert.match(v, /^(https?:\/\/|mailto:)/i);
            if (k === 'class') assert.match(v, /^(language-[a-z0-9_+#.-]+|md-table|align-(left|right|center))$/);
            if (k === 'data-lang') assert.match(v, /^[a-z0-9_+#.-]+$/);
        }
    }
    return els;
}

const render = (src) => renderMarkdown(src, fakeDoc);
const tags = (frag) => elements(frag).map((e) => e.name);

test('HTML in the source stays text', () => {
    const src = '<script>alert(1)</script> <img src=x onerror="alert(1)"> <b>bold</b> <a href="javascript:x">y</a>';
    const f = render(src);
    const els = assertSafe(f);
    assert.deepEqual(els.map((e) => e.name), ['p']);
    assert.equal(f.textContent, src);
});

test('HTML inside code spans and fences stays text', () => {
    const f = render('`<b>x</b>`\n\n```html\n<script>alert(1)</script>\n<!-- c -->\n```');
    assertSafe(f);
    assert.deepEqual(tags(f), ['p', 'code', 'pre', 'code']);
    const codes = elements(f).filter((e) => e.name === 'code');
    assert.equal(codes[0].textContent, '<b>x</b>');
    assert.equal(codes[1].textContent, '<script>alert(1)</script>\n<!-- c -->');
    assert.equal(codes[1].attrs.get('class'), 'language-html');
});

test('a hostile fence language is dropped', () => {
    const f = render('```"><script>alert(1)</script>\ncode\n```');
    assertSafe(f);
    const code = elements(f).find((e) => e.name === 'code');
    assert.equal(code.attrs.has('class'), false);
    assert.equal(code.textContent, 'code');
});

test('unsafe link targets are not links', () => {
    const bad = ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', 'data:text/html,<script>x</script>',
        'vbscript:x', '//evil.example/x', '/relative', 'https:alert(1)', 'http://a"onmouseover="x', 'file:///etc/passwd'];
    for (const url of bad) {
        assert.equal(safeHref(url), null, url);
        const f = render(`[click](${url}) and <${url}>`);
        const els = assertSafe(f); // every href that is made is http(s) or mailto
        assert.ok(!els.some((e) => e.name === 'a' && e.textContent === 'click'), `link made for ${url}`);
        assert.ok(f.textContent.includes('click'));
    }
    // an entity-encoded scheme is just text, never decoded
    const f = render('[x](&#106;avascript:alert(1))');
    assert.ok(!elements(f).some((e) => e.name === 'a'));
});

test('safe links get rel and target', () => {
    const f = render('see [docs](https://example.com/a?b=1#c) or mail [me](mailto:a@b.c) or http://x.example/p.');
    const links = assertSafe(f).filter((e) => e.name === 'a');
    assert.equal(links.length, 3);
    assert.equal(links[0].attrs.get('href'), 'https://example.com/a?b=1#c');
    assert.equal(links[0].attrs.get('rel'), 'noopener noreferrer nofollow');
    assert.equal(links[0].attrs.get('target'), '_blank');
    assert.equal(links[1].attrs.get('href'), 'mailto:a@b.c');
    assert.equal(links[2].attrs.get('href'), 'http://x.example/p'); // trailing period is not part of it
});

test('images become links, never img elements', () => {
    const f = render('![alt](https://example.com/x.png) ![a](javascript:alert(1))');
    const els = assertSafe(f);
    assert.ok(!els.some((e) => e.name === 'img'));
});

test('common Markdown structure', () => {
    const src = [
        '# Title', '', 'Some **bold**, *em*, ~~gone~~ and `code`.', 'Next line.', '',
        '- one', '- two with `x`', '', '1. first', '2. second', '',
        '> quoted *text*', '', '---', '',
        '| a | b |', '|---|--:|', '| 1 | 2 |', '',
        '```js', 'let x = 1 < 2;', '```',
    ].join('\n');
    const f = render(src);
    assertSafe(f);
    assert.deepEqual(tags(f), ['h1', 'p', 'strong', 'em', 'del', 'code', 'br', 'ul', 'li', 'li', 'code', 'ol', 'li', 'li',
        'blockquote', 'p', 'em', 'hr', 'div', 'table', 'thead', 'tr', 'th', 'th', 'tbody', 'tr', 'td', 'td', 'pre', 'code']);
    assert.equal(elements(f).find((e) => e.name === 'pre').textContent, 'let x = 1 < 2;');
});

test('snake_case and escapes are left alone', () => {
    const f = render('a_b_c and \\*not em\\* and 2 * 3 * 4');
    assertSafe(f);
    assert.ok(!elements(f).some((e) => e.name === 'em'));
    assert.equal(f.textContent, 'a_b_c and *not em* and 2 * 3 * 4');
});

test('an unclosed fence (mid-stream) is a code block to the end', () => {
    const f = render('text\n```python\nprint("<hi>")\n');
    assertSafe(f);
    assert.deepEqual(tags(f), ['p', 'pre', 'code']);
    assert.equal(elements(f)[2].textContent, 'print("<hi>")\n');
});

test('text survives: rendered text equals the source minus markup', () => {
    const src = 'plain <tag> & "quotes" \'single\' \u0000 \u202e rtl \ud83d\ude00';
    const f = render(src);
    assertSafe(f);
    assert.equal(f.textContent, src);
});

test('pathological input renders quickly and safely', () => {
    const inputs = [
        '*'.repeat(30000), '**a'.repeat(20000), '_'.repeat(30000), '`'.repeat(30000), '['.repeat(30000),
        '[a]('.repeat(20000), '> '.repeat(20000) + 'x', '- '.repeat(20000) + 'x', '~~a'.repeat(20000),
        'http://'.repeat(10000), '*a '.repeat(20000), '|'.repeat(20000) + '\n|---|\n', ('`a'.repeat(100) + '\n').repeat(200),
        Array.from({ length: 300 }, (_, i) => '`'.repeat(i + 1) + 'x').join(' '),
    ];
    for (const src of inputs) {
        const t0 = performance.now();
        const f = render(src);
        const ms = performance.now() - t0;
        assertSafe(f);
        assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms on ${JSON.stringify(src.slice(0, 12))}...`);
    }
});

test('deep nesting is bounded', () => {
    const src = '> '.repeat(500) + '- '.repeat(500) + '*'.repeat(200) + 'x' + '*'.repeat(200);
    const f = render(src);
    assertSafe(f);
    let depth = 0;
    const measure = (n, d) => { depth = Math.max(depth, d); n.children.forEach((c) => measure(c, d + 1)); };
    measure(f, 0);
    assert.ok(depth < 40, `depth ${depth}`);
});

test('parseMarkdown returns plain data', () => {
    const tree = parseMarkdown('hi **there**');
    assert.deepEqual(JSON.parse(JSON.stringify(tree)), tree);
    assert.equal(tree[0].t, 'p');
});
