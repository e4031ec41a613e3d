/* api_health.c - the server's own endpoints: /health, the Prometheus /metrics page
 * (requests, engine queues and steps, per-user tokens and cost) and the embedded chat
 * page. */
#include "api/api.h"
#include "server.h"
#include "web.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int api_health(struct http_req *r)
{
    json_t *j = json_pack("{s:s, s:I}", "status", r->srv->stopping ? "stopping" : "ok",
                          "uptime_s", (json_int_t)(time(NULL) - r->srv->started));
    return http_send_json(r, 200, j);
}

int api_static(struct http_req *r)
{
    const struct web_file *f = web_find(r->path);
    if (!f)
        return http_send_error(r, SRV_MOD_SERVER, SRV_ENOTFOUND, NULL, "no such endpoint: %s %s", r->method, r->path);
    return http_send_bytes(r, 200, f->content_type, f->data, f->size_bytes, false);
}

static void metric(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void metric(struct strbuf *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        strbuf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

int api_metrics(struct http_req *r)
{
    struct srv *s = r->srv;
    struct strbuf b = {0};
    metric(&b, "# TYPE chatd_requests_total counter\nchatd_requests_total %llu\n",
           (unsigned long long)s->n_requests);
    metric(&b, "# TYPE chatd_request_errors_total counter\nchatd_request_errors_total %llu\n",
           (unsigned long long)s->n_errors);
    metric(&b, "# TYPE chatd_prompt_renders_total counter\nchatd_prompt_renders_total %llu\n",
           (unsigned long long)s->n_prompt_renders);
    metric(&b, "# TYPE chatd_history_messages_loaded_total counter\nchatd_history_messages_loaded_total %llu\n",
           (unsigned long long)s->n_history_loaded);
    metric(&b, "# TYPE chatd_uptime_seconds gauge\nchatd_uptime_seconds %lld\n",
           (long long)(time(NULL) - s->started));
    metric(&b, "# TYPE chatd_active_connections gauge\nchatd_active_connections %d\n", http_active());
    static const char *hist[] = {"1", "4", "16", "64", "256", "+Inf"};
    for (int i = 0; i < s->n_models; i++) {
        struct eng_stats st;
        eng_get_stats(s->models[i].eng, &st);
        const char *id = s->models[i].id;
        metric(&b, "chatd_queue_depth{model=\"%s\"} %u\n", id, st.queued);
        metric(&b, "chatd_active_sequences{model=\"%s\"} %u\n", id, st.active);
        metric(&b, "chatd_tokens_prefilled_total{model=\"%s\"} %llu\n", id,
               (unsigned long long)st.tokens_prefilled);
        metric(&b, "chatd_tokens_generated_total{model=\"%s\"} %llu\n", id,
               (unsigned long long)st.tokens_generated);
        metric(&b, "chatd_forward_steps_total{model=\"%s\"} %llu\n", id, (unsigned long long)st.steps);
        metric(&b, "chatd_draft_tokens_total{model=\"%s\"} %llu\n", id, (unsigned long long)st.drafted);
        metric(&b, "chatd_draft_tokens_accepted_total{model=\"%s\"} %llu\n", id,
               (unsigned long long)st.draft_accepted);
        metric(&b, "chatd_draft_acceptance_ratio{model=\"%s\"} %.4f\n", id,
               st.drafted ? (double)st.draft_accepted / (double)st.drafted : 0.0);
        uint64_t cum = 0;
        for (int k = 0; k < 6; k++) {
            cum += st.batch_hist[k];
            metric(&b, "chatd_batch_tokens_bucket{model=\"%s\",le=\"%s\"} %llu\n", id, hist[k],
                   (unsigned long long)cum);
        }
        metric(&b, "chatd_batch_tokens_count{model=\"%s\"} %llu\n", id, (unsigned long long)cum);
        static const double bound[] = ENG_STEP_BOUNDS_MS;
        cum = 0;
        for (int k = 0; k < ENG_STEP_BUCKETS; k++) {
            char le[32];
            if (k < ENG_STEP_BUCKETS - 1)
                snprintf(le, sizeof(le), "%g", bound[k] / 1000.0);
            else
                snprintf(le, sizeof(le), "+Inf");
            cum += st.step_hist[k];
            metric(&b, "chatd_step_seconds_bucket{model=\"%s\",le=\"%s\"} %llu\n", id, le,
                   (unsigned long long)cum);
        }
        metric(&b, "chatd_step_seconds_sum{model=\"%s\"} %.6f\n", id, st.step_ms_sum / 1000.0);
        metric(&b, "chatd_step_seconds_count{model=\"%s\"} %llu\n", id, (unsigned long long)cum);
    }
    metric(&b, "# TYPE chatd_user_tokens_total counter\n");
    pthread_mutex_lock(&s->meter_mu);
    for (int i = 0; i < s->n_meters; i++) {
        const struct srv_meter *m = &s->meters[i];
        long long u = (long long)m->user_id;
        metric(&b, "chatd_user_requests_total{user_id=\"%lld\"} %llu\n", u, (unsigned long long)m->requests);
        metric(&b, "chatd_user_tokens_total{user_id=\"%lld\",kind=\"input_hit\"} %llu\n", u, (unsigned long long)m->input_hit);
        metric(&b, "chatd_user_tokens_total{user_id=\"%lld\",kind=\"input_miss\"} %llu\n", u, (unsigned long long)m->input_miss);
        metric(&b, "chatd_user_tokens_total{user_id=\"%lld\",kind=\"output\"} %llu\n", u, (unsigned long long)m->output);
        metric(&b, "chatd_user_tokens_total{user_id=\"%lld\",kind=\"reasoning\"} %llu\n", u, (unsigned long long)m->reasoning);
        metric(&b, "chatd_user_cost_micros_total{user_id=\"%lld\"} %lld\n", u, (long long)m->cost_micros);
    }
    pthread_mutex_unlock(&s->meter_mu);
    int rc = http_send_bytes(r, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, true);
    strbuf_free(&b);
    return rc;
}
