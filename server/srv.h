/* srv.h - the running server's shared state (private to server/). */
#ifndef CHATD_SRV_H
#define CHATD_SRV_H

#include "config.h"
#include "http.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

struct srv {
    const struct chatd_config *cfg;
    struct MHD_Daemon *daemon;
    time_t started;
    atomic_bool stopping;
    /* metrics */
    atomic_ullong n_requests;
    atomic_ullong n_errors; /* status >= 400 */
};

/* The auth step for a route that needs it: sets r->user_id / is_admin, or sends 401/403
 * and returns -1. */
int srv_authenticate(struct http_req *r, bool admin_only);
void srv_count_request(struct srv *s, unsigned status);

/* The route table (route.c). */
extern const struct http_route srv_routes[];

#endif
