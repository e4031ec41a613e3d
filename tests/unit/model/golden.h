/* golden.h - checks a backend against the reference implementation's golden logits
 * (tests/fixtures/golden, rules in tests/fixtures/README.md), for any struct bk_ops.
 *
 * golden_check_model() opens one fixture model, and for each prompt 0..4: prefills the
 * golden prompt ids as one batch with logits at every position, then feeds the golden
 * greedy tokens one per forward (teacher forcing, rule 1). It counts violations of
 * rule 2 (prompt ids, when a tokenize hook is given), 3 (every golden top-10 logit and
 * all last-position logits within tol), 4 (argmax where the golden margin > 2 tol),
 * 5 (top-10 set where 10th - 11th > 2 tol) and 6 (greedy continuation up to the first
 * step with margin <= 2 tol; while our argmax equals the golden token the teacher-
 * forced run is the free-running run, so no second pass is needed). golden_check() is
 * one model's test: its ASSERTs (test.h) fail the current test on any violation.
 * Header-only (static functions) so the Vulkan tests can include it too.
 */
#ifndef CHATD_TEST_GOLDEN_H
#define CHATD_TEST_GOLDEN_H

#include "backend.h"
#include "gguf.h"
#include "loader.h"
#include "test.h"
#include "tokenizer.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Optional: tokenizes text as the model would (BOS per the model's add_bos); returns the
 * count or a negative value. */
typedef int (*golden_tokenize_fn)(const struct gguf_file *f, const char *text, int32_t *ids,
                                  int max_ids);

struct golden_stats {
    int violations;
    int positions;      /* positions checked (prompt + greedy steps) */
    double max_last;    /* max |diff| over last_logits */
    double max_top;     /* max |diff| over golden top-10 entries */
    int argmax_checked; /* positions where rule 4 applied */
    int set_checked;    /* positions where rule 5 applied */
    int greedy_matched; /* greedy steps compared under rule 6 */
};

static int golden_report_limit = 8;

/* Rule 2's tokenizer: the prompt ids as the model's own tokenizer makes them (BOS as the
 * model adds it, special-token text not parsed). */
static inline int golden_tokenize(const struct gguf_file *f, const char *text, int32_t *ids,
                                  int max_ids)
{
    struct tok_vocab *v = NULL;
    char err[256];
    if (tok_load(&v, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "  tok_load: %s\n", err);
        return -1;
    }
    int32_t *out = NULL;
    size_t n = 0;
    int rc = tok_encode(v, text, strlen(text), tok_add_bos(v), false, &out, &n);
    if (rc == 0 && n <= (size_t)max_ids)
        memcpy(ids, out, n * sizeof(int32_t));
    free(out);
    tok_free(v);
    return rc == 0 && n <= (size_t)max_ids ? (int)n : -1;
}

#define GOLDEN_VIOL(st, ...)                                                                       \
    do {                                                                                           \
        if ((st)->violations++ < golden_report_limit) {                                            \
            fprintf(stderr, "  golden: ");                                                         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

static int golden_argmax(const float *l, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return (int)best;
}

/* Our top-10 ids (highest first, ties to lower id) into ids[10]. */
static void golden_top10(const float *l, uint32_t n, int *ids)
{
    int k = 0;
    for (uint32_t i = 0; i < n; i++) {
        int j = k < 10 ? k++ : 10;
        if (j == 10) {
            if (!(l[i] > l[ids[9]]))
                continue;
            j = 9;
        }
        while (j > 0 && l[i] > l[ids[j - 1]]) {
            if (j < 10)
                ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = (int)i;
    }
}

/* Rules 3-5 at one position: golden top10 array of [id, logit] and the 11th logit. */
static void golden_check_pos(struct golden_stats *st, const float *l, uint32_t n_vocab,
                             json_t *top10, double logit11, double tol, const char *where)
{
    size_t nt = json_array_size(top10);
    st->positions++;
    for (size_t i = 0; i < nt; i++) {
        json_t *e = json_array_get(top10, i);
        int id = (int)json_integer_value(json_array_get(e, 0));
        double g = json_number_value(json_array_get(e, 1));
        if (id < 0 || (uint32_t)id >= n_vocab) {
            GOLDEN_VIOL(st, "%s: golden id %d out of range", where, id);
            continue;
        }
        double d = fabs((double)l[id] - g);
        if (d > st->max_top)
            st->max_top = d;
        if (!(d <= tol))
            GOLDEN_VIOL(st, "%s: logit[%d] = %.6f, golden %.6f (tol %g)", where, id, (double)l[id],
                        g, tol);
    }
    if (nt < 10)
        return;
    double g1 = json_number_value(json_array_get(json_array_get(top10, 0), 1));
    double g2 = json_number_value(json_array_get(json_array_get(top10, 1), 1));
    double g10 = json_number_value(json_array_get(json_array_get(top10, 9), 1));
    int gid = (int)json_integer_value(json_array_get(json_array_get(top10, 0), 0));
    if (g1 - g2 > 2 * tol) {
        st->argmax_checked++;
        int a = golden_argmax(l, n_vocab);
        if (a != gid)
            GOLDEN_VIOL(st, "%s: argmax %d, golden %d (margin %.4f)", where, a, gid, g1 - g2);
    }
    if (g10 - logit11 > 2 * tol) {
        st->set_checked++;
        int ids[10];
        golden_top10(l, n_vocab, ids);
        for (int i = 0; i < 10; i++) {
            int found = 0;
            for (size_t j = 0; j < 10; j++)
                if ((int)json_integer_value(json_array_get(json_array_get(top10, j), 0)) == ids[i])
                    found = 1;
            if (!found) {
                GOLDEN_VIOL(st, "%s: our top-10 id %d not in golden top-10", where, ids[i]);
                break;
            }
        }
    }
}

static int golden_forward(const struct bk_ops *ops, struct bk_backend *bk, const int32_t *toks,
                          int n, int pos0, bool all_logits, float *logits)
{
    int32_t *pos = malloc((size_t)n * sizeof(int32_t));
    int32_t *slot = calloc((size_t)n, sizeof(int32_t));
    bool *want = malloc((size_t)n * sizeof(bool));
    int rc = -1;
    if (pos && slot && want) {
        for (int i = 0; i < n; i++) {
            pos[i] = pos0 + i;
            want[i] = all_logits || i == n - 1;
        }
        struct bk_batch b = {(uint32_t)n, toks, pos, slot, want};
        rc = ops->forward(bk, &b, logits);
    }
    free(pos);
    free(slot);
    free(want);
    return rc;
}

/* One prompt file. Returns 0 when it could be run (violations are counted in st). */
static int golden_check_prompt(const struct bk_ops *ops, struct bk_backend *bk,
                               const struct gguf_file *f, uint32_t n_vocab, const char *model,
                               int idx, double tol, golden_tokenize_fn tokenize,
                               struct golden_stats *st)
{
    char rel[256];
    char where[96];
    snprintf(rel, sizeof(rel), "golden/%s.%d.json", model, idx);
    json_error_t jerr;
    json_t *g = json_load_file(test_fixture(rel), 0, &jerr);
    if (!g) {
        fprintf(stderr, "  golden: cannot read %s: %s\n", rel, jerr.text);
        return -1;
    }
    json_t *jt = json_object_get(g, "prompt_tokens");
    int n = (int)json_array_size(jt);
    int32_t *toks = calloc((size_t)n + 16, sizeof(int32_t));
    float *logits = malloc(((size_t)n + 1) * n_vocab * sizeof(float));
    int rc = -1;
    if (!toks || !logits || n == 0)
        goto out;
    for (int i = 0; i < n; i++)
        toks[i] = (int32_t)json_integer_value(json_array_get(jt, (size_t)i));
    if (tokenize) { /* rule 2 */
        int32_t ids[1024];
        int m = tokenize(f, json_string_value(json_object_get(g, "prompt")), ids, 1024);
        int same = m == n;
        for (int i = 0; same && i < n; i++)
            same = ids[i] == toks[i];
        if (!same)
            GOLDEN_VIOL(st, "%s.%d: prompt ids differ (%d vs %d tokens)", model, idx, m, n);
    }
    ops->kv_truncate(bk, 0, 0);
    if (golden_forward(ops, bk, toks, n, 0, true, logits) != 0) {
        fprintf(stderr, "  golden: forward failed\n");
        goto out;
    }
    json_t *pt = json_object_get(g, "prompt_top10");
    json_t *p11 = json_object_get(g, "prompt_logit11");
    for (int p = 0; p < n; p++) {
        snprintf(where, sizeof(where), "%s.%d pos %d", model, idx, p);
        golden_check_pos(st, logits + (size_t)p * n_vocab, n_vocab, json_array_get(pt, (size_t)p),
                         json_number_value(json_array_get(p11, (size_t)p)), tol, where);
    }
    json_t *last = json_object_get(g, "last_logits");
    const float *ll = logits + (size_t)(n - 1) * n_vocab;
    if (json_array_size(last) != n_vocab)
        GOLDEN_VIOL(st, "%s.%d: last_logits has %zu values, n_vocab %u", model, idx,
                    json_array_size(last), n_vocab);
    for (uint32_t i = 0; i < n_vocab && i < json_array_size(last); i++) {
        double d = fabs((double)ll[i] - json_number_value(json_array_get(last, i)));
        if (d > st->max_last)
            st->max_last = d;
        if (!(d <= tol))
            GOLDEN_VIOL(st, "%s.%d: last logit[%u] = %.6f, golden %.6f", model, idx, i,
                        (double)ll[i], json_number_value(json_array_get(last, i)));
    }
    /* greedy steps: step 0 is the last prompt position */
    json_t *greedy = json_object_get(g, "greedy");
    size_t ns = json_array_size(greedy);
    int free_running = 1;
    float *cur = logits + (size_t)(n - 1) * n_vocab;
    for (size_t s = 0; s < ns; s++) {
        json_t *step = json_array_get(greedy, s);
        int gtok = (int)json_integer_value(json_object_get(step, "token"));
        double margin = json_number_value(json_object_get(step, "margin"));
        if (s > 0) {
            int32_t prev = (int32_t)json_integer_value(
                json_object_get(json_array_get(greedy, s - 1), "token"));
            if (golden_forward(ops, bk, &prev, 1, n + (int)s - 1, true,
                               logits + (size_t)n * n_vocab)) {
                fprintf(stderr, "  golden: decode forward failed\n");
                goto out;
            }
            cur = logits + (size_t)n * n_vocab;
        }
        snprintf(where, sizeof(where), "%s.%d greedy step %zu", model, idx, s);
        golden_check_pos(st, cur, n_vocab, json_object_get(step, "top10"),
                         json_number_value(json_object_get(step, "logit11")), tol, where);
        if (free_running) { /* rule 6 */
            if (!(margin > 2 * tol)) {
                free_running = 0;
            } else {
                st->greedy_matched++;
                if (golden_argmax(cur, n_vocab) != gtok) {
                    GOLDEN_VIOL(st, "%s: greedy token %d, golden %d", where,
                                golden_argmax(cur, n_vocab), gtok);
                    free_running = 0;
                }
            }
        }
    }
    rc = 0;
out:
    free(toks);
    free(logits);
    json_decref(g);
    return rc;
}

/* Checks one fixture model (file name without .gguf) on `ops` for prompts 0..4.
 * Returns the number of violations (plus 1000 when a prompt could not be run). */
static int golden_check_model(const struct bk_ops *ops, const char *model, double tol,
                              uint32_t n_threads, golden_tokenize_fn tokenize,
                              struct golden_stats *st)
{
    char rel[256];
    char err[256];
    struct gguf_file *f = NULL;
    struct mdl_weights w;
    struct bk_backend *bk = NULL;
    memset(st, 0, sizeof(*st));
    snprintf(rel, sizeof(rel), "models/%s.gguf", model);
    if (gguf_open(&f, test_fixture(rel), err, sizeof(err)) != 0) {
        fprintf(stderr, "  golden: %s: %s\n", rel, err);
        return 1000;
    }
    if (mdl_load_weights(&w, f, err, sizeof(err)) != 0) {
        fprintf(stderr, "  golden: %s: %s\n", rel, err);
        gguf_close(f);
        return 1000;
    }
    struct bk_params bp = {1, 512, n_threads, -1};
    int bad = 0;
    if (ops->init(&bk, &w, &bp, err, sizeof(err)) != 0) {
        fprintf(stderr, "  golden: %s init: %s\n", ops->name, err);
        bad = 1000;
    }
    for (int i = 0; !bad && i < 5; i++)
        if (golden_check_prompt(ops, bk, f, w.hp.n_vocab, model, i, tol, tokenize, st) != 0)
            bad = 1000;
    fprintf(stderr,
            "  golden %s on %s: tol %g, %d positions, max |diff| last %.5f top10 %.5f, argmax "
            "checked %d, set checked %d, greedy matched %d, violations %d\n",
            model, ops->name, tol, st->positions, st->max_last, st->max_top, st->argmax_checked,
            st->set_checked, st->greedy_matched, st->violations);
    if (bk)
        ops->free(bk);
    mdl_weights_fini(&w);
    gguf_close(f);
    return bad + st->violations;
}

/* Whether fixture `model` loads; when the loader refuses one of its weight types (a type
 * not supported yet), writes the loader's message into why and returns false. Any other
 * failure returns true, so that the test runs and fails with it. */
static inline bool golden_types_supported(const char *model, char *why, size_t why_len)
{
    char rel[256];
    struct gguf_file *f = NULL;
    struct mdl_weights w;
    snprintf(rel, sizeof(rel), "models/%s.gguf", model);
    if (gguf_open(&f, test_fixture(rel), why, why_len) != 0)
        return true;
    int rc = mdl_load_weights(&w, f, why, why_len);
    gguf_close(f);
    if (rc == 0)
        mdl_weights_fini(&w);
    return !(rc == MDL_EUNSUPPORTED && strstr(why, " has type "));
}

/* The test of one fixture model on `ops`: no violation, over the prompt and greedy
 * positions of all 5 prompts. */
static void golden_check(const struct bk_ops *ops, const char *model, double tol,
                         uint32_t n_threads, golden_tokenize_fn tokenize)
{
    struct golden_stats st;
    int v = golden_check_model(ops, model, tol, n_threads, tokenize, &st);
    ASSERT_INT_EQ(v, 0);
    ASSERT_TRUE(st.positions > 350); /* prompt + greedy positions of 5 prompts */
}

#endif
