/* engine.c - continuous batching over a backend (see runtime.h for the contract).
 *
 * Invariants: a slot's `toks` are exactly the tokens whose K/V the backend holds for that
 * slot; a slot with a job belongs to that job's user; a job is in at most one of the
 * queue or a slot. All slot and queue state is guarded by e->mu; the forward pass runs
 * without the lock so submitters never wait for a step. */
#include "runtime_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- jobs ---- */

struct eng_job *eng_job_new(void)
{
    struct eng_job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    atomic_init(&j->refs, 1);
    j->slot = -1;
    return j;
}

void eng_job_release(struct eng_job *j)
{
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    eng_sampler_free(j->smp);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->prompt);
    free(j->out);
    free(j);
}

uint32_t eng_wait(struct eng_job *j, uint32_t have, int timeout_ms, bool *finished)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (j->n_out <= have && j->finish == ENG_RUNNING)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &dl) == ETIMEDOUT)
            break;
    uint32_t n = j->n_out;
    *finished = j->finish != ENG_RUNNING;
    pthread_mutex_unlock(&j->mu);
    return n;
}

static void job_finish(struct eng_job *j, enum eng_finish why, const char *error)
{
    pthread_mutex_lock(&j->mu);
    if (j->finish == ENG_RUNNING) {
        j->finish = why;
        j->t_done_ms = now_ms();
        if (error)
            snprintf(j->error, sizeof(j->error), "%s", error);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

static int job_push(struct eng_job *j, const struct eng_token *t)
{
    pthread_mutex_lock(&j->mu);
    if (j->n_out == j->cap_out) {
        uint32_t cap = j->cap_out ? j->cap_out * 2 : 64;
        struct eng_token *o = realloc(j->out, cap * sizeof(*o));
        if (!o) {
            pthread_mutex_unlock(&j->mu);
            return -1;
        }
        j->out = o;
        j->cap_out = cap;
    }
    j->out[j->n_out++] = *t;
    if (j->n_out == 1)
        j->t_first_ms = now_ms();
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    return 0;
}

/* ---- slots ---- */

static uint32_t common_prefix(const int32_t *a, uint32_t na, const int32_t *b, uint32_t nb)
{
    uint32_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Picks the idle slot for a job: the same user's slot with the longest common prefix
 * (the same cache key wins ties), else the least recently used idle slot. -1 if none. */
static int pick_slot(struct engine *e, const struct eng_job *j, uint32_t *reuse)
{
    int best = -1, lru = -1;
    uint32_t best_len = 0;
    bool best_key = false;
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->job)
            continue;
        if (lru < 0 || s->last_used < e->slots[lru].last_used)
            lru = (int)i;
        if (s->user_id != j->user_id || s->n == 0)
            continue;
        uint32_t len = common_prefix(s->toks, s->n, j->prompt, j->n_prompt);
        bool key = j->cache_key[0] && strcmp(s->key, j->cache_key) == 0;
        if (len > best_len || (len == best_len && len > 0 && key && !best_key)) {
            best = (int)i;
            best_len = len;
            best_key = key;
        }
    }
    if (best < 0) {
        *reuse = 0;
        return lru;
    }
    /* At least one prompt token must run to produce the first logits. */
    *reuse = best_len < j->n_prompt ? best_len : j->n_prompt - 1;
    return best;
}

static void slot_release(struct engine *e, struct slot *s)
{
    s->job = NULL;
    s->pending = -1;
    s->last_used = ++e->clock;
}

/* Takes the first job off the queue; the tail goes with it when it was the last. */
static void dequeue_head(struct engine *e)
{
    e->queue_head = e->queue_head->next;
    if (!e->queue_head)
        e->queue_tail = NULL;
    e->n_queued--;
}

/* Moves queued jobs into idle slots, oldest first. Called with e->mu held. */
static void admit(struct engine *e)
{
    while (e->queue_head) {
        struct eng_job *j = e->queue_head;
        if (atomic_load(&j->cancel)) {
            dequeue_head(e);
            job_finish(j, ENG_FINISH_CANCELLED, NULL);
            eng_job_release(j);
            continue;
        }
        uint32_t reuse;
        int si = pick_slot(e, j, &reuse);
        if (si < 0)
            break;
        dequeue_head(e);
        struct slot *s = &e->slots[si];
        if (s->user_id != j->user_id || e->p.no_reuse)
            reuse = 0; /* never reuse another user's cache */
        e->ops->kv_truncate(e->bk, (uint32_t)si, reuse);
        spec_trim(e, (uint32_t)si, reuse);
        s->n = reuse;
        s->user_id = j->user_id;
        snprintf(s->key, sizeof(s->key), "%s", j->cache_key);
        s->job = j;
        s->pending = -1;
        j->slot = si;
        j->n_cached = reuse;
        j->n_prefilled = reuse;
        j->t_admitted_ms = now_ms();
    }
}

/* ---- the step ---- */

static void hist_add(struct eng_stats *st, uint32_t n)
{
    int b = n <= 1 ? 0 : n <= 4 ? 1 : n <= 16 ? 2 : n <= 64 ? 3 : n <= 256 ? 4 : 5;
    st->batch_hist[b]++;
}

static void step_time_add(struct eng_stats *st, double ms)
{
    static const double bound[] = ENG_STEP_BOUNDS_MS;
    int k = 0;
    while (k < ENG_STEP_BUCKETS - 1 && ms > bound[k])
        k++;
    st->step_hist[k]++;
    st->step_ms_sum += ms;
}

/* Builds the batch under the lock: decode tokens first, then prompt chunks. */
static uint32_t build_batch(struct engine *e, struct step_entry *ent, uint32_t *n_ent)
{
    uint32_t n = 0;
    *n_ent = 0;
    for (uint32_t i = 0; i < e->p.n_slots && n < e->p.n_batch; i++) {
        struct slot *s = &e->slots[i];
        if (!s->job || s->pending < 0)
            continue;
        /* the pending token, then its drafts: every one of them gets logits */
        uint32_t nd = s->n_draft < e->p.n_batch - n - 1 ? s->n_draft : e->p.n_batch - n - 1;
        ent[*n_ent] = (struct step_entry){(int)i, n, 1 + nd, 1 + nd, nd};
        for (uint32_t k = 0; k <= nd; k++) {
            e->b_tok[n + k] = k ? s->draft[k - 1] : s->pending;
            e->b_pos[n + k] = (int32_t)(s->n + k);
            e->b_slot[n + k] = (int32_t)i;
            e->b_want[n + k] = true;
        }
        n += 1 + nd;
        (*n_ent)++;
    }
    /* Prefill oldest job first so a long prompt cannot starve earlier ones. While
     * sequences decode, their next token waits for this step, so each prompt gives it at
     * most prefill_chunk tokens: a long prompt is spread over several steps instead of
     * stalling every stream for one long one (short prompts arriving together still
     * share a step). */
    uint32_t chunk = *n_ent > 0 && e->p.prefill_chunk > 0 ? e->p.prefill_chunk : e->p.n_batch;
    for (;;) {
        int pick = -1;
        for (uint32_t i = 0; i < e->p.n_slots; i++) {
            struct slot *s = &e->slots[i];
            if (!s->job || s->pending >= 0 || s->job->n_prefilled >= s->job->n_prompt)
                continue;
            bool queued = false;
            for (uint32_t k = 0; k < *n_ent; k++)
                queued |= ent[k].slot == (int)i;
            if (!queued && (pick < 0 || s->job->seq < e->slots[pick].job->seq))
                pick = (int)i;
        }
        if (pick < 0 || n >= e->p.n_batch)
            break;
        struct slot *s = &e->slots[pick];
        struct eng_job *j = s->job;
        uint32_t left = j->n_prompt - j->n_prefilled;
        uint32_t take = left < e->p.n_batch - n ? left : e->p.n_batch - n;
        take = take < chunk ? take : chunk;
        ent[*n_ent] = (struct step_entry){pick, n, take, take == left, 0};
        for (uint32_t k = 0; k < take; k++) {
            e->b_tok[n + k] = j->prompt[j->n_prefilled + k];
            e->b_pos[n + k] = (int32_t)(s->n + k);
            e->b_slot[n + k] = pick;
            e->b_want[n + k] = take == left && k == take - 1;
        }
        n += take;
        (*n_ent)++;
    }
    return n;
}

/* After a forward, without the engine lock: each sequence that got logits picks its
 * next token (sampling may cost a pass over the vocabulary, and neither submitters nor
 * /metrics should wait for it). A sequence that fed drafts verifies them in order: each
 * kept draft is an output, the first one refused is replaced by the token drawn there,
 * and when all are kept the last row gives one more. Only the engine thread touches a
 * job's sampler. */
static void sample_all(struct engine *e, const struct step_entry *ent, uint32_t n_ent)
{
    uint32_t li = 0;
    for (uint32_t k = 0; k < n_ent; k++) {
        const struct step_entry *en = &ent[k];
        struct slot *s = &e->slots[en->slot];
        struct eng_job *j = s->job;
        struct eng_token *out = e->picked + (size_t)k * (1 + ENG_MAX_DRAFT);
        e->n_picked[k] = e->n_accepted[k] = 0;
        e->picked_rc[k] = 0;
        for (uint32_t r = 0; r < en->n_logits; r++) {
            float *logits = e->logits + (size_t)(li + r) * e->n_vocab;
            bool acc = false;
            out[r] = (struct eng_token){0};
            int rc = r < en->n_draft
                         ? eng_sampler_next_draft(j->smp, logits, e->n_vocab, s->draft[r], &acc, &out[r])
                         : eng_sampler_next(j->smp, logits, e->n_vocab, &out[r]);
            if (rc != 0) {
                e->picked_rc[k] = rc;
                break;
            }
            e->n_picked[k]++;
            bool eog = !j->ignore_eos && e->p.is_eog && e->p.is_eog(e->p.eog_ctx, out[r].id);
            if (!acc || eog) /* the rows after a refused draft (or an end) do not count */
                break;
            e->n_accepted[k]++;
        }
        li += en->n_logits;
    }
}

/* Hands the entry's tokens to its job in order, until one ends it. */
static void deliver(struct engine *e, struct slot *s, const struct eng_token *out, uint32_t n)
{
    struct eng_job *j = s->job;
    for (uint32_t m = 0; m < n; m++) {
        if (job_push(j, &out[m]) != 0) {
            job_finish(j, ENG_FINISH_ERROR, "sampling failed");
            return;
        }
        e->stats.tokens_generated++;
        if (!j->ignore_eos && e->p.is_eog && e->p.is_eog(e->p.eog_ctx, out[m].id)) {
            job_finish(j, ENG_FINISH_EOG, NULL);
            return;
        }
        if (j->n_out >= j->max_tokens || s->n + 1 >= e->p.n_ctx) {
            job_finish(j, ENG_FINISH_LENGTH, NULL);
            return;
        }
    }
    s->pending = out[n - 1].id;
}

/* Then, under the lock: account the fed tokens (of a verified run, the pending token
 * and the drafts kept; the cache forgets the rest) and hand the tokens to the jobs. */
static void after_forward(struct engine *e, struct step_entry *ent, uint32_t n_ent)
{
    for (uint32_t k = 0; k < n_ent; k++) {
        const struct step_entry *en = &ent[k];
        struct slot *s = &e->slots[en->slot];
        struct eng_job *j = s->job;
        bool decoding = s->pending >= 0;
        uint32_t fed = decoding ? 1 + e->n_accepted[k] : en->count;
        for (uint32_t t = 0; t < fed; t++)
            s->toks[s->n++] = e->b_tok[en->first + t];
        if (fed < en->count) /* refused drafts: out of the cache */
            e->ops->kv_truncate(e->bk, (uint32_t)en->slot, s->n);
        if (en->n_draft) {
            spec_trim(e, (uint32_t)en->slot, s->n);
            e->stats.drafted += en->n_draft;
            e->stats.draft_accepted += e->n_accepted[k];
            pthread_mutex_lock(&j->mu); /* the consumer reads them under it */
            j->n_draft_accepted += e->n_accepted[k];
            j->n_draft_rejected += en->n_draft - e->n_accepted[k];
            pthread_mutex_unlock(&j->mu);
        }
        if (decoding) {
            s->pending = -1;
        } else {
            j->n_prefilled += en->count;
            e->stats.tokens_prefilled += en->count;
        }
        if (!en->n_logits)
            continue;
        if (e->picked_rc[k] != 0 || e->n_picked[k] == 0) {
            job_finish(j, ENG_FINISH_ERROR, "sampling failed");
            continue;
        }
        deliver(e, s, e->picked + (size_t)k * (1 + ENG_MAX_DRAFT), e->n_picked[k]);
    }
}

/* Frees the slots of finished or cancelled jobs. Called with e->mu held. */
static void reap(struct engine *e)
{
    for (uint32_t i = 0; i < e->p.n_slots; i++) {
        struct slot *s = &e->slots[i];
        struct eng_job *j = s->job;
        if (!j)
            continue;
        if (atomic_load(&j->cancel) || e->stop)
            job_finish(j, ENG_FINISH_CANCELLED, NULL);
        if (j->finish == ENG_RUNNING)
            continue;
        slot_release(e, s);
        eng_job_release(j);
    }
}

static void fail_batch(struct engine *e, struct step_entry *ent, uint32_t n_ent, const char *why)
{
    for (uint32_t k = 0; k < n_ent; k++) {
        struct slot *s = &e->slots[ent[k].slot];
        job_finish(s->job, ENG_FINISH_ERROR, why);
        e->ops->kv_truncate(e->bk, (uint32_t)ent[k].slot, 0);
        s->n = 0;
        spec_trim(e, (uint32_t)ent[k].slot, 0);
    }
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    struct step_entry *ent = calloc(e->p.n_slots, sizeof(*ent));
    bool *decoding = calloc(e->p.n_slots, sizeof(*decoding));
    pthread_mutex_lock(&e->mu);
    for (;;) {
        reap(e);
        admit(e);
        if (e->p.spec != ENG_SPEC_NONE) {
            /* drafts are made without the lock: only this thread changes the slots */
            for (uint32_t i = 0; i < e->p.n_slots; i++)
                decoding[i] = e->slots[i].job && e->slots[i].pending >= 0;
            pthread_mutex_unlock(&e->mu);
            spec_propose(e, decoding);
            pthread_mutex_lock(&e->mu);
        }
        uint32_t n_ent;
        uint32_t n = build_batch(e, ent, &n_ent);
        if (n == 0) {
            if (e->stop && !e->queue_head)
                break;
            /* a job queued while the drafts were made unlocked was not admitted yet (its
             * signal came while nobody waited): no slot is busy, so admit it now */
            if (!e->queue_head)
                pthread_cond_wait(&e->wake, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        double t0 = now_ms();
        struct bk_batch b = {n, e->b_tok, e->b_pos, e->b_slot, e->b_want};
        int rc = e->ops->forward(e->bk, &b, e->logits);
        if (rc == 0)
            sample_all(e, ent, n_ent);
        pthread_mutex_lock(&e->mu);
        e->stats.steps++;
        hist_add(&e->stats, n);
        if (rc != 0)
            fail_batch(e, ent, n_ent, "the backend failed");
        else
            after_forward(e, ent, n_ent);
        step_time_add(&e->stats, now_ms() - t0);
    }
    pthread_mutex_unlock(&e->mu);
    free(ent);
    free(decoding);
    return NULL;
}

/* ---- public ---- */

const char *eng_strerror(int code)
{
    switch (code) {
#define ENG_ERR_CASE_(name, c, text)                                                      \
    case c:                                                                               \
        return text;
        ENG_ERRORS(ENG_ERR_CASE_)
#undef ENG_ERR_CASE_
    default:
        return "unknown error";
    }
}

/* Frees the slots and batch buffers of eng_start, any of which may be missing (NULL
 * pointers, or slots whose token buffer was not allocated yet). */
static void free_buffers(struct engine *e)
{
    for (uint32_t i = 0; e->slots && i < e->p.n_slots; i++)
        free(e->slots[i].toks);
    free(e->slots);
    free(e->b_tok);
    free(e->b_pos);
    free(e->b_slot);
    free(e->b_want);
    free(e->logits);
    free(e->picked);
    free(e->n_picked);
    free(e->n_accepted);
    free(e->picked_rc);
    free(e->d_tok);
    free(e->d_pos);
    free(e->d_slot);
    free(e->d_want);
    free(e->d_logits);
}

struct engine *eng_start(const struct bk_ops *ops, struct bk_backend *bk, uint32_t n_vocab,
                         const struct eng_params *p, char *err, size_t err_len)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        goto oom;
    e->ops = ops;
    e->bk = bk;
    e->n_vocab = n_vocab;
    e->p = *p;
    if (e->p.n_batch < e->p.n_slots)
        e->p.n_batch = e->p.n_slots;
    e->slots = calloc(p->n_slots, sizeof(*e->slots));
    e->b_tok = calloc(e->p.n_batch, sizeof(int32_t));
    e->b_pos = calloc(e->p.n_batch, sizeof(int32_t));
    e->b_slot = calloc(e->p.n_batch, sizeof(int32_t));
    e->b_want = calloc(e->p.n_batch, sizeof(bool));
    /* at most one logits row per slot per step */
    if (e->p.spec == ENG_SPEC_NONE || e->p.n_draft == 0)
        e->p.spec = ENG_SPEC_NONE, e->p.n_draft = 0;
    if (e->p.n_draft > ENG_MAX_DRAFT)
        e->p.n_draft = ENG_MAX_DRAFT;
    if (e->p.spec == ENG_SPEC_DRAFT &&
        (!e->p.draft_ops || !e->p.draft_bk || e->p.n_slots > ENG_MAX_SLOTS_ON_STACK)) {
        snprintf(err, err_len, "speculative decoding with a draft model needs its backend and at most %d slots",
                 ENG_MAX_SLOTS_ON_STACK);
        free_buffers(e);
        free(e);
        return NULL;
    }
    /* a row of logits for every token a decoding sequence feeds */
    e->logits = malloc((size_t)p->n_slots * (1 + e->p.n_draft) * n_vocab * sizeof(float));
    e->picked = calloc((size_t)p->n_slots * (1 + ENG_MAX_DRAFT), sizeof(*e->picked));
    e->n_picked = calloc(p->n_slots, sizeof(*e->n_picked));
    e->n_accepted = calloc(p->n_slots, sizeof(*e->n_accepted));
    e->picked_rc = calloc(p->n_slots, sizeof(*e->picked_rc));
    if (!e->slots || !e->b_tok || !e->b_pos || !e->b_slot || !e->b_want || !e->logits ||
        !e->picked || !e->n_picked || !e->n_accepted || !e->picked_rc)
        goto oom;
    if (e->p.spec == ENG_SPEC_DRAFT) {
        e->d_tok = calloc(e->p.n_batch, sizeof(int32_t));
        e->d_pos = calloc(e->p.n_batch, sizeof(int32_t));
        e->d_slot = calloc(e->p.n_batch, sizeof(int32_t));
        e->d_want = calloc(e->p.n_batch, sizeof(bool));
        e->d_logits = malloc((size_t)p->n_slots * n_vocab * sizeof(float));
        if (!e->d_tok || !e->d_pos || !e->d_slot || !e->d_want || !e->d_logits)
            goto oom;
    }
    for (uint32_t i = 0; i < p->n_slots; i++) {
        e->slots[i].toks = malloc((size_t)p->n_ctx * sizeof(int32_t));
        e->slots[i].user_id = -1;
        e->slots[i].pending = -1;
        if (!e->slots[i].toks)
            goto oom;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        snprintf(err, err_len, "cannot start the engine thread");
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->wake);
        free_buffers(e);
        free(e);
        return NULL;
    }
    return e;
oom:
    snprintf(err, err_len, "out of memory allocating the engine");
    if (e) {
        free_buffers(e);
        free(e);
    }
    return NULL;
}

void eng_stop(struct engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    for (struct eng_job *j = e->queue_head; j; j = j->next)
        atomic_store(&j->cancel, true);
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    free_buffers(e);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->wake);
    free(e);
}

/* Whether the queue has room for one more job (counting held places). */
static bool room(const struct engine *e)
{
    uint32_t busy = 0;
    for (uint32_t i = 0; i < e->p.n_slots; i++)
        busy += e->slots[i].job != NULL;
    uint32_t waiting = e->n_queued + e->n_held;
    return !((busy == e->p.n_slots && waiting >= e->p.queue_depth) ||
             waiting >= e->p.queue_depth + e->p.n_slots);
}

int eng_hold_place(struct engine *e, uint32_t n_prompt)
{
    if (n_prompt == 0 || n_prompt >= e->p.n_ctx)
        return ENG_ETOOLONG;
    pthread_mutex_lock(&e->mu);
    int rc = e->stop ? ENG_ESTOPPED : room(e) ? 0 : ENG_EBUSY;
    if (rc == 0)
        e->n_held++;
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void eng_release_place(struct engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->n_held--;
    pthread_mutex_unlock(&e->mu);
}

/* Appends j to the queue (called with e->mu held). */
static void enqueue(struct engine *e, struct eng_job *j)
{
    atomic_fetch_add(&j->refs, 1);
    j->seq = ++e->seq;
    j->next = NULL;
    if (e->queue_tail)
        e->queue_tail->next = j;
    else
        e->queue_head = j;
    e->queue_tail = j;
    e->n_queued++;
    pthread_cond_signal(&e->wake);
}

int eng_submit_held(struct engine *e, struct eng_job *j)
{
    pthread_mutex_lock(&e->mu);
    e->n_held--;
    int rc = !j->smp ? ENG_EINVAL : e->stop ? ENG_ESTOPPED : 0;
    if (rc == 0)
        enqueue(e, j);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int eng_submit(struct engine *e, struct eng_job *j)
{
    if (!j->smp)
        return ENG_EINVAL;
    int rc = eng_hold_place(e, j->n_prompt);
    return rc ? rc : eng_submit_held(e, j);
}

void eng_get_stats(struct engine *e, struct eng_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    out->queued = e->n_queued;
    out->active = 0;
    for (uint32_t i = 0; i < e->p.n_slots; i++)
        out->active += e->slots[i].job != NULL;
    pthread_mutex_unlock(&e->mu);
}

uint32_t eng_n_ctx(const struct engine *e)
{
    return e->p.n_ctx;
}

uint32_t eng_peek_cached(struct engine *e, int64_t user_id, const char *cache_key,
                         const int32_t *prompt, uint32_t n_prompt)
{
    struct eng_job probe = {.prompt = (int32_t *)prompt, .n_prompt = n_prompt, .user_id = user_id};
    snprintf(probe.cache_key, sizeof(probe.cache_key), "%s", cache_key ? cache_key : "");
    uint32_t reuse = 0;
    pthread_mutex_lock(&e->mu);
    if (n_prompt > 0)
        pick_slot(e, &probe, &reuse);
    pthread_mutex_unlock(&e->mu);
    return reuse;
}

bool eng_is_resident(struct engine *e, int64_t user_id, const char *cache_key)
{
    bool found = false;
    pthread_mutex_lock(&e->mu);
    for (uint32_t i = 0; i < e->p.n_slots && !found; i++)
        found = e->slots[i].user_id == user_id && e->slots[i].n > 0 &&
                strcmp(e->slots[i].key, cache_key) == 0;
    pthread_mutex_unlock(&e->mu);
    return found;
}
