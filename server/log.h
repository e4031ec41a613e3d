/* log.h - one-line log events to stderr: "2026-11-28T17:20:01.123Z info key=value ...".
 * Thread-safe (one fprintf per line). The level is checked before formatting. */
#ifndef CHATD_LOG_H
#define CHATD_LOG_H

#include <stdarg.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

extern enum log_level log_min_level;

/* Sets the level from its name ("debug", "info", "warn", "error"); returns -1 if unknown. */
int log_set_level(const char *name);
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap);

#define log_debug(...) (log_min_level <= LOG_DEBUG ? log_write(LOG_DEBUG, __VA_ARGS__) : (void)0)
#define log_info(...) (log_min_level <= LOG_INFO ? log_write(LOG_INFO, __VA_ARGS__) : (void)0)
#define log_warn(...) (log_min_level <= LOG_WARN ? log_write(LOG_WARN, __VA_ARGS__) : (void)0)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
