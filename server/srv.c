/* srv.c - the HTTP server's lifecycle. */
#include "cli.h"
#include "config.h"

#include <stdio.h>

extern char **environ;

int cli_serve(int argc, char **argv)
{
    struct chatd_config cfg;
    char err[CFG_ERRMSG_LEN];
    cfg_init(&cfg);
    int rc = cfg_from_args(&cfg, argc, argv, environ, stdout, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "chatd: %s\n", err);
        cfg_fini(&cfg);
        return rc < 0 ? 2 : 0;
    }
    cfg_fini(&cfg);
    return 0;
}
