/* api.h - HTTP handlers (private to server/). Each sends exactly one response. */
#ifndef CHATD_API_H
#define CHATD_API_H

#include "http.h"

int api_health(struct http_req *r);
int api_static(struct http_req *r);

#endif
