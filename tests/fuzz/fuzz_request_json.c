/* fuzz_request_json.c - libFuzzer target: a request body through the server's path
 * (json_loadb with JSON_REJECT_DUPLICATES, then oai_parse as chat and as legacy
 * completion, and oai_parse_messages). Oracle: either 0 with no error fields set and a
 * request whose fields respect the documented limits, or -1 with a 4xx/5xx status, a
 * code and a message. Never both. */
#include "fuzz.h"
#include "api/oai.h"
#include "server.h"

#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void check_request(const struct oai_request *q, bool chat)
{
    if (chat) {
        FUZZ_CHECK(q->msgs != NULL && q->n_msgs >= 1 && q->n_msgs <= OAI_MAX_MESSAGES);
        for (size_t i = 0; i < q->n_msgs; i++) {
            const char *r = q->msgs[i].role;
            FUZZ_CHECK(r && q->msgs[i].content);
            FUZZ_CHECK(!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant") ||
                       !strcmp(r, "tool"));
            FUZZ_CHECK(strcmp(r, "tool") != 0 || q->msgs[i].tool_call_id);
            FUZZ_CHECK(!q->msgs[i].tool_calls || !strcmp(r, "assistant"));
        }
        /* a named tool_choice names one of the tools; a grammar never comes with tools */
        bool named = false;
        for (size_t i = 0; i < q->n_tools; i++)
            named = named || (q->tool_choice_name && !strcmp(q->tools[i].name, q->tool_choice_name));
        FUZZ_CHECK(q->tool_choice != OAI_TOOLS_NAMED || named);
        FUZZ_CHECK(!q->format_ebnf || q->tool_choice == OAI_TOOLS_NONE);
    } else {
        FUZZ_CHECK(q->prompt != NULL);
    }
    FUZZ_CHECK(q->max_tokens == -1 || (q->max_tokens >= 1 && q->max_tokens <= (1 << 24)));
    FUZZ_CHECK(q->temperature >= 0 && q->temperature <= 2);
    FUZZ_CHECK(q->top_p >= 0 && q->top_p <= 1);
    FUZZ_CHECK(q->top_k >= 0);
    FUZZ_CHECK(q->n_stop <= OAI_MAX_STOP);
    for (size_t i = 0; i < q->n_stop; i++)
        FUZZ_CHECK(q->stop[i] && q->stop[i][0]);
    FUZZ_CHECK(q->n_bias <= OAI_MAX_LOGIT_BIAS);
    for (size_t i = 0; i < q->n_bias; i++)
        FUZZ_CHECK(q->bias[i].id >= 0 && q->bias[i].bias >= -100 && q->bias[i].bias <= 100);
    FUZZ_CHECK(q->top_logprobs >= 0 && q->top_logprobs <= 20);
    FUZZ_CHECK(!q->session_id || oai_valid_id(q->session_id, 128));
    FUZZ_CHECK(!q->model || oai_valid_id(q->model, 256));
}

static void check_error(const struct oai_error *e)
{
    FUZZ_CHECK(e->code == SRV_EINVAL || e->code == SRV_ETYPE || e->code == SRV_EMISSING || e->code == SRV_EJSON ||
               e->code == SRV_EINTERNAL);
    FUZZ_CHECK(srv_error_of(SRV_MOD_SERVER, e->code).code == e->code);
    FUZZ_CHECK(e->message[0] != 0);
    FUZZ_CHECK(memchr(e->param, 0, sizeof(e->param)) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t je;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!body)
        return 0;
    for (int chat = 0; chat < 2; chat++) {
        struct oai_request q;
        struct oai_error e;
        oai_request_init(&q);
        memset(&e, 0x5A, sizeof(e));
        int rc = oai_parse(body, chat, &q, &e);
        if (rc == 0) {
            FUZZ_CHECK(e.code == 0 && e.param[0] == 0);
            check_request(&q, chat);
        } else {
            FUZZ_CHECK(rc == -1);
            check_error(&e);
        }
        oai_request_fini(&q);
    }
    json_t *msgs = json_is_object(body) ? json_object_get(body, "messages") : body;
    struct oai_request q;
    struct oai_error e;
    oai_request_init(&q);
    memset(&e, 0, sizeof(e));
    if (oai_parse_messages(msgs, &q, &e) != 0)
        check_error(&e);
    oai_request_fini(&q);
    json_decref(body);
    return 0;
}
