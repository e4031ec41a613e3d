/* test_sys.h - what the tests and benchmarks read from the system: a monotonic clock in
 * seconds and a process's resident set size. Header-only (static inline). */
#ifndef CHATD_TEST_SYS_H
#define CHATD_TEST_SYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double test_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* VmRSS of process pid in kB (/proc/PID/status), or -1. */
static inline long test_rss_kb(long pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *fp = fopen(path, "r");
    long kb = -1;
    if (!fp)
        return -1;
    while (fgets(line, sizeof(line), fp))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(fp);
    return kb;
}

#endif
