/* sampler.c - penalties, top-k / top-p / min-p truncation, temperature and a seeded
 * draw (see runtime.h).
 *
 * Candidates are (id, logit) pairs. Truncation works on them sorted by logit (highest
 * first, ties to the lower id) so results are stable. The cost of one draw is bounded
 * by the vocabulary, whatever the request's parameters: top-k selection is a heap of k
 * (O(n log k)); top-p, min-p and the draw itself walk the candidates in order but sort
 * only as far as they look (256 first, then eight times more each time), so a draw from
 * the whole vocabulary costs O(n log 256) when, as usual, its mass is near the top. Softmax sums in double. The
 * generator is xoshiro256** seeded through splitmix64.
 */
#include "runtime.h"
#include "rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    int32_t id;
    float logit;
};

struct sampler {
    struct sampler_params p;
    uint32_t n_vocab;
    struct cand *c; /* [n_vocab] */
    double *prob;   /* [n_vocab] */
    int32_t *hist;  /* ring of the last penalty_last_n tokens */
    uint32_t hist_cap;
    uint32_t hist_n;
    uint32_t hist_head;
    uint32_t *count; /* [n_vocab] occurrences in the ring */
    struct rng rng;
    uint64_t n_cmp; /* candidate comparisons of the last sampler_sample */
};

void sampler_default_params(struct sampler_params *p)
{
    memset(p, 0, sizeof(*p));
    p->temperature = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->penalty_last_n = 64;
}

static double rng_uniform(struct sampler *s) /* [0, 1) */
{
    return (double)(rng_next(&s->rng) >> 11) * 0x1.0p-53;
}

void sampler_reset(struct sampler *s)
{
    rng_init(&s->rng, s->p.seed);
    s->hist_n = 0;
    s->hist_head = 0;
    memset(s->count, 0, s->n_vocab * sizeof(*s->count));
}

struct sampler *sampler_new(const struct sampler_params *p, uint32_t n_vocab)
{
    if (n_vocab == 0)
        return NULL;
    struct sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->hist_cap = p->penalty_last_n > 0 ? (uint32_t)p->penalty_last_n : 0;
    s->c = malloc(n_vocab * sizeof(*s->c));
    s->prob = malloc(n_vocab * sizeof(*s->prob));
    s->count = calloc(n_vocab, sizeof(*s->count));
    s->hist = malloc((s->hist_cap ? s->hist_cap : 1) * sizeof(*s->hist));
    if (!s->c || !s->prob || !s->count || !s->hist) {
        sampler_free(s);
        return NULL;
    }
    sampler_reset(s);
    return s;
}

void sampler_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->prob);
    free(s->count);
    free(s->hist);
    free(s);
}

void sampler_accept(struct sampler *s, int32_t token)
{
    if (s->hist_cap == 0 || token < 0 || (uint32_t)token >= s->n_vocab)
        return;
    if (s->hist_n == s->hist_cap) {
        int32_t old = s->hist[s->hist_head];
        s->count[old]--;
    } else {
        s->hist_n++;
    }
    s->hist[s->hist_head] = token;
    s->count[token]++;
    s->hist_head = (s->hist_head + 1) % s->hist_cap;
}

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a;
    const struct cand *y = b;
    if (x->logit != y->logit)
        return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Whether a ranks before b (higher logit, ties to the lower id), counted. */
static bool better(struct sampler *s, const struct cand *a, const struct cand *b)
{
    s->n_cmp++;
    return cand_cmp(a, b) < 0;
}

static bool has_penalties(const struct sampler_params *p)
{
    return p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* Penalised logit of a candidate (llama.cpp's rule: divide positive logits by the
 * repetition penalty, multiply negative ones). */
static float penalised(const struct sampler *s, int32_t id, float l)
{
    uint32_t n = s->count[id];
    if (n == 0)
        return l;
    if (s->p.repeat_penalty != 1.0f)
        l = l > 0.0f ? l / s->p.repeat_penalty : l * s->p.repeat_penalty;
    return l - (float)n * s->p.frequency_penalty - s->p.presence_penalty;
}

/* Moves heap element i down to its place; h[0] is the worst of h[0..n). */
static void sift_down(struct sampler *s, struct cand *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < n && better(s, &h[worst], &h[l]))
            worst = l;
        if (r < n && better(s, &h[worst], &h[r]))
            worst = r;
        if (worst == i)
            return;
        struct cand t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

/* Moves the k best candidates of c[0..n) to the front, best first (c[k..n) holds the
 * others, in no order). A heap of the k
 * best so far (its worst on top) sees every candidate once: O(n log k) comparisons,
 * whatever k a request asks for; then the heap is sorted in place (O(k log k)). */
static uint32_t keep_top(struct sampler *s, struct cand *c, uint32_t n, uint32_t k)
{
    if (k > n)
        k = n;
    for (uint32_t i = k / 2; i-- > 0;)
        sift_down(s, c, k, i);
    for (uint32_t i = k; i < n; i++) {
        if (!better(s, &c[i], &c[0]))
            continue;
        struct cand t = c[0]; /* swapped, not overwritten: c stays a permutation */
        c[0] = c[i];
        c[i] = t;
        sift_down(s, c, k, 0);
    }
    for (uint32_t m = k; m > 1; m--) { /* heap sort: the worst goes to the end */
        struct cand t = c[0];
        c[0] = c[m - 1];
        c[m - 1] = t;
        sift_down(s, c, m - 1, 0);
    }
    return k;
}

/* softmax of c[0..n) (sorted, best first) at temperature t into s->prob. */
static void softmax(struct sampler *s, uint32_t n, float t)
{
    double sum = 0.0;
    double max = (double)s->c[0].logit / t;
    for (uint32_t i = 0; i < n; i++) {
        s->prob[i] = exp((double)s->c[i].logit / t - max);
        sum += s->prob[i];
    }
    for (uint32_t i = 0; i < n; i++)
        s->prob[i] /= sum;
}

uint64_t sampler_comparisons(const struct sampler *s)
{
    return s->n_cmp;
}

/* Makes c[0..want) the want best of c[0..n), sorted. The order is total (ties go to the
 * lower id), so a longer sorted prefix starts with the shorter one it replaces. */
static uint32_t sorted_prefix(struct sampler *s, uint32_t have, uint32_t want, uint32_t n)
{
    if (want > n)
        want = n;
    if (want <= have)
        return have;
    keep_top(s, s->c, n, want);
    return want;
}

#define FIRST_PREFIX 256u /* candidates sorted before looking further: most draws stop here */

/* How many of the best candidates top-p and min-p keep (at temperature 1, over all n):
 * the first index whose probability falls under min_p times the best one's, or just past
 * the one where the running sum reaches top_p. Sorts only as far as it must look.
 * *sorted: the sorted prefix length, in and out. */
static uint32_t truncate(struct sampler *s, uint32_t n, uint32_t *sorted)
{
    if (s->p.top_p >= 1.0f && s->p.min_p <= 0.0f)
        return n;
    *sorted = sorted_prefix(s, *sorted, FIRST_PREFIX, n);
    double max = s->c[0].logit, z = 0.0;
    for (uint32_t i = 0; i < n; i++)
        z += exp((double)s->c[i].logit - max);
    double min_ratio = s->p.min_p > 0.0f ? log((double)s->p.min_p) : -INFINITY;
    double cum = 0.0;
    for (uint32_t i = 0;; i++) {
        if (i == *sorted) {
            if (i == n)
                return n;
            *sorted = sorted_prefix(s, *sorted, *sorted * 8, n);
        }
        double d = (double)s->c[i].logit - max;
        if (i > 0 && d < min_ratio)
            return i;
        cum += exp(d) / z;
        if (cum >= s->p.top_p)
            return i + 1;
    }
}

/* The greedy choice: argmax of the penalised logits, ties to the lower id. */
static int32_t greedy(struct sampler *s, const float *logits, bool pen)
{
    int32_t best = 0;
    float bl = pen ? penalised(s, 0, logits[0]) : logits[0];
    for (uint32_t i = 1; i < s->n_vocab; i++) {
        float l = pen ? penalised(s, (int32_t)i, logits[i]) : logits[i];
        if (l > bl) {
            bl = l;
            best = (int32_t)i;
        }
    }
    return best;
}

/* The candidates of a draw at temperature > 0: penalised logits, top-k, then top-p and
 * min-p. Returns how many are kept (the first ones in sorted order); *sorted is the
 * sorted prefix length. */
static uint32_t prepare(struct sampler *s, const float *logits, uint32_t *sorted)
{
    bool pen = has_penalties(&s->p) && s->hist_n > 0;
    uint32_t n = s->n_vocab;
    for (uint32_t i = 0; i < n; i++) {
        s->c[i].id = (int32_t)i;
        s->c[i].logit = pen ? penalised(s, (int32_t)i, logits[i]) : logits[i];
    }
    *sorted = 0;
    if (s->p.top_k > 0 && (uint32_t)s->p.top_k < n)
        *sorted = n = keep_top(s, s->c, n, (uint32_t)s->p.top_k);
    n = truncate(s, n, sorted);
    *sorted = sorted_prefix(s, *sorted, 1, n); /* the best is known: the weights' scale */
    return n;
}

/* A candidate's weight at the temperature, relative to the best one's. */
static double weight(const struct sampler *s, uint32_t i)
{
    double t = s->p.temperature;
    return exp((double)s->c[i].logit / t - (double)s->c[0].logit / t);
}

/* Draws from the kept candidates c[0..n): walks them in order (sorting only as far as it
 * goes) until the running sum of weights passes u times their total; `skip` (an id, or
 * -1) is left out of both. */
static int32_t draw(struct sampler *s, uint32_t n, uint32_t *sorted, double u, int32_t skip)
{
    double z = 0.0;
    for (uint32_t i = 0; i < n; i++)
        z += s->c[i].id == skip ? 0.0 : weight(s, i);
    double target = u * z, cum = 0.0;
    int32_t last = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (i == *sorted)
            *sorted = sorted_prefix(s, *sorted, *sorted * 8 > FIRST_PREFIX ? *sorted * 8 : FIRST_PREFIX, n);
        if (s->c[i].id == skip)
            continue;
        last = s->c[i].id;
        cum += weight(s, i);
        if (target < cum)
            return last;
    }
    return last >= 0 ? last : s->c[0].id;
}

int32_t sampler_sample(struct sampler *s, const float *logits)
{
    s->n_cmp = 0;
    if (s->p.temperature <= 0.0f)
        return greedy(s, logits, has_penalties(&s->p) && s->hist_n > 0);
    uint32_t sorted;
    uint32_t n = prepare(s, logits, &sorted);
    double u = rng_uniform(s);
    if (n <= sorted) { /* the kept candidates are sorted: the draw walks them */
        softmax(s, n, s->p.temperature);
        double cum = 0.0;
        for (uint32_t i = 0; i < n; i++) {
            cum += s->prob[i];
            if (u < cum)
                return s->c[i].id;
        }
        return s->c[n - 1].id;
    }
    /* Nothing truncated: the draw walks the whole distribution in order, sorting only as
     * far as the draw goes (most of the mass is in the first few hundred candidates). */
    return draw(s, n, &sorted, u, -1);
}

int32_t sampler_sample_draft(struct sampler *s, const float *logits, int32_t draft, bool *accepted)
{
    s->n_cmp = 0;
    if (s->p.temperature <= 0.0f) {
        int32_t t = greedy(s, logits, has_penalties(&s->p) && s->hist_n > 0);
        *accepted = t == draft;
        return t;
    }
    uint32_t sorted;
    uint32_t n = prepare(s, logits, &sorted);
    /* the draft's probability among the kept candidates */
    double z = 0.0, p = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        double w = weight(s, i);
        z += w;
        if (s->c[i].id == draft)
            p = w;
    }
    *accepted = rng_uniform(s) < p / z;
    if (*accepted)
        return draft;
    /* rejected: a draw from the distribution without the draft (the residual of a
     * proposal that put all its mass on the draft) */
    return draw(s, n, &sorted, rng_uniform(s), draft);
}

static double log_sum_exp(const float *l, uint32_t n, float *max_out)
{
    float max = l[0];
    for (uint32_t i = 1; i < n; i++)
        max = l[i] > max ? l[i] : max;
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += exp((double)l[i] - max);
    *max_out = max;
    return log(sum);
}

float sampler_logprob(const float *logits, uint32_t n_vocab, int32_t id)
{
    float max;
    double lse = log_sum_exp(logits, n_vocab, &max);
    if (id < 0 || (uint32_t)id >= n_vocab)
        return -INFINITY;
    return (float)((double)logits[id] - max - lse);
}

int sampler_top_logprobs(const float *logits, uint32_t n_vocab, int k, int32_t *ids,
                         float *logprobs)
{
    if (k <= 0 || n_vocab == 0)
        return 0;
    if ((uint32_t)k > n_vocab)
        k = (int)n_vocab;
    float max;
    double lse = log_sum_exp(logits, n_vocab, &max);
    int m = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (m == k && !(l > logits[ids[k - 1]]))
            continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && l > logits[ids[j - 1]]) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = (int32_t)i;
    }
    for (int i = 0; i < m; i++)
        logprobs[i] = (float)((double)logits[ids[i]] - max - lse);
    return m;
}
