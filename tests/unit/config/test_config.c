/* Unit tests for config/: defaults, the precedence file < environment < flags, pricing
 * sections, and every error path naming the key and its source. */
#include "config.h"
#include "test.h"

#include <unistd.h>

static char ini_path[64];

static void write_ini(const char *text)
{
    snprintf(ini_path, sizeof(ini_path), "/tmp/chatd-cfg-%d.ini", (int)getpid());
    FILE *f = fopen(ini_path, "w");
    fputs(text, f);
    fclose(f);
}

static void test_defaults(void)
{
    struct chatd_config c;
    cfg_init(&c);
    ASSERT_STR_EQ(c.host, "127.0.0.1");
    ASSERT_INT_EQ(c.port, 8080);
    ASSERT_STR_EQ(c.db_path, "./chatd.db");
    ASSERT_STR_EQ(c.auth_mode, "open");
    cfg_fini(&c);
}

static void test_precedence(void)
{
    write_ini("[server]\nport = 9000\nhost = 0.0.0.0\n[storage]\ndb = file.db\n"
              "[model]\nparallel = 3\n");
    char cfgvar[128];
    snprintf(cfgvar, sizeof(cfgvar), "CHATD_CONFIG=%s", ini_path);
    char *envp[] = {cfgvar, "CHATD_PORT=9001", "CHATD_DB=env.db", "HOME=/x", NULL};
    char *argv[] = {"serve", "--db", "flag.db", "--parallel=5", NULL};
    struct chatd_config c;
    char err[CFG_ERRMSG_LEN];
    cfg_init(&c);
    ASSERT_INT_EQ(cfg_from_args(&c, 4, argv, envp, stdout, err, sizeof(err)), 0);
    ASSERT_STR_EQ(c.host, "0.0.0.0");  /* file only */
    ASSERT_INT_EQ(c.port, 9001);       /* env beats file */
    ASSERT_STR_EQ(c.db_path, "flag.db"); /* flag beats env and file */
    ASSERT_INT_EQ(c.parallel, 5);
    cfg_fini(&c);
    unlink(ini_path);
}

static void test_pricing_sections(void)
{
    write_ini("[pricing]\ninput_miss_micros = 500000\noutput_micros = 2000000\n"
              "[pricing.qwen]\ninput_miss = 100\ninput_hit = 10\noutput = 400\n");
    struct chatd_config c;
    char err[CFG_ERRMSG_LEN];
    cfg_init(&c);
    ASSERT_INT_EQ(cfg_load_file(&c, ini_path, err, sizeof(err)), 0);
    struct cfg_price p = cfg_price_for(&c, "qwen");
    ASSERT_INT_EQ(p.input_miss, 100);
    ASSERT_INT_EQ(p.input_hit, 10);
    ASSERT_INT_EQ(p.output, 400);
    p = cfg_price_for(&c, "other");
    ASSERT_INT_EQ(p.input_miss, 500000);
    ASSERT_INT_EQ(p.output, 2000000);
    cfg_fini(&c);
    unlink(ini_path);
}

/* Loads `ini` and expects failure with `needle` in the message. */
static void file_error(const char *ini, const char *needle)
{
    write_ini(ini);
    struct chatd_config c;
    char err[CFG_ERRMSG_LEN] = "";
    cfg_init(&c);
    int rc = cfg_load_file(&c, ini_path, err, sizeof(err));
    cfg_fini(&c);
    unlink(ini_path);
    ASSERT_INT_EQ(rc, CFG_EINVAL);
    ASSERT_STR_CONTAINS(err, needle);
}

static void test_file_errors(void)
{
    file_error("[server]\nprot = 1\n", ":2: unknown key 'prot' in [server]");
    file_error("[server]\n\nport = -5\n", ":3: port: -5 is out of range");
    file_error("[server]\nport = 80a\n", ":2: port: '80a' is not a whole number");
    file_error("[model]\nport = 80\n", ":2: key 'port' belongs in [server], not [model]");
    file_error("[auth]\nauth = maybe\n", ":2: auth: 'maybe' is not one of open|keys");
    file_error("[pricing.m]\noutput = -1\n", ":2: pricing.m.output");
    file_error("[pricing.m]\nfoo = 1\n", ":2: unknown key 'foo' in [pricing.m]");
    file_error("this is not ini\n", ":1:");
    struct chatd_config c;
    char err[CFG_ERRMSG_LEN] = "";
    cfg_init(&c);
    ASSERT_INT_EQ(cfg_load_file(&c, "/nonexistent/chatd.ini", err, sizeof(err)), CFG_EIO);
    ASSERT_STR_CONTAINS(err, "cannot open config file");
    cfg_fini(&c);
}

static void args_error(char **argv, int argc, char **envp, const char *needle)
{
    struct chatd_config c;
    char err[CFG_ERRMSG_LEN] = "";
    cfg_init(&c);
    int rc = cfg_from_args(&c, argc, argv, envp, stdout, err, sizeof(err));
    cfg_fini(&c);
    ASSERT_TRUE(rc == CFG_EINVAL || rc == CFG_EUNKNOWN || rc == CFG_EIO);
    ASSERT_STR_CONTAINS(err, needle);
}

static void test_env_and_flag_errors(void)
{
    char *noenv[] = {NULL};
    char *a1[] = {"serve", "--port", "0x50"};
    args_error(a1, 3, noenv, "flag --port: port: '0x50' is not a whole number");
    char *a2[] = {"serve", "--port"};
    args_error(a2, 2, noenv, "flag --port: missing value");
    char *a3[] = {"serve", "--colour", "red"};
    args_error(a3, 3, noenv, "flag --colour: unknown option 'colour'");
    char *a4[] = {"serve", "stray"};
    args_error(a4, 2, noenv, "unexpected argument 'stray'");
    char *a5[] = {"serve"};
    char *e1[] = {"CHATD_PARALLEL=0", NULL};
    args_error(a5, 1, e1, "environment CHATD_PARALLEL: parallel: 0 is out of range [1, 256]");
    char *e2[] = {"CHATD_NOPE=1", NULL};
    args_error(a5, 1, e2, "environment CHATD_NOPE: unknown option 'nope'");
    char *e3[] = {"CHATD_CONFIG=/nonexistent.ini", NULL};
    args_error(a5, 1, e3, "/nonexistent.ini: cannot open config file");
}

static void test_expand_home(void)
{
    setenv("HOME", "/home/u", 1);
    char *p = cfg_expand_home("~/.cache/x");
    ASSERT_STR_EQ(p, "/home/u/.cache/x");
    free(p);
    p = cfg_expand_home("rel/x");
    ASSERT_STR_EQ(p, "rel/x");
    free(p);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_precedence);
    RUN(test_pricing_sections);
    RUN(test_file_errors);
    RUN(test_env_and_flag_errors);
    RUN(test_expand_home);
    return TEST_DONE();
}
