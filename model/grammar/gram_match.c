/* gram_match.c - matching a compiled grammar against token byte strings: the
 * vocabulary trie, the matcher's lazily built automaton and the per-token mask.
 *
 * A parser stack is a chain of interned nodes (pos, parent): pos is an element index,
 * parent the node to return to (-1: the bottom). After closure every stack's top points
 * at a GE_SET element; a rule reference whose next element ends its alternative does
 * not push a return node (a tail call), so `x*` keeps a constant depth. A state is an
 * interned, sorted set of top nodes plus "accepting" (some stack returned from the
 * start rule). Transitions (state, byte) -> state are memoised in a 256-entry table per
 * state, built on first use, and each state's mask of allowed tokens is cached: inside
 * a long JSON string the state does not change, so its mask costs one lookup.
 *
 * The mask walks the vocabulary trie in preorder: each trie node's state is the
 * transition of its parent's state by the node's byte; a dead transition skips the
 * subtree. A token is allowed when the walk reaches its node.
 *
 * Memory stays bounded: over GM_MAX_TABLES transition tables or GM_MAX_MASKS masks the
 * caches are dropped (states are kept and rebuilt lazily); over GM_MAX_STATES states,
 * GM_MAX_NODES nodes, GM_MAX_POOL top nodes in all or GM_MAX_SET in one state, a mask or
 * an accept fails with GRAM_ELIMIT.
 */
#include "gram_int.h"

#include <stdlib.h>
#include <string.h>

#define GV_MAX_TOKEN_BYTES 1024
#define GM_MAX_TABLES 16384
#define GM_MAX_MASKS 256
#define GM_MAX_STATES (1u << 20)
#define GM_MAX_NODES (1u << 21)
#define GM_MAX_POOL (1u << 23) /* top-node ids over all states (32 MiB) */
#define GM_MAX_SET (1u << 16)  /* top nodes of one state */
#define GM_UNKNOWN (-2)
#define GM_DEAD (-1)

/* ---- vocabulary trie ---- */

struct gram_vocab {
    uint32_t n_vocab;
    uint32_t n_nodes;
    uint8_t *byte;       /* [n_nodes] the node's byte */
    uint16_t *depth;     /* [n_nodes] 1 for a child of the root */
    uint32_t *skip;      /* [n_nodes] preorder index just past the subtree */
    uint32_t *tok_lo;    /* [n_nodes] tokens ending here: sorted[tok_lo..tok_hi) */
    uint32_t *tok_hi;
    uint32_t *sorted;    /* text token ids in byte order */
    uint32_t max_depth;
    char *blob;          /* token texts */
    uint64_t *off;       /* [n_vocab + 1] */
    uint32_t *end_bits;  /* bitmap of end tokens */
    int32_t first_end;
    uint8_t *kind;       /* [n_vocab] enum gram_tok_kind */
};

struct sort_ctx {
    const char *blob;
    const uint64_t *off;
};

static int cmp_tok(const void *a, const void *b, void *arg)
{
    const struct sort_ctx *c = arg;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    size_t lx = c->off[x + 1] - c->off[x], ly = c->off[y + 1] - c->off[y];
    int r = memcmp(c->blob + c->off[x], c->blob + c->off[y], lx < ly ? lx : ly);
    if (r)
        return r;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return (x > y) - (x < y);
}

void gram_vocab_free(struct gram_vocab *v)
{
    if (!v)
        return;
    free(v->byte);
    free(v->depth);
    free(v->skip);
    free(v->tok_lo);
    free(v->tok_hi);
    free(v->sorted);
    free(v->blob);
    free(v->off);
    free(v->end_bits);
    free(v->kind);
    free(v);
}

/* Lays out the trie of the sorted tokens in preorder. */
static int build_trie(struct gram_vocab *v, uint32_t n_text)
{
    size_t cap = 0;
    for (uint32_t k = 0; k < n_text; k++)
        cap += v->off[v->sorted[k] + 1] - v->off[v->sorted[k]];
    if (cap > UINT32_MAX - 1)
        return -1;
    cap = cap ? cap : 1;
    v->byte = malloc(cap);
    v->depth = malloc(cap * sizeof(*v->depth));
    v->skip = malloc(cap * sizeof(*v->skip));
    v->tok_lo = malloc(cap * sizeof(*v->tok_lo));
    v->tok_hi = malloc(cap * sizeof(*v->tok_hi));
    uint32_t path[GV_MAX_TOKEN_BYTES + 1];
    if (!v->byte || !v->depth || !v->skip || !v->tok_lo || !v->tok_hi)
        return -1;
    uint32_t n = 0;
    const char *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t k = 0; k < n_text; k++) {
        uint32_t id = v->sorted[k];
        const char *t = v->blob + v->off[id];
        size_t len = v->off[id + 1] - v->off[id];
        size_t lcp = 0;
        while (prev && lcp < len && lcp < prev_len && t[lcp] == prev[lcp])
            lcp++;
        for (size_t d = lcp; d < len; d++) {
            v->byte[n] = (uint8_t)t[d];
            v->depth[n] = (uint16_t)(d + 1);
            v->tok_lo[n] = v->tok_hi[n] = 0;
            path[d + 1] = n++;
        }
        uint32_t at = path[len];
        if (v->tok_hi[at] == v->tok_lo[at])
            v->tok_lo[at] = k;
        v->tok_hi[at] = k + 1;
        if (len > v->max_depth)
            v->max_depth = (uint32_t)len;
        prev = t;
        prev_len = len;
    }
    v->n_nodes = n;
    /* skip[i]: the first later node no deeper than i */
    uint32_t *stack = malloc((v->max_depth + 1) * sizeof(*stack));
    if (!stack)
        return -1;
    uint32_t sp = 0;
    for (uint32_t i = 0; i < n; i++) {
        while (sp && v->depth[stack[sp - 1]] >= v->depth[i])
            v->skip[stack[--sp]] = i;
        stack[sp++] = i;
    }
    while (sp)
        v->skip[stack[--sp]] = n;
    free(stack);
    return 0;
}

struct gram_vocab *gram_vocab_new(uint32_t n, const char *const *bytes, const size_t *lens,
                                  const uint8_t *kinds)
{
    struct gram_vocab *v = calloc(1, sizeof(*v));
    if (!v || n == 0)
        goto fail;
    v->n_vocab = n;
    v->first_end = -1;
    v->off = calloc((size_t)n + 1, sizeof(*v->off));
    v->end_bits = calloc(((size_t)n + 31) / 32, sizeof(uint32_t));
    v->sorted = malloc((size_t)n * sizeof(*v->sorted));
    if (!v->off || !v->end_bits || !v->sorted)
        goto fail;
    v->kind = malloc(n);
    if (!v->kind)
        goto fail;
    memcpy(v->kind, kinds, n);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        v->off[i] = total;
        total += lens[i] <= GV_MAX_TOKEN_BYTES ? lens[i] : 0;
    }
    v->off[n] = total;
    v->blob = malloc(total ? total : 1);
    if (!v->blob)
        goto fail;
    uint32_t n_text = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = v->off[i + 1] - v->off[i];
        if (len)
            memcpy(v->blob + v->off[i], bytes[i], len);
        if (len && kinds[i] == GRAM_TOK_TEXT)
            v->sorted[n_text++] = i;
        if (kinds[i] == GRAM_TOK_END) {
            v->end_bits[i / 32] |= 1u << (i % 32);
            if (v->first_end < 0)
                v->first_end = (int32_t)i;
        }
    }
    struct sort_ctx c = {v->blob, v->off};
    qsort_r(v->sorted, n_text, sizeof(*v->sorted), cmp_tok, &c);
    if (build_trie(v, n_text) != 0)
        goto fail;
    return v;
fail:
    gram_vocab_free(v);
    return NULL;
}

uint32_t gram_vocab_size(const struct gram_vocab *v)
{
    return v->n_vocab;
}

size_t gram_vocab_trie_nodes(const struct gram_vocab *v)
{
    return v->n_nodes;
}

int32_t gram_vocab_end_token(const struct gram_vocab *v)
{
    return v->first_end;
}

const char *gram_vocab_text(const struct gram_vocab *v, int32_t id, size_t *len)
{
    *len = 0;
    if (id < 0 || (uint32_t)id >= v->n_vocab)
        return NULL;
    *len = v->off[id + 1] - v->off[id];
    return v->blob + v->off[id];
}

/* ---- matcher ---- */

struct gm_node {
    uint32_t pos;
    int32_t parent;
};

struct gm_state {
    uint32_t set_off; /* top nodes: pool[set_off .. set_off + set_n) */
    uint32_t set_n;
    bool accept;
    int32_t *next;    /* [256] or NULL */
    uint32_t *mask;   /* cached mask or NULL */
};

struct gm_work {
    uint32_t pos;
    int32_t parent;
};

struct gram_matcher {
    struct gram *g;
    const struct gram_vocab *v;
    struct gm_node *nodes;
    uint32_t n_nodes, cap_nodes;
    uint32_t *node_hash; /* open addressing: node id + 1, 0 empty */
    uint32_t node_hash_cap;
    struct gm_state *st;
    uint32_t n_st, cap_st;
    uint32_t *pool;
    size_t n_pool, cap_pool;
    uint32_t *st_hash;   /* state id + 1 */
    uint32_t st_hash_cap;
    int32_t cur;
    bool finished;
    bool failed;
    uint32_t n_tables, n_masks;
    /* closure scratch */
    struct gm_work *work;
    size_t n_work, cap_work;
    uint64_t *seen_key;  /* (pos, parent) pairs of this closure, stamped by seen_gen */
    uint32_t *seen_gen;
    uint32_t seen_cap, seen_n, gen;
    uint32_t *res;
    size_t n_res, cap_res;
    int32_t *walk;       /* [max_depth + 1] trie walk states */
    uint32_t *empty_mask;
};

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int grow_buf(void **p, size_t elem, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t node_key(uint32_t pos, int32_t parent)
{
    return mix64(((uint64_t)pos << 32) | (uint32_t)parent);
}

static uint64_t set_hash(const uint32_t *ids, size_t n, bool accept)
{
    uint64_t h = accept ? 0x9E3779B97F4A7C15ULL : 0x1234567ULL;
    for (size_t i = 0; i < n; i++)
        h = mix64(h ^ ids[i]) + i;
    return h;
}

static uint64_t node_hash_of(const struct gram_matcher *m, uint32_t i)
{
    return node_key(m->nodes[i].pos, m->nodes[i].parent);
}

static uint64_t state_hash_of(const struct gram_matcher *m, uint32_t i)
{
    const struct gm_state *st = &m->st[i];
    return set_hash(m->pool + st->set_off, st->set_n, st->accept);
}

/* Doubles an open-addressing table of n entries (slot = id + 1, 0 empty). */
static int rehash(const struct gram_matcher *m, uint32_t n,
                  uint64_t (*hash_of)(const struct gram_matcher *, uint32_t), uint32_t **table,
                  uint32_t *cap_io)
{
    uint32_t cap = *cap_io ? *cap_io * 2 : 1024;
    uint32_t *h = calloc(cap, sizeof(*h));
    if (!h)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = (uint32_t)hash_of(m, i) & (cap - 1);
        while (h[s])
            s = (s + 1) & (cap - 1);
        h[s] = i + 1;
    }
    free(*table);
    *table = h;
    *cap_io = cap;
    return 0;
}

/* The id of node (pos, parent), interned; -1 when out of memory or over the cap. */
static int32_t node_intern(struct gram_matcher *m, uint32_t pos, int32_t parent)
{
    if ((m->n_nodes + 1) * 2 > m->node_hash_cap &&
        rehash(m, m->n_nodes, node_hash_of, &m->node_hash, &m->node_hash_cap) != 0)
        return -1;
    uint32_t s = (uint32_t)node_key(pos, parent) & (m->node_hash_cap - 1);
    while (m->node_hash[s]) {
        const struct gm_node *n = &m->nodes[m->node_hash[s] - 1];
        if (n->pos == pos && n->parent == parent)
            return (int32_t)(m->node_hash[s] - 1);
        s = (s + 1) & (m->node_hash_cap - 1);
    }
    if (m->n_nodes >= GM_MAX_NODES)
        return -1;
    size_t cap = m->cap_nodes;
    if (grow_buf((void **)&m->nodes, sizeof(*m->nodes), &cap, (size_t)m->n_nodes + 1) != 0)
        return -1;
    m->cap_nodes = (uint32_t)cap;
    m->nodes[m->n_nodes] = (struct gm_node){pos, parent};
    m->node_hash[s] = m->n_nodes + 1;
    return (int32_t)m->n_nodes++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The state of m->res (sorted here) with `accept`; -1 on failure. */
static int32_t state_intern(struct gram_matcher *m, bool accept)
{
    if (m->n_res)
        qsort(m->res, m->n_res, sizeof(*m->res), cmp_u32);
    if ((m->n_st + 1) * 2 > m->st_hash_cap &&
        rehash(m, m->n_st, state_hash_of, &m->st_hash, &m->st_hash_cap) != 0)
        return -1;
    uint32_t s = (uint32_t)set_hash(m->res, m->n_res, accept) & (m->st_hash_cap - 1);
    while (m->st_hash[s]) {
        const struct gm_state *st = &m->st[m->st_hash[s] - 1];
        if (st->accept == accept && st->set_n == m->n_res &&
            (!m->n_res || memcmp(m->pool + st->set_off, m->res, m->n_res * sizeof(*m->res)) == 0))
            return (int32_t)(m->st_hash[s] - 1);
        s = (s + 1) & (m->st_hash_cap - 1);
    }
    if (m->n_st >= GM_MAX_STATES || m->n_pool + m->n_res > GM_MAX_POOL)
        return -1;
    size_t cap = m->cap_st;
    if (grow_buf((void **)&m->st, sizeof(*m->st), &cap, (size_t)m->n_st + 1) != 0 ||
        grow_buf((void **)&m->pool, sizeof(*m->pool), &m->cap_pool, m->n_pool + m->n_res) != 0)
        return -1;
    m->cap_st = (uint32_t)cap;
    if (m->n_res)
        memcpy(m->pool + m->n_pool, m->res, m->n_res * sizeof(*m->res));
    m->st[m->n_st] = (struct gm_state){(uint32_t)m->n_pool, (uint32_t)m->n_res, accept, NULL, NULL};
    m->n_pool += m->n_res;
    m->st_hash[s] = m->n_st + 1;
    return (int32_t)m->n_st++;
}

static int push_work(struct gram_matcher *m, uint32_t pos, int32_t parent)
{
    if (grow_buf((void **)&m->work, sizeof(*m->work), &m->cap_work, m->n_work + 1) != 0)
        return -1;
    m->work[m->n_work++] = (struct gm_work){pos, parent};
    return 0;
}

/* Marks (pos, parent) seen in this closure; false when it already was. */
static int seen_add(struct gram_matcher *m, uint32_t pos, int32_t parent)
{
    if ((m->seen_n + 1) * 2 > m->seen_cap) {
        uint32_t cap = m->seen_cap ? m->seen_cap * 2 : 256;
        uint64_t *k = malloc(cap * sizeof(*k));
        uint32_t *g = calloc(cap, sizeof(*g));
        if (!k || !g) {
            free(k);
            free(g);
            return -1;
        }
        for (uint32_t i = 0; i < m->seen_cap; i++) {
            if (m->seen_gen[i] != m->gen)
                continue;
            uint32_t s = (uint32_t)mix64(m->seen_key[i]) & (cap - 1);
            while (g[s] == m->gen)
                s = (s + 1) & (cap - 1);
            k[s] = m->seen_key[i];
            g[s] = m->gen;
        }
        free(m->seen_key);
        free(m->seen_gen);
        m->seen_key = k;
        m->seen_gen = g;
        m->seen_cap = cap;
    }
    uint64_t key = ((uint64_t)pos << 32) | (uint32_t)parent;
    uint32_t s = (uint32_t)mix64(key) & (m->seen_cap - 1);
    while (m->seen_gen[s] == m->gen) {
        if (m->seen_key[s] == key)
            return 0;
        s = (s + 1) & (m->seen_cap - 1);
    }
    m->seen_key[s] = key;
    m->seen_gen[s] = m->gen;
    m->seen_n++;
    return 1;
}

static void closure_begin(struct gram_matcher *m)
{
    m->n_work = 0;
    m->n_res = 0;
    m->seen_n = 0;
    if (++m->gen == 0) { /* stamps wrapped: clear them */
        if (m->seen_gen)
            memset(m->seen_gen, 0, m->seen_cap * sizeof(*m->seen_gen));
        m->gen = 1;
    }
}

/* Expands the work list into top nodes (m->res); *accept when the start rule ended. */
static int closure_run(struct gram_matcher *m, bool *accept)
{
    const struct gram *g = m->g;
    *accept = false;
    while (m->n_work) {
        struct gm_work w = m->work[--m->n_work];
        int fresh = seen_add(m, w.pos, w.parent);
        if (fresh < 0)
            return -1;
        if (!fresh)
            continue;
        const struct gram_elem *e = &g->elems[w.pos];
        if (e->type == GE_SET) {
            if (m->n_res >= GM_MAX_SET)
                return -1;
            int32_t id = node_intern(m, w.pos, w.parent);
            if (id < 0 || grow_buf((void **)&m->res, sizeof(*m->res), &m->cap_res, m->n_res + 1))
                return -1;
            m->res[m->n_res++] = (uint32_t)id;
        } else if (e->type == GE_RULE) {
            int32_t ret = w.parent;
            if (g->elems[w.pos + 1].type != GE_END && (ret = node_intern(m, w.pos + 1, w.parent)) < 0)
                return -1;
            for (uint32_t a = g->rule_alt[e->arg]; a < g->rule_alt[e->arg + 1]; a++)
                if (push_work(m, g->alt_start[a], ret) != 0)
                    return -1;
        } else if (w.parent < 0) {
            *accept = true;
        } else {
            const struct gm_node *p = &m->nodes[w.parent];
            if (push_work(m, p->pos, p->parent) != 0)
                return -1;
        }
    }
    return 0;
}

/* Drops the transition tables and masks (they are rebuilt on demand). */
static void drop_caches(struct gram_matcher *m)
{
    for (uint32_t i = 0; i < m->n_st; i++) {
        free(m->st[i].next);
        free(m->st[i].mask);
        m->st[i].next = NULL;
        m->st[i].mask = NULL;
    }
    m->n_tables = m->n_masks = 0;
}

/* The state after byte c from state s: a state id, GM_DEAD, or < GM_DEAD on failure. */
static int32_t step_slow(struct gram_matcher *m, int32_t s, unsigned char c)
{
    if (!m->st[s].next) {
        if (m->n_tables >= GM_MAX_TABLES)
            return -3; /* the caller drops caches and retries */
        int32_t *t = malloc(256 * sizeof(*t));
        if (!t)
            return -4;
        for (int i = 0; i < 256; i++)
            t[i] = GM_UNKNOWN;
        m->st[s].next = t;
        m->n_tables++;
    }
    closure_begin(m);
    const struct gm_state *st = &m->st[s];
    for (uint32_t i = 0; i < st->set_n; i++) {
        const struct gm_node *n = &m->nodes[m->pool[st->set_off + i]];
        if (gram_set_has(m->g, m->g->elems[n->pos].arg, c) && push_work(m, n->pos + 1, n->parent))
            return -4;
    }
    bool accept;
    if (closure_run(m, &accept) != 0)
        return -4;
    int32_t t = GM_DEAD;
    if (m->n_res || accept) {
        t = state_intern(m, accept);
        if (t < 0)
            return -4;
    }
    m->st[s].next[c] = t;
    return t;
}

static inline int32_t step(struct gram_matcher *m, int32_t s, unsigned char c)
{
    const int32_t *t = m->st[s].next;
    if (t && t[c] != GM_UNKNOWN)
        return t[c];
    int32_t r = step_slow(m, s, c);
    if (r == -3) {
        drop_caches(m);
        r = step_slow(m, s, c);
    }
    return r;
}

void gram_matcher_free(struct gram_matcher *m)
{
    if (!m)
        return;
    drop_caches(m);
    gram_unref(m->g);
    free(m->nodes);
    free(m->node_hash);
    free(m->st);
    free(m->pool);
    free(m->st_hash);
    free(m->work);
    free(m->seen_key);
    free(m->seen_gen);
    free(m->res);
    free(m->walk);
    free(m->empty_mask);
    free(m);
}

struct gram_matcher *gram_matcher_new(struct gram *g, const struct gram_vocab *v)
{
    struct gram_matcher *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->g = gram_ref(g);
    m->v = v;
    m->walk = malloc(((size_t)v->max_depth + 1) * sizeof(*m->walk));
    m->empty_mask = calloc(((size_t)v->n_vocab + 31) / 32, sizeof(uint32_t));
    if (!m->walk || !m->empty_mask)
        goto fail;
    closure_begin(m);
    for (uint32_t a = g->rule_alt[g->root]; a < g->rule_alt[g->root + 1]; a++)
        if (push_work(m, g->alt_start[a], -1) != 0)
            goto fail;
    bool accept;
    if (closure_run(m, &accept) != 0 || (m->cur = state_intern(m, accept)) < 0)
        goto fail;
    return m;
fail:
    gram_matcher_free(m);
    return NULL;
}

static uint32_t *compute_mask(struct gram_matcher *m, int32_t s)
{
    const struct gram_vocab *v = m->v;
    size_t words = ((size_t)v->n_vocab + 31) / 32;
    if (m->n_masks >= GM_MAX_MASKS)
        drop_caches(m);
    uint32_t *mask = calloc(words, sizeof(uint32_t));
    if (!mask)
        return NULL;
    if (m->st[s].accept)
        memcpy(mask, v->end_bits, words * sizeof(uint32_t));
    int32_t *w = m->walk;
    w[0] = s;
    uint32_t i = 0;
    while (i < v->n_nodes) {
        int32_t t = step(m, w[v->depth[i] - 1], v->byte[i]);
        if (t < GM_DEAD) {
            free(mask);
            return NULL;
        }
        if (t == GM_DEAD) {
            i = v->skip[i];
            continue;
        }
        w[v->depth[i]] = t;
        for (uint32_t k = v->tok_lo[i]; k < v->tok_hi[i]; k++) {
            uint32_t id = v->sorted[k];
            mask[id / 32] |= 1u << (id % 32);
        }
        i++;
    }
    /* the walk may have dropped the caches: the state itself is never dropped */
    free(m->st[s].mask);
    m->st[s].mask = mask;
    m->n_masks++;
    return mask;
}

const uint32_t *gram_matcher_mask(struct gram_matcher *m)
{
    if (m->finished)
        return m->empty_mask;
    if (m->st[m->cur].mask)
        return m->st[m->cur].mask;
    return compute_mask(m, m->cur);
}

/* The state after `len` bytes from s, GM_DEAD, or < GM_DEAD on failure. */
static int32_t walk_bytes(struct gram_matcher *m, int32_t s, const char *bytes, size_t len)
{
    for (size_t i = 0; i < len && s >= 0; i++)
        s = step(m, s, (unsigned char)bytes[i]);
    return s;
}

static bool is_end(const struct gram_vocab *v, int32_t id)
{
    return (v->end_bits[id / 32] >> (id % 32)) & 1;
}

bool gram_matcher_allows(struct gram_matcher *m, int32_t id)
{
    const struct gram_vocab *v = m->v;
    if (m->finished || id < 0 || (uint32_t)id >= v->n_vocab)
        return false;
    if (is_end(v, id))
        return m->st[m->cur].accept;
    size_t len = v->off[id + 1] - v->off[id];
    return len > 0 && v->kind[id] == GRAM_TOK_TEXT && walk_bytes(m, m->cur, v->blob + v->off[id], len) >= 0;
}

int gram_matcher_accept(struct gram_matcher *m, int32_t id)
{
    const struct gram_vocab *v = m->v;
    if (m->finished || id < 0 || (uint32_t)id >= v->n_vocab)
        return GRAM_EINVAL;
    if (is_end(v, id)) {
        if (!m->st[m->cur].accept)
            return GRAM_EINVAL;
        m->finished = true;
        return 0;
    }
    size_t len = v->off[id + 1] - v->off[id];
    if (len == 0 || v->kind[id] != GRAM_TOK_TEXT)
        return GRAM_EINVAL;
    int32_t t = walk_bytes(m, m->cur, v->blob + v->off[id], len);
    if (t < GM_DEAD)
        return GRAM_ELIMIT;
    if (t == GM_DEAD)
        return GRAM_EINVAL;
    m->cur = t;
    return 0;
}

int gram_matcher_feed(struct gram_matcher *m, const char *bytes, size_t len)
{
    if (m->finished)
        return len ? GRAM_EINVAL : 0;
    int32_t t = walk_bytes(m, m->cur, bytes, len);
    if (t < GM_DEAD)
        return GRAM_ELIMIT;
    if (t == GM_DEAD)
        return GRAM_EINVAL;
    m->cur = t;
    return 0;
}

bool gram_matcher_accepting(const struct gram_matcher *m)
{
    return !m->finished && m->st[m->cur].accept;
}

bool gram_matcher_done(const struct gram_matcher *m)
{
    return m->finished || (m->st[m->cur].accept && m->st[m->cur].set_n == 0);
}
