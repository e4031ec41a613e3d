/* route.c - the table of every HTTP endpoint chatd serves. http.c matches a request
 * against it in order: the first pattern that matches the path and method wins; a path
 * that matches with another method answers 405. */
#include "api.h"
#include "srv.h"

const struct http_route srv_routes[] = {
    {"GET", "/health", api_health, false, false},
    {"GET", "/", api_static, false, false},
    {"GET", "/{file}", api_static, false, false},
    {NULL, NULL, NULL, false, false},
};
