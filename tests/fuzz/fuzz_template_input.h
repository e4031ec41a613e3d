/* fuzz_template_input.h - how fuzz_template reads its input, shared with the
 * regression test that replays tests/regress/template/ (test_template_regress).
 *
 * Input: template bytes, then optionally a NUL and messages as NUL-separated
 * role, content pairs (at most FT_MAX_MESSAGES). add_generation_prompt is the parity
 * of the input length. Limits are lowered so one input stays well under a second
 * and 128 MB; hitting one is a clean error, which is fine. */
#ifndef CHATD_FUZZ_TEMPLATE_INPUT_H
#define CHATD_FUZZ_TEMPLATE_INPUT_H

#include "template.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FT_MAX_MESSAGES 16

/* Parses and renders one input; returns the render status (or TMPL_ESYNTAX). */
static inline int ft_run_one(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    if (!copy)
        return TMPL_ENOMEM;
    if (size)
        memcpy(copy, data, size);
    copy[size] = 0;
    size_t tlen = strnlen(copy, size);
    struct tmpl_message msgs[FT_MAX_MESSAGES];
    memset(msgs, 0, sizeof(msgs));
    size_t n = 0;
    size_t pos = tlen + 1;
    while (pos < size && n < FT_MAX_MESSAGES) {
        const char *role = copy + pos;
        pos += strlen(role) + 1;
        const char *content = pos <= size ? copy + pos : "";
        if (pos <= size)
            pos += strlen(content) + 1;
        msgs[n].role = role;
        msgs[n].content = content;
        msgs[n].reasoning_content = n % 3 == 2 ? content : NULL;
        n++;
    }
    char err[256];
    int rc = TMPL_ESYNTAX;
    struct tmpl *t = tmpl_new(copy, tlen, err, sizeof(err));
    if (t) {
        struct tmpl_params p = tmpl_default_params();
        p.messages = msgs;
        p.n_messages = n;
        p.add_generation_prompt = size & 1;
        p.bos_token = "<s>";
        p.eos_token = "</s>";
        p.now_unix = 1795824000;
        p.max_output_bytes = 1 << 20;
        p.max_memory_bytes = 32 << 20;
        p.max_steps = 2000000;
        p.max_loop_iterations = 100000;
        char *out = NULL;
        size_t out_len = 0;
        rc = tmpl_render(t, &p, &out, &out_len, err, sizeof(err));
        if (rc == 0 && (!out || out[out_len] != 0))
            abort(); /* success must give a NUL-terminated string */
        free(out);
        tmpl_free(t);
    }
    free(copy);
    return rc;
}

/* Renders on a thread with the stack of the server's request threads (256 KiB,
 * server/http/http.c), so that a template which exhausts that stack is found here and
 * not in production, where the main thread's 8 MiB would hide it. */
#define FT_STACK_BYTES ((size_t)256 << 10)

struct ft_job {
    const uint8_t *data;
    size_t size;
    int rc;
};

static inline void *ft_thread(void *arg)
{
    struct ft_job *j = arg;
    j->rc = ft_run_one(j->data, j->size);
    return NULL;
}

static inline int ft_run_on_request_stack(const uint8_t *data, size_t size)
{
    struct ft_job j = {data, size, TMPL_ENOMEM};
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, FT_STACK_BYTES);
    int ok = pthread_create(&t, &attr, ft_thread, &j) == 0;
    pthread_attr_destroy(&attr);
    if (ok)
        pthread_join(t, NULL);
    return j.rc;
}

#endif
