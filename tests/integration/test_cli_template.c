/* test_cli_template.c - `chatd render-template` run as a process (CHATD_BIN): exact
 * output without an added newline, exit 1 with the template's error on stderr,
 * exit 2 on usage errors, and a fixture case rendered byte for byte. */
#include "test.h"

#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];

static const char *bin(void)
{
    const char *b = getenv("CHATD_BIN");
    return b ? b : "./chatd";
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(text, 1, len, f);
        fclose(f);
    }
}

/* Runs chatd with args (a shell-free argv) capturing stdout and stderr into files. */
static int run(const char *const *args, char **out, size_t *out_len, char **err)
{
    char opath[512], epath[512];
    snprintf(opath, sizeof(opath), "%s/stdout", tmpdir);
    snprintf(epath, sizeof(epath), "%s/stderr", tmpdir);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(opath, "wb", stdout) || !freopen(epath, "wb", stderr))
            _exit(99);
        char *argv[32];
        int n = 0;
        argv[n++] = (char *)bin();
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(bin(), argv);
        _exit(98);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    size_t elen;
    *out = test_read_file(opath, out_len);
    *err = test_read_file(epath, &elen);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void path_in_tmp(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void test_renders_exactly(void)
{
    char tpl[512], msgs[512];
    path_in_tmp(tpl, sizeof(tpl), "t.jinja");
    path_in_tmp(msgs, sizeof(msgs), "m.json");
    const char *t = "{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
                    "{% if add_generation_prompt %}GEN{% endif %}{{ eos_token }}\n";
    write_file(tpl, t, strlen(t));
    const char *m = "[{\"role\": \"user\", \"content\": \"h\xc3\xa9\\n\"}, {\"role\": \"assistant\", \"content\": null}]";
    write_file(msgs, m, strlen(m));
    char *out, *err;
    size_t n;
    const char *a1[] = {"render-template", "--template", tpl, "--messages", msgs, NULL};
    int rc = run(a1, &out, &n, &err);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_EQ(out, "[user:h\xc3\xa9\n][assistant:None]");
    free(out);
    free(err);
    const char *a2[] = {"render-template", "--template", tpl, "--messages", msgs, "--add-generation-prompt",
                        "--bos-token", "<s>", "--eos-token", "</s>", NULL};
    rc = run(a2, &out, &n, &err);
    ASSERT_INT_EQ(rc, 0);
    ASSERT_STR_EQ(out, "<s>[user:h\xc3\xa9\n][assistant:None]GEN</s>");
    free(out);
    free(err);
}

static void test_errors(void)
{
    char tpl[512], msgs[512];
    path_in_tmp(tpl, sizeof(tpl), "e.jinja");
    path_in_tmp(msgs, sizeof(msgs), "m1.json");
    const char *m = "[{\"role\": \"user\", \"content\": \"x\"}]";
    write_file(msgs, m, strlen(m));
    const char *t = "{% if messages[0].role == 'user' %}{{ raise_exception('no users here') }}{% endif %}";
    write_file(tpl, t, strlen(t));
    char *out, *err;
    size_t n;
    const char *a[] = {"render-template", "--template", tpl, "--messages", msgs, NULL};
    int rc = run(a, &out, &n, &err);
    ASSERT_INT_EQ(rc, 1);
    ASSERT_INT_EQ(n, 0);
    ASSERT_STR_EQ(err, "no users here\n");
    free(out);
    free(err);

    t = "ok\n{% extends 'base' %}";
    write_file(tpl, t, strlen(t));
    rc = run(a, &out, &n, &err);
    ASSERT_INT_EQ(rc, 1);
    ASSERT_STR_EQ(err, "line 2: unsupported construct: 'extends' tag\n");
    free(out);
    free(err);

    const char *usage[] = {"render-template", "--template", tpl, NULL};
    rc = run(usage, &out, &n, &err);
    ASSERT_INT_EQ(rc, 2);
    free(out);
    free(err);

    write_file(msgs, "{not json", 9);
    rc = run(a, &out, &n, &err);
    ASSERT_INT_EQ(rc, 2);
    free(out);
    free(err);
}

/* One fixture case through the binary, byte for byte. */
static void test_fixture_case(void)
{
    json_error_t jerr;
    json_t *root = json_load_file(test_fixture("templates/google-gemma-2-2b-it.json"), 0, &jerr);
    ASSERT_TRUE(root != NULL);
    const char *src = json_string_value(json_object_get(root, "template"));
    json_t *c = json_array_get(json_object_get(root, "cases"), 2); /* multi_turn_generation_prompt */
    json_t *cases = json_object_get(root, "cases");
    for (size_t i = 0; i < json_array_size(cases); i++)
        if (json_is_string(json_object_get(json_array_get(cases, i), "expected")) &&
            json_array_size(json_object_get(json_array_get(cases, i), "messages")) > 2) {
            c = json_array_get(cases, i);
            break;
        }
    char tpl[512], msgs[512];
    path_in_tmp(tpl, sizeof(tpl), "g.jinja");
    path_in_tmp(msgs, sizeof(msgs), "g.json");
    write_file(tpl, src, strlen(src));
    json_dump_file(json_object_get(c, "messages"), msgs, 0);
    const char *a[] = {"render-template", "--template", tpl, "--messages", msgs,
                       json_is_true(json_object_get(c, "add_generation_prompt")) ? "--add-generation-prompt" : "--bos-token",
                       json_is_true(json_object_get(c, "add_generation_prompt")) ? "--bos-token" : "<bos>",
                       json_is_true(json_object_get(c, "add_generation_prompt")) ? "<bos>" : NULL, NULL};
    char *out, *err;
    size_t n;
    int rc = run(a, &out, &n, &err);
    const char *exp = json_string_value(json_object_get(c, "expected"));
    ASSERT_INT_EQ(rc, 0);
    ASSERT_INT_EQ(n, strlen(exp));
    ASSERT_STR_EQ(out, exp);
    free(out);
    free(err);
    json_decref(root);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/chatd-cli-template-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_renders_exactly);
    RUN(test_errors);
    RUN(test_fixture_case);
    test_remove_dir(tmpdir);
    return TEST_DONE();
}
