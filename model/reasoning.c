/* reasoning.c - the <think>...</think> splitter (see reasoning.h). Each call joins the
 * held-back bytes and the new piece, walks it once, and keeps at most a tag's length of
 * bytes that could still become a tag. */
#include "reasoning.h"

#include <stdlib.h>
#include <string.h>

static const char OPEN[] = "<think>";
static const char CLOSE[] = "</think>";

void rsn_init(struct rsn_splitter *s, bool start_in_reasoning)
{
    memset(s, 0, sizeof(*s));
    s->in_reasoning = start_in_reasoning;
    s->strip_ws = start_in_reasoning;
}

void rsn_fini(struct rsn_splitter *s)
{
    free(s->hold);
    free(s->r);
    free(s->c);
    memset(s, 0, sizeof(*s));
}

bool rsn_in_reasoning(const struct rsn_splitter *s)
{
    return s->in_reasoning;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Length of the longest suffix of buf[0,n) that is a proper prefix of tag. */
static size_t partial_tag(const char *buf, size_t n, const char *tag)
{
    size_t t = strlen(tag);
    for (size_t k = t - 1; k > 0; k--)
        if (k <= n && memcmp(buf + n - k, tag, k) == 0)
            return k;
    return 0;
}

static struct rsn_out run(struct rsn_splitter *s, const char *text, size_t len, bool final)
{
    size_t n = s->n_hold + len;
    char *buf = malloc(n + 1);
    if (!buf || (n + 1 > s->cap && (!(s->r = realloc(s->r, n + 1)) || !(s->c = realloc(s->c, n + 1))))) {
        free(buf);
        return (struct rsn_out){"", 0, "", 0};
    }
    if (n + 1 > s->cap)
        s->cap = n + 1;
    if (s->n_hold)
        memcpy(buf, s->hold, s->n_hold);
    memcpy(buf + s->n_hold, text, len);
    s->n_hold = 0;
    s->n_r = s->n_c = 0;
    size_t i = 0, keep = 0;
    while (i < n) {
        if (s->strip_ws) {
            while (i < n && is_ws(buf[i]))
                i++;
            if (i == n)
                break;
            s->strip_ws = false;
        }
        if (s->in_reasoning) {
            char *hit = memmem(buf + i, n - i, CLOSE, sizeof(CLOSE) - 1);
            if (hit) {
                size_t k = (size_t)(hit - buf);
                memcpy(s->r + s->n_r, buf + i, k - i);
                s->n_r += k - i;
                i = k + sizeof(CLOSE) - 1;
                s->in_reasoning = false;
                s->started = true;
                s->strip_ws = true;
                continue;
            }
            keep = final ? 0 : partial_tag(buf + i, n - i, CLOSE);
            memcpy(s->r + s->n_r, buf + i, n - i - keep);
            s->n_r += n - i - keep;
            break;
        }
        if (!s->started) {
            /* Before any content: whitespace may precede an opening tag. */
            size_t j = i;
            while (j < n && is_ws(buf[j]))
                j++;
            if (n - j >= sizeof(OPEN) - 1 && memcmp(buf + j, OPEN, sizeof(OPEN) - 1) == 0) {
                i = j + sizeof(OPEN) - 1;
                s->in_reasoning = true;
                s->strip_ws = true;
                continue;
            }
            if (!final && (j == n || memcmp(buf + j, OPEN, n - j < sizeof(OPEN) - 1 ? n - j : sizeof(OPEN) - 1) == 0)) {
                keep = n - i; /* all whitespace, or a prefix of the tag: wait */
                break;
            }
            s->started = true;
        }
        memcpy(s->c + s->n_c, buf + i, n - i);
        s->n_c += n - i;
        break;
    }
    if (keep) {
        char *h = realloc(s->hold, keep);
        if (h) {
            memcpy(h, buf + n - keep, keep);
            s->hold = h;
            s->n_hold = keep;
        }
    }
    free(buf);
    return (struct rsn_out){s->r, s->n_r, s->c, s->n_c};
}

struct rsn_out rsn_feed(struct rsn_splitter *s, const char *text, size_t len)
{
    return run(s, text, len, false);
}

struct rsn_out rsn_finish(struct rsn_splitter *s)
{
    return run(s, "", 0, true);
}
